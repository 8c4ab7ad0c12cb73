"""Signed but hostile bodies: whatever a field holds, webhook adapters answer events or a typed error."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.currency import CurrencyPolicy
from integrations.errors import AdapterError
from integrations.shopify import ShopifyConfig, parse_shopify_webhook
from integrations.square import SquareConfig, parse_square_webhook
from tests.unit.adapter_helpers import load, sign

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.just("12.50"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def replaced(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> bytes:
    result = copy.deepcopy(document)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return json.dumps(result).encode()


SHOPIFY_ORDER = load("shopify_orders_paid.json")
SHOPIFY_REFUND = load("shopify_refunds_create.json")
SQUARE = [load(name) for name in ("square_payment_updated.json", "square_refund_updated.json")]
SQUARE.append(load("square_order_updated_enriched.json"))
SHOPIFY_CONFIG = ShopifyConfig(
    program="p",
    shop_domain="acme.myshopify.com",
    webhook_secret="s",
    identity_key="k",
    currency=CurrencyPolicy(program_currency="EUR"),
)
SQUARE_CONFIG = SquareConfig(
    program="p",
    merchant_id="6SSW7HV8K2ST5",
    notification_url="https://h.example/sq",
    signature_key="s",
    identity_key="k",
    currency=CurrencyPolicy(program_currency="USD"),
)


@settings(max_examples=300, deadline=None)
@given(st.data(), JSON)
def test_shopify_answers_events_or_a_typed_error(data: st.DataObject, value: Any) -> None:
    # Given a signed orders/paid or refunds/create body with one field replaced by arbitrary JSON
    topic, document = data.draw(st.sampled_from([("orders/paid", SHOPIFY_ORDER), ("refunds/create", SHOPIFY_REFUND)]))
    body = replaced(document, data.draw(st.sampled_from(paths(document))), value)
    headers = {
        "X-Shopify-Hmac-Sha256": sign("s", body),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "acme.myshopify.com",
        "X-Shopify-Triggered-At": (NOW - timedelta(seconds=5)).isoformat(),
    }
    # When it is parsed / Then nothing but an AdapterError escapes
    try:
        parse_shopify_webhook(body, headers, SHOPIFY_CONFIG, now=NOW)
    except AdapterError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data(), JSON)
def test_square_answers_events_or_a_typed_error(data: st.DataObject, value: Any) -> None:
    document = data.draw(st.sampled_from(SQUARE))
    document = {**document, "created_at": NOW.isoformat()}
    body = replaced(document, data.draw(st.sampled_from(paths(document))), value)
    headers = {"x-square-hmacsha256-signature": sign("s", b"https://h.example/sq" + body)}
    try:
        parse_square_webhook(body, headers, SQUARE_CONFIG, now=NOW)
    except AdapterError:
        pass
