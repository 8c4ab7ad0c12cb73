"""Channel records as the adapters need them: refused when written with the field named, served to the
functions from the records with a cache that a change outlives by at most its TTL."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.channels import ChannelSources, ChannelView, adapter_config, check_channel
from integrations.errors import ChannelDisabledError, UnknownSourceError
from integrations.shopify import ShopifyConfig
from integrations.square import SquareConfig
from shared.errors import ChannelUnavailableError, InvalidChannelError

SHOP = "acme.myshopify.com"
SQUARE_URL = "https://abc.execute-api.eu-west-1.amazonaws.com/Prod/webhooks/square/ML7Q2"


def refused_field(
    kind: str, channel_id: str, settings: dict[str, Any], secret: str | None, currency: str = "EUR"
) -> str:
    with pytest.raises(InvalidChannelError) as refused:
        check_channel(kind, channel_id, "acme", settings, secret, currency)
    return refused.value.field


def test_a_good_record_of_each_kind_passes() -> None:
    check_channel("shopify", SHOP, "acme", {"include_tax": True}, "shpss_0123456789abcdef", "EUR")
    check_channel("square", "ML7Q2", "acme", {"notification_url": SQUARE_URL}, "q1w2e3r4t5y6u7i8o9p0aa", "EUR")
    check_channel("till", "store-12", "acme", {"phone_region": "GB"}, None, "EUR")
    check_channel(
        "partner", "skyair", "acme", {"currency": {"program_currency": "EUR", "rates": {"USD": "0.9"}}}, None, "EUR"
    )
    check_channel("app", "app", "acme", {}, None, "EUR")


@pytest.mark.parametrize(
    ("kind", "channel_id", "settings", "secret", "field"),
    [
        # A missing secret, and a malformed one
        ("shopify", SHOP, {}, None, "secret"),
        ("square", "ML7Q2", {"notification_url": SQUARE_URL}, "not a key!", "secret"),
        ("square", "ML7Q2", {"notification_url": SQUARE_URL}, "short", "secret"),
        ("till", "store-12", {}, "a-secret-nobody-uses", "secret"),
        # An id the adapter would never see
        ("shopify", "acme.com", {}, "shpss_0123456789abcdef", "id"),
        ("partner", "Sky Air", {}, None, "id"),
        # Settings the adapter does not have, or refuses
        ("shopify", SHOP, {"include_taxes": True}, "shpss_0123456789abcdef", "settings.include_taxes"),
        ("shopify", SHOP, {"currency_basis": "buyer"}, "shpss_0123456789abcdef", "settings.currency_basis"),
        ("till", "store-12", {"max_age": "-P1D"}, None, "settings.max_age"),
        ("partner", "skyair", {"max_age": "P61D"}, None, "settings.max_age"),
        ("shopify", SHOP, {"webhook_secret": "x"}, "shpss_0123456789abcdef", "settings.webhook_secret"),
        # A currency other than the program's
        ("till", "store-12", {"currency": {"program_currency": "USD"}}, None, "settings.currency.program_currency"),
        # A Square notification URL that is not this stack's URL for the seller
        (
            "square",
            "ML7Q2",
            {"notification_url": "https://x/hooks/ML7Q2"},
            "q1w2e3r4t5y6u7i8o9p0aa",
            "settings.notification_url",
        ),
        ("square", "ML7Q2", {}, "q1w2e3r4t5y6u7i8o9p0aa", "settings.notification_url"),
    ],
)
def test_a_bad_record_is_refused_with_the_field_named(
    kind: str, channel_id: str, settings: dict[str, Any], secret: str | None, field: str
) -> None:
    assert refused_field(kind, channel_id, settings, secret) == field


def test_an_unknown_kind_is_refused() -> None:
    assert refused_field("mailchimp", "x", {}, None) == "kind"


def test_the_settings_stored_name_the_program_currency_when_they_name_none() -> None:
    stored = check_channel("till", "store-12", "acme", {"phone_region": "GB"}, None, "EUR")
    assert stored == {"phone_region": "GB", "currency": {"program_currency": "EUR"}}
    assert check_channel("app", "app", "acme", {}, None, "EUR") == {}


def test_the_adapter_config_takes_the_program_currency_and_the_secret() -> None:
    config = adapter_config("shopify", SHOP, "acme", {}, "shpss_0123456789abcdef", "id-key", "EUR")
    assert isinstance(config, ShopifyConfig)
    assert config.currency.program_currency == "EUR"
    assert config.webhook_secret.get_secret_value() == "shpss_0123456789abcdef"
    assert config.identity_key.get_secret_value() == "id-key"
    assert config.shop_domain == SHOP


class Records:
    """A record store the test edits between lookups, counting the lookups."""

    def __init__(self) -> None:
        self.views: dict[tuple[str, str], ChannelView] = {}
        self.lookups = 0

    def put(
        self, kind: str, channel_id: str, *, status: str = "active", secret: str | None = None, **settings: Any
    ) -> None:
        version = self.views[(kind, channel_id)].version + 1 if (kind, channel_id) in self.views else 1
        self.views[(kind, channel_id)] = ChannelView(kind, channel_id, "acme", dict(settings), status, version, secret)

    def lookup(self, kind: str, channel_id: str) -> ChannelView | None:
        self.lookups += 1
        return self.views.get((kind, channel_id))


def test_a_change_reaches_the_functions_within_the_ttl_and_not_before() -> None:
    # Given a shop, served from a cache of 30 s on a clock the test moves
    records, now = Records(), [0.0]
    records.put("shopify", SHOP, secret="shpss_old_secret_0000", currency={"program_currency": "EUR"})
    sources = ChannelSources(records.lookup, lambda: "id-key", ttl_seconds=30, clock=lambda: now[0])
    assert sources.shop("ACME.myshopify.com").webhook_secret.get_secret_value() == "shpss_old_secret_0000"
    # When its secret is rotated
    records.put("shopify", SHOP, secret="shpss_new_secret_1111", currency={"program_currency": "EUR"})
    # Then the old one is served until the entry is 30 s old, then the new one, with one read per 30 s
    now[0] = 29.9
    assert sources.shop(SHOP).webhook_secret.get_secret_value() == "shpss_old_secret_0000"
    now[0] = 30.0
    assert sources.shop(SHOP).webhook_secret.get_secret_value() == "shpss_new_secret_1111"
    assert records.lookups == 2


def test_unknown_and_disabled_channels_are_refused_and_remembered_for_the_ttl() -> None:
    records, now = Records(), [0.0]
    sources = ChannelSources(records.lookup, lambda: "id-key", ttl_seconds=30, clock=lambda: now[0])
    with pytest.raises(UnknownSourceError):
        sources.merchant("ML7Q2")
    records.put(
        "square",
        "ML7Q2",
        secret="q1w2e3r4t5y6u7i8o9p0aa",
        notification_url=SQUARE_URL,
        currency={"program_currency": "EUR"},
    )
    with pytest.raises(UnknownSourceError):
        sources.merchant("ML7Q2")  # still the cached answer
    now[0] = 31
    assert isinstance(sources.merchant("ML7Q2"), SquareConfig)
    records.put("partner", "skyair", status="disabled", currency={"program_currency": "EUR"})
    with pytest.raises(ChannelDisabledError):
        sources.partner("skyair")
    # An id no record could have is refused without a read
    before = records.lookups
    with pytest.raises(UnknownSourceError):
        sources.shop("not a shop")
    assert records.lookups == before


def test_a_record_that_no_longer_builds_fails_alone() -> None:
    records = Records()
    records.put("till", "good", currency={"program_currency": "EUR"})
    records.put("till", "bad", currency={"program_currency": "EUR"}, phone_regionn="GB")
    sources = ChannelSources(records.lookup, lambda: "id-key")
    with pytest.raises(ChannelUnavailableError):
        sources.till_config("bad")
    assert sources.till_config("good").currency.program_currency == "EUR"
