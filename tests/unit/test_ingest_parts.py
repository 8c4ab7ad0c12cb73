"""Pure parts of the channel pipeline: message parsing, sources config, streaks, derived ids."""

from __future__ import annotations

import json
from datetime import date

import pytest

from integrations.errors import UnknownSourceError
from integrations.sources import parse_sources
from shared.earning.core import event_hash, provisional_member
from shared.earning.purchases import _streak
from shared.earning.queue import envelope
from shared.errors import ServiceMisconfiguredError
from shared.events.model import Identity, IdentityKind
from tests.integration.channel_fixtures import SOURCES, channel_events

EVENT = channel_events()[0]


def test_a_message_is_an_enveloped_or_bare_event() -> None:
    # Imported here, not at collection: powertools reads its namespace from the environment that
    # the autouse fixture sets only for the test itself.
    from functions.ingest.app import read_message

    assert read_message(envelope(EVENT)) == EVENT
    assert read_message(json.dumps(json.loads(envelope(EVENT))["event"])) == EVENT


@pytest.mark.parametrize(
    "body",
    ["{not json", "[]", '"text"', json.dumps({"event": {"kind": "purchase"}}), json.dumps({"kind": "teleport"})],
)
def test_anything_else_is_poison(body: str) -> None:
    from functions.ingest.app import PoisonMessageError, read_message

    with pytest.raises(PoisonMessageError) as caught:
        read_message(body)
    assert caught.value.code == "malformed_event"


def test_sources_fill_keys_and_the_identity_key() -> None:
    sources = parse_sources(json.dumps(SOURCES), "deployment-key")
    shop = sources.shop("ACME.myshopify.com")
    assert shop.shop_domain == "acme.myshopify.com"
    assert shop.identity_key.get_secret_value() == "deployment-key"
    assert sources.partner("skyair").partner_id == "skyair"
    with pytest.raises(UnknownSourceError):
        sources.merchant("someone-else")


@pytest.mark.parametrize("text", ["[]", '{"shopify": {"x": 1}}', '{"shopify": {"x": {"program": "a"}}}', "{"])
def test_a_broken_sources_config_fails_loudly(text: str) -> None:
    with pytest.raises(ServiceMisconfiguredError):
        parse_sources(text, "k")


def test_streaks_count_consecutive_days_back_from_the_event_day() -> None:
    days = {"2026-06-08", "2026-06-09", "2026-06-10", "2026-06-12"}
    assert _streak(days, date(2026, 6, 10)) == 3
    assert _streak(days, date(2026, 6, 12)) == 1
    assert _streak(days, date(2026, 6, 11)) == 0


def test_provisional_members_and_event_hashes_are_derived() -> None:
    card = Identity(kind=IdentityKind.CARD, value="123")
    assert provisional_member(card) == provisional_member(Identity(kind=IdentityKind.CARD, value="123"))
    assert provisional_member(card) != provisional_member(Identity(kind=IdentityKind.PHONE, value="123"))
    assert event_hash(EVENT) == event_hash(EVENT.model_copy())
    assert event_hash(EVENT) != event_hash(EVENT.model_copy(update={"external_id": "other"}))
