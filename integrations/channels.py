"""Channel records as the adapters need them: checked when written, turned into adapter configs when read.

A channel is one source of events: a Shopify shop (keyed by its myshopify domain), a Square seller
(its merchant id), a till feed (the folder under `till/`), a partner (its id, the folder under
`partners/`) or the brand's app. Its record holds the program it feeds and the adapter's settings;
its secret (Shopify's webhook secret, Square's signature key) is kept apart, as a secret, and joins
the settings only here, when the adapter config is built. Pure: no I/O; the store reads and writes.

`check_channel` is what a write must pass: every refusal names the field (`id`, `program`,
`secret`, `settings.<path>`). `ChannelSources` serves the adapters' configs to the functions from
the records, each kept for `ttl_seconds` (a change reaches every warm container within that time,
without a cold start); an unknown channel is remembered as unknown for as long.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from integrations.app_events import AppEventConfig
from integrations.errors import ChannelDisabledError, UnknownSourceError
from integrations.partner_feed import PartnerFeedConfig
from integrations.shopify import ShopifyConfig
from integrations.square import SquareConfig
from integrations.till_csv import TillCsvConfig
from shared.errors import ChannelUnavailableError, InvalidChannelError

if TYPE_CHECKING:
    from collections.abc import Callable

SHOPIFY, SQUARE, TILL, PARTNER, APP = "shopify", "square", "till", "partner", "app"
KINDS = (SHOPIFY, SQUARE, TILL, PARTNER, APP)
ACTIVE, DISABLED = "active", "disabled"
# The secret each kind signs its requests with (the others arrive through S3 or behind an API key).
SECRET_FIELDS = {SHOPIFY: "webhook_secret", SQUARE: "signature_key"}
_MODELS: dict[str, type[BaseModel]] = {
    SHOPIFY: ShopifyConfig,
    SQUARE: SquareConfig,
    TILL: TillCsvConfig,
    PARTNER: PartnerFeedConfig,
    APP: AppEventConfig,
}
# The field of the adapter config that the record's id fills (the till feed is only a folder name).
_ID_FIELDS = {SHOPIFY: "shop_domain", SQUARE: "merchant_id", PARTNER: "partner_id", APP: "app_id"}
_IDS = {
    # X-Shopify-Shop-Domain is always the shop's permanent myshopify.com domain.
    SHOPIFY: re.compile(r"^[a-z0-9][a-z0-9-]{0,59}\.myshopify\.com$"),
    SQUARE: re.compile(r"^[A-Za-z0-9_-]{1,64}$"),
    TILL: re.compile(r"^[A-Za-z0-9_-]{1,60}$"),
    PARTNER: re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$"),
    APP: re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$"),
}
_SECRETS = {
    # Shopify's app client secret (or a store's webhook signing key): printable, no spaces.
    SHOPIFY: (re.compile(r"^[!-~]{16,256}$"), "16-256 printable characters without spaces"),
    # Square's subscription signature key: base64 or base64url text.
    SQUARE: (re.compile(r"^[A-Za-z0-9_\-+/]{16,256}={0,2}$"), "16-256 characters of base64 or base64url"),
}
_C = TypeVar("_C", bound=BaseModel)
MAX_EVENT_AGE = timedelta(days=60)
# Needed to build a config while checking it; never stored or used to hash anything.
_PLACEHOLDER_KEY = "placeholder-identity-key"


def normal_id(kind: str, channel_id: str) -> str:
    """The id a record is kept under: shop domains are case-insensitive, the others exact."""
    return channel_id.strip().lower() if kind == SHOPIFY else channel_id.strip()


def has_secret(kind: str) -> bool:
    return kind in SECRET_FIELDS


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidChannelError(f"kind must be one of {', '.join(KINDS)}, not {kind[:40]!r}", field="kind")
    return kind


def check_channel(
    kind: str, channel_id: str, program: str, settings: dict[str, Any], secret: str | None, program_currency: str
) -> dict[str, Any]:
    """Refuse a record (naming the field) that the adapter could not run with, or that would never
    verify or earn: an id of the wrong shape, a missing or malformed secret, a setting the adapter
    does not have or refuses, a currency other than the program's, a Square notification URL that
    is not this stack's URL for the seller. Returns the settings to store: as given, with the
    program's currency when they name none."""
    check_kind(kind)
    if not _IDS[kind].fullmatch(channel_id):
        raise InvalidChannelError(f"{channel_id[:80]!r} is not a {_describe_id(kind)}", field="id")
    if kind in SECRET_FIELDS:
        pattern, shape = _SECRETS[kind]
        if not secret:
            raise InvalidChannelError(f"a {kind} channel needs its {SECRET_FIELDS[kind]} as `secret`", field="secret")
        if not pattern.fullmatch(secret):
            raise InvalidChannelError(f"the {SECRET_FIELDS[kind]} must be {shape}", field="secret")
    elif secret:
        raise InvalidChannelError(f"a {kind} channel has no secret", field="secret")
    config = adapter_config(kind, channel_id, program, settings, secret, _PLACEHOLDER_KEY, program_currency)
    for age in ("max_age", "replay_window"):
        # The anomaly watch keeps an order's window 90 days (shared.projections.watch): nothing older may come.
        if getattr(config, age, timedelta(0)) > MAX_EVENT_AGE:
            raise InvalidChannelError(f"{age} is at most {MAX_EVENT_AGE.days} days", field=f"settings.{age}")
    currency = getattr(config, "currency", None)
    if currency is not None and currency.program_currency != program_currency:
        raise InvalidChannelError(
            f"the program earns in {program_currency}, not {currency.program_currency}",
            field="settings.currency.program_currency",
        )
    if isinstance(config, SquareConfig):
        path = urlsplit(config.notification_url).path.rstrip("/")
        if not path.endswith(f"/webhooks/square/{channel_id}"):
            raise InvalidChannelError(
                "notification_url must be this stack's SquareWebhookUrl for the seller (…/webhooks/square/"
                f"{channel_id}), exactly as registered with Square: it is part of what Square signs",
                field="settings.notification_url",
            )
    return _with_currency(kind, settings, program_currency)


