from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integrations.currency import CurrencyPolicy
from integrations.errors import (
    AmountOutOfRangeError,
    BadSignatureError,
    MalformedPayloadError,
    MissingIdentityError,
    StaleWebhookError,
    UnknownSourceError,
    UnsupportedCurrencyError,
    UnsupportedEventError,
)
from integrations.shopify import ShopifyConfig, parse_shopify_webhook
from shared.events.identity import hash_email
from shared.events.model import IdentityKind, PurchaseEvent, RefundEvent
from tests.unit.adapter_helpers import load, raw, sign

SECRET = "shpss_test_secret"
ID_KEY = "identity-key"
SHOP = "acme.myshopify.com"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def config(**overrides: Any) -> ShopifyConfig:
    fields: dict[str, Any] = {
        "program": "acme",
        "shop_domain": SHOP,
        "webhook_secret": SECRET,
        "identity_key": ID_KEY,
        "currency": CurrencyPolicy(program_currency="EUR"),
    }
    fields.update(overrides)
    return ShopifyConfig(**fields)


def headers(body: bytes, topic: str = "orders/paid", **overrides: str) -> dict[str, str]:
    values = {
        "X-Shopify-Hmac-Sha256": sign(SECRET, body),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Triggered-At": (NOW - timedelta(seconds=30)).isoformat(),
        "X-Shopify-API-Version": "2025-10",
    }
    values.update(overrides)
    return values


def deliver(
    body: bytes,
    topic: str = "orders/paid",
    cfg: ShopifyConfig | None = None,
    hdrs: dict[str, str] | None = None,
) -> list[Any]:
    return parse_shopify_webhook(body, headers(body, topic, **(hdrs or {})), cfg or config(), now=NOW)


def test_orders_paid_earns_on_merchandise_after_discounts_without_shipping_tax_or_gift_cards() -> None:
    # Given a paid order: 2 x 20.00 less a 4.00 allocation, 1 x 15.50, a gift card, shipping and tax
    body = raw("shopify_orders_paid.json")

    # When it is delivered
    [event] = deliver(body)

    # Then only the merchandise earns, in the shop currency, identified by the hashed e-mail
    assert isinstance(event, PurchaseEvent)
    assert event.eligible_amount == Decimal("51.50")
    assert event.shipping == Decimal("5.00") and event.tax == Decimal("10.29")
    assert event.source == "shopify:acme.myshopify.com"
    assert event.external_id == "820982911946154508"
    assert event.reference == "#9999"  # the order number the customer sees, for the statement
    assert event.identity.kind is IdentityKind.EMAIL
    assert event.identity.value == hash_email(ID_KEY.encode(), "jon.snow@example.com")
    assert "jon" not in event.model_dump_json().lower()
    assert [(line.sku, line.quantity, line.amount) for line in event.lines] == [
        ("IPOD2008PINK", 2, Decimal("36.00")),
        ("product:921728736", 1, Decimal("15.50")),
    ]
    assert event.lines[0].category == "Cult Products"
    assert event.occurred_at == datetime(2026, 11, 25, 9, 58, 12, tzinfo=UTC)
    assert event.fx is None


def test_shipping_and_tax_earn_when_the_program_says_so() -> None:
    # Given a program that lets shipping and tax earn
    cfg = config(include_shipping=True, include_tax=True)

    # When the order arrives
    [event] = deliver(raw("shopify_orders_paid.json"), cfg=cfg)

    # Then they are added to the merchandise
    assert event.eligible_amount == Decimal("51.50") + Decimal("5.00") + Decimal("10.29")


def test_tax_inclusive_prices_have_their_tax_taken_out() -> None:
    # Given a shop whose prices include VAT
    order = load("shopify_orders_paid.json")
    order["taxes_included"] = True
    body = json.dumps(order).encode()

    # When it arrives
    [event] = deliver(body)

    # Then the first line's 6.84 of included tax does not earn
    assert event.eligible_amount == Decimal("51.50") - Decimal("6.84")


