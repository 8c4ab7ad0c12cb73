"""The sample payload of every channel, turned into normalised events the way production does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from integrations.app_events import AppEventConfig, parse_app_event
from integrations.currency import CurrencyPolicy
from integrations.partner_feed import PartnerFeedConfig, parse_partner_feed
from integrations.shopify import ShopifyConfig, parse_shopify_webhook
from integrations.square import SquareConfig, parse_square_webhook
from integrations.till_csv import TillCsvConfig, parse_till_csv
from shared.program.config import BehaviourRules, ProgramConfig
from tests.unit.adapter_helpers import raw, sign

if TYPE_CHECKING:
    from shared.earning.core import Event

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ID_KEY = "identity-key"
SHOP = "acme.myshopify.com"
SHOP_SECRET = "shpss_test_secret"
MERCHANT = "6SSW7HV8K2ST5"
SQUARE_KEY = "sq-signature-key"
# This stack's SquareWebhookUrl for the seller, as registered with Square (it is part of what Square signs).
SQUARE_URL = f"https://hooks.pointbridge.example/Prod/webhooks/square/{MERCHANT}"
EUR = {"program_currency": "EUR", "rates": {"USD": "0.9"}}

SOURCES: dict[str, Any] = {
    "shopify": {SHOP: {"program": "acme", "webhook_secret": SHOP_SECRET, "currency": EUR}},
    "square": {
        MERCHANT: {"program": "acme", "notification_url": SQUARE_URL, "signature_key": SQUARE_KEY, "currency": EUR}
    },
    "app": {"app": {"program": "acme"}},
    "till": {"default": {"program": "acme", "currency": EUR, "phone_region": "GB"}},
    "partners": {"skyair": {"program": "acme", "currency": EUR}},
}


def acme() -> ProgramConfig:
    return ProgramConfig(program="acme", name="Acme", currency="EUR", behaviour=BehaviourRules(review=20, sign_in=5))


def shopify_headers(body: bytes, topic: str, now: datetime = NOW) -> dict[str, str]:
    return {
        "X-Shopify-Hmac-Sha256": sign(SHOP_SECRET, body),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Triggered-At": (now - timedelta(seconds=30)).isoformat(),
    }


def square_headers(body: bytes) -> dict[str, str]:
    return {"X-Square-HmacSha256-Signature": sign(SQUARE_KEY, SQUARE_URL.encode() + body)}


def channel_events() -> list[Event]:
    """Shopify order + refund, Square payment + refund, a till file, a partner feed, an app review."""
    policy = CurrencyPolicy(program_currency="EUR", rates={"USD": Decimal("0.9")})
    shop = ShopifyConfig(
        program="acme", shop_domain=SHOP, webhook_secret=SHOP_SECRET, identity_key=ID_KEY, currency=policy
    )
    square = SquareConfig(
        program="acme",
        merchant_id=MERCHANT,
        notification_url=SQUARE_URL,
        signature_key=SQUARE_KEY,
        identity_key=ID_KEY,
        currency=policy,
    )
    events: list[Event] = []
    for name, topic in (("shopify_orders_paid.json", "orders/paid"), ("shopify_refunds_create.json", "refunds/create")):
        body = raw(name)
        events += parse_shopify_webhook(body, shopify_headers(body, topic), shop, now=NOW)
    for name in ("square_payment_updated.json", "square_refund_updated.json"):
        body = raw(name)
        events += parse_square_webhook(body, square_headers(body), square, now=NOW)
    till = TillCsvConfig(program="acme", identity_key=ID_KEY, currency=policy, phone_region="GB")
    events += parse_till_csv(raw("till_eod.csv"), till, now=NOW).accepted
    partner = PartnerFeedConfig(program="acme", partner_id="skyair", currency=policy)
    events += parse_partner_feed(raw("partner_feed.csv"), partner, now=NOW, fmt="csv").accepted
    events.append(parse_app_event(json.loads(raw("app_review.json")), AppEventConfig(program="acme"), now=NOW))
    return events