def adapter_config(
    kind: str,
    channel_id: str,
    program: str,
    settings: dict[str, Any],
    secret: str | None,
    identity_key: str,
    program_currency: str | None = None,
) -> BaseModel:
    """The adapter's config for a record; settings it refuses raise InvalidChannelError naming them.

    A record without a `currency` setting earns in `program_currency` (when given) with no rates."""
    fields = _with_currency(kind, settings, program_currency)
    for reserved in ("program", "identity_key", _ID_FIELDS.get(kind), SECRET_FIELDS.get(kind)):
        if reserved and reserved in fields:
            detail = f"{reserved} is not a setting (it has its own field)"
            raise InvalidChannelError(detail, field=f"settings.{reserved}")
    fields["program"] = program
    if kind in _ID_FIELDS:
        fields[_ID_FIELDS[kind]] = channel_id
    if kind in SECRET_FIELDS:
        fields[SECRET_FIELDS[kind]] = secret or ""
    if kind in (SHOPIFY, SQUARE, TILL):
        fields["identity_key"] = identity_key
    try:
        return _MODELS[kind].model_validate(fields)
    except ValidationError as exc:
        raise InvalidChannelError(_first_error(exc), field=_field(kind, exc)) from None


def _with_currency(kind: str, settings: dict[str, Any], program_currency: str | None) -> dict[str, Any]:
    fields = dict(settings)
    if "currency" not in fields and program_currency and kind != APP:
        fields["currency"] = {"program_currency": program_currency}
    return fields


def _field(kind: str, exc: ValidationError) -> str:
    loc = [str(part) for part in exc.errors()[0]["loc"]]
    if not loc:
        return "settings"
    if loc[0] == "program":
        return "program"
    if loc[0] == _ID_FIELDS.get(kind):
        return "id"
    if loc[0] == SECRET_FIELDS.get(kind):
        return "secret"
    return ".".join(["settings", *loc])


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "settings"
    return f"{where}: {error['msg']}"


def _describe_id(kind: str) -> str:
    return {
        SHOPIFY: "shop's myshopify.com domain",
        SQUARE: "Square merchant id (letters, digits, _ and -)",
        TILL: "till feed name (letters, digits, _ and -; the folder under till/)",
        PARTNER: "partner id (lower-case letters, digits, _ and -)",
        APP: "app id (lower-case letters, digits, _ and -)",
    }[kind]


@dataclass(frozen=True)
class ChannelView:
    """What a reader gets from the store: the record, and its secret when it has one."""

    kind: str
    channel_id: str
    program: str
    settings: dict[str, Any]
    status: str
    version: int
    secret: str | None = None


@dataclass
class _Cached:
    until: float
    config: BaseModel | None
    refusal: Callable[[], Exception] | None


class ChannelSources:
    """The adapters' configs, from the channel records, each cached for `ttl_seconds`."""

    def __init__(
        self,
        lookup: Callable[[str, str], ChannelView | None],
        identity_key: Callable[[], str],
        *,
        ttl_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._identity_key = identity_key
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str], _Cached] = {}

    def shop(self, domain: str) -> ShopifyConfig:
        return self._config(ShopifyConfig, SHOPIFY, normal_id(SHOPIFY, domain), "Shopify shop")

    def merchant(self, merchant: str) -> SquareConfig:
        return self._config(SquareConfig, SQUARE, merchant, "Square merchant")

    def app_config(self, app_id: str = "app") -> AppEventConfig:
        return self._config(AppEventConfig, APP, app_id, "app")

    def till_config(self, name: str) -> TillCsvConfig:
        return self._config(TillCsvConfig, TILL, name, "till feed")

    def partner(self, partner: str) -> PartnerFeedConfig:
        return self._config(PartnerFeedConfig, PARTNER, partner, "partner")

    def _config(self, model: type[_C], kind: str, channel_id: str, what: str) -> _C:
        key = (kind, channel_id)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is None or cached.until <= now:
            cached = self._load(kind, channel_id, what, now)
            self._cache[key] = cached
        if cached.refusal is not None:
            raise cached.refusal()
        assert isinstance(cached.config, model)
        return cached.config

    def _load(self, kind: str, channel_id: str, what: str, now: float) -> _Cached:
        until = now + self._ttl
        shown = channel_id[:60]
        if not _IDS[kind].fullmatch(channel_id):
            return _Cached(until, None, lambda: UnknownSourceError(f"no {what} {shown!r} is configured", source=shown))
        view = self._lookup(kind, channel_id)
        if view is None:
            return _Cached(until, None, lambda: UnknownSourceError(f"no {what} {shown!r} is configured", source=shown))
        if view.status != ACTIVE:
            return _Cached(until, None, lambda: ChannelDisabledError(f"{what} {shown!r} is disabled", source=shown))
        try:
            config = adapter_config(kind, channel_id, view.program, view.settings, view.secret, self._identity_key())
        except InvalidChannelError as exc:
            # Checked when written, so only a record written around the checks gets here; it alone fails.
            detail = f"{what} {shown!r} cannot be used: {exc.detail} (field {exc.field})"
            return _Cached(until, None, lambda: ChannelUnavailableError(detail, source=shown))
        return _Cached(until, config, None)