def test_presentment_currency_needs_a_configured_rate() -> None:
    # Given a program in EUR reading the buyer's USD amounts with no rate
    cfg = config(currency_basis="presentment")

    # When / Then the order is refused with the reason
    with pytest.raises(UnsupportedCurrencyError, match="no USD->EUR rate"):
        deliver(raw("shopify_orders_paid.json"), cfg=cfg)


def test_presentment_currency_converts_at_the_configured_rate_and_records_it() -> None:
    # Given a USD->EUR rate
    cfg = config(
        currency_basis="presentment",
        currency=CurrencyPolicy(program_currency="EUR", rates={"USD": Decimal("0.9")}),
    )

    # When the order arrives
    [event] = deliver(raw("shopify_orders_paid.json"), cfg=cfg)

    # Then USD merchandise (44.00 - 4.40 + 17.05 = 56.65) is converted half-up and recorded
    assert event.currency == "EUR"
    assert event.eligible_amount == Decimal("50.99")
    assert event.fx is not None and event.fx.original_amount == Decimal("56.65")
    assert event.fx.original_currency == "USD" and event.fx.rate == Decimal("0.9")


def test_customer_id_is_the_fallback_identity() -> None:
    # Given an order with no usable e-mail anywhere
    order = load("shopify_orders_paid.json")
    order["email"] = "not-an-address"
    order["contact_email"] = None
    order["customer"] = {"id": 115310627314723954}

    # When it arrives
    [event] = deliver(json.dumps(order).encode())

    # Then the shop's customer id, scoped by the shop, identifies the buyer
    assert event.identity.kind is IdentityKind.CUSTOMER
    assert event.identity.value == "115310627314723954"
    assert event.identity.scope == "shopify:acme.myshopify.com"


def test_an_order_with_no_identity_is_refused() -> None:
    # Given a guest order without e-mail or customer
    order = load("shopify_orders_paid.json")
    order.update(email=None, contact_email=None, customer=None)

    # When / Then
    with pytest.raises(MissingIdentityError):
        deliver(json.dumps(order).encode())


def test_test_orders_are_ignored_unless_accepted() -> None:
    # Given a test order
    order = load("shopify_orders_paid.json")
    order["test"] = True
    body = json.dumps(order).encode()

    # When / Then it earns nothing by default and earns when the source accepts test orders
    assert deliver(body) == []
    assert len(deliver(body, cfg=config(accept_test_orders=True))) == 1


def test_refunds_create_claws_back_the_refunded_merchandise() -> None:
    # Given a refund of one discounted line
    body = raw("shopify_refunds_create.json")

    # When it arrives
    [event] = deliver(body, topic="refunds/create")

    # Then the refund names the order and the merchandise subtotal, not tax or transactions
    assert isinstance(event, RefundEvent)
    assert event.external_id == "509562969"
    assert event.order_external_id == "820982911946154508"
    assert event.refunded_amount == Decimal("18.00")
    assert event.identity.kind is IdentityKind.ORDER
    assert event.lines[0].sku == "IPOD2008PINK"


def test_refund_without_line_items_produces_nothing() -> None:
    # Given an amount-only refund
    refund = load("shopify_refunds_create.json")
    refund["refund_line_items"] = []

    # When / Then
    assert deliver(json.dumps(refund).encode(), topic="refunds/create") == []


def test_a_tampered_body_is_refused() -> None:
    # Given a signature over the original body and a changed body
    body = raw("shopify_orders_paid.json")
    hdrs = headers(body)

    # When / Then
    with pytest.raises(BadSignatureError):
        parse_shopify_webhook(body.replace(b"20.00", b"2000.00"), hdrs, config(), now=NOW)


def test_a_missing_signature_is_refused() -> None:
    body = raw("shopify_orders_paid.json")
    hdrs = headers(body)
    del hdrs["X-Shopify-Hmac-Sha256"]
    with pytest.raises(BadSignatureError, match="missing"):
        parse_shopify_webhook(body, hdrs, config(), now=NOW)


