"""Which shops, merchants, apps, tills and partners feed which program: the `SOURCES` JSON.

One JSON object, read once per cold start, e.g.

    {"shopify": {"acme.myshopify.com": {"program": "demo", "webhook_secret": "...",
                                        "currency": {"program_currency": "USD"}}},
     "square": {"MLxyz": {...}}, "app": {"app": {...}}, "till": {"default": {...}},
     "partners": {"airline": {...}}}

Each entry is the adapter's own config model; the shop domain, merchant id, app id and partner id
come from the key. `identity_key` is always the stack's identity hash key, never a source's own: a
source with its own key would hash e-mails, phones and cards apart from every other channel and the
API (a member linked through the API would never receive that shop's orders), so an entry naming
one is refused. A source that is not listed is unknown.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from integrations.app_events import AppEventConfig
from integrations.errors import UnknownSourceError
from integrations.partner_feed import PartnerFeedConfig
from integrations.shopify import ShopifyConfig
from integrations.square import SquareConfig
from integrations.till_csv import TillCsvConfig
from shared.errors import ServiceMisconfiguredError


class Sources(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    shopify: dict[str, ShopifyConfig] = Field(default_factory=dict)
    square: dict[str, SquareConfig] = Field(default_factory=dict)
    app: dict[str, AppEventConfig] = Field(default_factory=dict)
    till: dict[str, TillCsvConfig] = Field(default_factory=dict)
    partners: dict[str, PartnerFeedConfig] = Field(default_factory=dict)

    def shop(self, domain: str) -> ShopifyConfig:
        return _find(self.shopify, domain.lower(), "Shopify shop")

    def merchant(self, merchant: str) -> SquareConfig:
        return _find(self.square, merchant, "Square merchant")

    def app_config(self, app_id: str = "app") -> AppEventConfig:
        return _find(self.app, app_id, "app")

    def till_config(self, name: str) -> TillCsvConfig:
        return _find(self.till, name, "till feed")

    def partner(self, partner: str) -> PartnerFeedConfig:
        return _find(self.partners, partner, "partner")


def _find(configs: dict[str, Any], key: str, what: str) -> Any:
    config = configs.get(key)
    if config is None:
        raise UnknownSourceError(f"no {what} {key[:60]!r} is configured", source=key[:60])
    return config


def parse_sources(text: str, identity_key: str) -> Sources:
    """Validate the JSON; a broken config fails the cold start loudly rather than each request."""
    try:
        raw = json.loads(text or "{}")
        if not isinstance(raw, dict):
            raise ValueError("SOURCES must be a JSON object")
        for kind, key_field in (
            ("shopify", "shop_domain"),
            ("square", "merchant_id"),
            ("app", "app_id"),
            ("partners", "partner_id"),
            ("till", None),
        ):
            for key, config in (raw.get(kind) or {}).items():
                if not isinstance(config, dict):
                    raise ValueError(f"{kind}.{key} must be an object")
                if key_field:
                    config.setdefault(key_field, key)
                if "identity_key" in config:
                    raise ValueError(f"{kind}.{key}: identity_key is the stack's, not a source's")
                if kind != "partners" and kind != "app":
                    config["identity_key"] = identity_key
        return Sources.model_validate(raw)
    except ValidationError as exc:
        # Where and what, never the values: the document holds webhook secrets and the identity key.
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ServiceMisconfiguredError(f"invalid SOURCES configuration: {reasons}") from None
    except ValueError as exc:
        raise ServiceMisconfiguredError(f"invalid SOURCES configuration: {exc}") from None