def test_headers_are_matched_case_insensitively() -> None:
    body = raw("shopify_orders_paid.json")
    hdrs = {key.lower(): value for key, value in headers(body).items()}
    assert len(parse_shopify_webhook(body, hdrs, config(), now=NOW)) == 1


@pytest.mark.parametrize("offset", [timedelta(hours=-48, minutes=-1), timedelta(minutes=6)])
def test_deliveries_outside_the_window_are_stale(offset: timedelta) -> None:
    # Given a webhook triggered past Shopify's retry horizon, or six minutes in the future
    body = raw("shopify_orders_paid.json")

    # When / Then it is refused as stale
    with pytest.raises(StaleWebhookError):
        deliver(body, hdrs={"X-Shopify-Triggered-At": (NOW + offset).isoformat()})


@pytest.mark.parametrize(
    "age",
    [timedelta(minutes=6), timedelta(hours=4), timedelta(hours=25), timedelta(hours=48)],
    ids=["first retry", "last of 8 retries over 4 h", "a day late", "older 48 h schedule"],
)
def test_shopifys_retries_keep_the_original_triggered_at_and_are_accepted(age: timedelta) -> None:
    # Given the first delivery failed (a cold start, a deploy): Shopify retries with the original
    # payload and X-Shopify-Triggered-At, 8 times over 4 hours (2024 changelog), delivered up to a
    # day late at times, and 48 hours under its older schedule
    body = raw("shopify_orders_paid.json")

    # When a retry arrives that long after the order was triggered
    events = deliver(body, hdrs={"X-Shopify-Triggered-At": (NOW - age).isoformat()})

    # Then it still earns (the order id keys the event, so a retry after a success posts nothing twice)
    assert [e.external_id for e in events] == ["820982911946154508"]


def test_the_window_is_configurable() -> None:
    body = raw("shopify_orders_paid.json")
    late = (NOW - timedelta(hours=1)).isoformat()
    cfg = config(replay_window=timedelta(hours=2))
    assert len(deliver(body, cfg=cfg, hdrs={"X-Shopify-Triggered-At": late})) == 1


def test_another_shop_is_an_unknown_source() -> None:
    body = raw("shopify_orders_paid.json")
    with pytest.raises(UnknownSourceError):
        deliver(body, hdrs={"X-Shopify-Shop-Domain": "evil.myshopify.com"})


def test_topics_that_do_not_earn_are_refused_with_their_own_code() -> None:
    with pytest.raises(UnsupportedEventError):
        deliver(raw("shopify_orders_paid.json"), topic="orders/create")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", MalformedPayloadError),
        (b"[1, 2]", MalformedPayloadError),
        (b'{"line_items": []}', MalformedPayloadError),  # no id
    ],
)
def test_malformed_bodies_are_refused(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        deliver(body)


@pytest.mark.parametrize(
    ("price", "error"),
    [
        ("-5.00", AmountOutOfRangeError),
        ("99999999999.00", AmountOutOfRangeError),
        ("abc", MalformedPayloadError),
    ],
)
def test_negative_absurd_or_non_numeric_prices_are_refused(price: str, error: type[Exception]) -> None:
    # Given a line price that no real order has
    order = load("shopify_orders_paid.json")
    order["line_items"][1]["price_set"]["shop_money"]["amount"] = price

    # When / Then
    with pytest.raises(error):
        deliver(json.dumps(order).encode())


def test_an_unknown_currency_code_is_refused() -> None:
    order = load("shopify_orders_paid.json")
    order["currency"] = "XYZ"
    with pytest.raises(UnsupportedCurrencyError, match="not an ISO 4217"):
        deliver(json.dumps(order).encode())


@given(st.binary(max_size=300))
def test_only_the_signed_body_is_accepted(other: bytes) -> None:
    # Given a signature over the real body
    body = raw("shopify_orders_paid.json")
    hdrs = headers(body)

    # When any other body is presented with it / Then it is refused
    if other != body:
        with pytest.raises(BadSignatureError):
            parse_shopify_webhook(other, hdrs, config(), now=NOW)
