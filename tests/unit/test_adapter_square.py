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
from integrations.square import SquareConfig, parse_square_webhook
from shared.events.identity import hash_card, hash_email, hash_phone
from shared.events.model import IdentityKind, PurchaseEvent, RefundEvent
from tests.unit.adapter_helpers import load, raw, sign

KEY = "sq-signature-key"
URL = "https://hooks.pointbridge.example/square/acme"
ID_KEY = "identity-key"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def config(**overrides: Any) -> SquareConfig:
    fields: dict[str, Any] = {
        "program": "acme",
        "merchant_id": "6SSW7HV8K2ST5",
        "notification_url": URL,
        "signature_key": KEY,
        "identity_key": ID_KEY,
        "currency": CurrencyPolicy(program_currency="USD"),
    }
    fields.update(overrides)
    return SquareConfig(**fields)


def deliver(body: bytes, cfg: SquareConfig | None = None) -> list[Any]:
    headers = {"X-Square-HmacSha256-Signature": sign(KEY, URL.encode() + body)}
    return parse_square_webhook(body, headers, cfg or config(), now=NOW)


def edited(name: str, edit: Any) -> bytes:
    payload = load(name)
    edit(payload)
    return json.dumps(payload).encode()


def payment_of(payload: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = payload["data"]["object"]["payment"]
    return result


def test_completed_payment_earns_on_the_amount_without_the_tip() -> None:
    # Given a completed card payment of 12.50 plus a 2.00 tip, with a card number in reference_id
    body = raw("square_payment_updated.json")

    # When it is delivered
    [event] = deliver(body)

    # Then 12.50 earns, keyed by the payment and the loyalty card
    assert isinstance(event, PurchaseEvent)
    assert event.eligible_amount == Decimal("12.50")
    assert event.external_id == "hYy9pRFVxpDsO1FB05SunFWUe9JZY"
    assert event.reference == "hYy9"  # the receipt number
    assert event.source == "square:6SSW7HV8K2ST5"
    assert event.identity.kind is IdentityKind.CARD and event.identity.value == hash_card(ID_KEY.encode(), "6012345678")
    assert event.occurred_at == datetime(2026, 11, 25, 9, 59, 31, 126000, tzinfo=UTC)


def test_tip_earns_when_configured() -> None:
    [event] = deliver(raw("square_payment_updated.json"), config(include_tip=True))
    assert event.eligible_amount == Decimal("14.50")


def test_identity_falls_back_through_the_configured_sources() -> None:
    # Given a payment with no card number anywhere
    def no_card(payload: dict[str, Any]) -> None:
        payment_of(payload)["reference_id"] = "table 4"

    body = edited("square_payment_updated.json", no_card)

    # When / Then the phone in the note is hashed
    [event] = deliver(body)
    assert event.identity.kind is IdentityKind.PHONE
    assert event.identity.value == hash_phone(ID_KEY.encode(), "+14155552671")

    # And when only the e-mail is allowed, the hashed e-mail is used
    [event] = deliver(body, config(identity_sources=("buyer_email",)))
    assert event.identity.value == hash_email(ID_KEY.encode(), "amelia.earhart@example.com")

    # And the customer id is the last resort
    [event] = deliver(body, config(identity_sources=("customer_id",)))
    assert event.identity.kind is IdentityKind.CUSTOMER and event.identity.scope == "square:6SSW7HV8K2ST5"


def test_nothing_identifying_is_refused() -> None:
    body = raw("square_payment_updated.json")
    with pytest.raises(MissingIdentityError):
        deliver(body, config(identity_sources=("phone_in_reference_id",)))


@pytest.mark.parametrize("status", ["APPROVED", "PENDING", "CANCELED", "FAILED"])
def test_payments_that_are_not_completed_earn_nothing(status: str) -> None:
    body = edited("square_payment_updated.json", lambda p: payment_of(p).update(status=status))
    assert deliver(body) == []


@pytest.mark.parametrize(("currency", "amount", "expected"), [("JPY", 1250, "1250"), ("KWD", 1250, "1.250")])
def test_minor_units_follow_the_currency_exponent(currency: str, amount: int, expected: str) -> None:
    # Given a payment in a currency whose minor unit is not the cent
    def retarget(payload: dict[str, Any]) -> None:
        payment_of(payload)["amount_money"] = {"amount": amount, "currency": currency}
        payment_of(payload)["tip_money"] = {"amount": 0, "currency": currency}

    body = edited("square_payment_updated.json", retarget)
    cfg = config(currency=CurrencyPolicy(program_currency=currency))

    # When / Then the integer is scaled by that currency's exponent
    [event] = deliver(body, cfg)
    assert event.eligible_amount == Decimal(expected)


def test_a_foreign_currency_without_a_rate_is_refused() -> None:
    cfg = config(currency=CurrencyPolicy(program_currency="EUR"))
    with pytest.raises(UnsupportedCurrencyError, match="USD->EUR"):
        deliver(raw("square_payment_updated.json"), cfg)


def test_an_unknown_currency_is_refused() -> None:
    body = edited(
        "square_payment_updated.json",
        lambda p: payment_of(p).update(amount_money={"amount": 100, "currency": "ABC"}),
    )
    with pytest.raises(UnsupportedCurrencyError):
        deliver(body)


@pytest.mark.parametrize(
    ("amount", "error"),
    [(-100, AmountOutOfRangeError), (10**15, AmountOutOfRangeError), ("1250", MalformedPayloadError)],
)
def test_negative_absurd_or_string_amounts_are_refused(amount: object, error: type[Exception]) -> None:
    body = edited(
        "square_payment_updated.json",
        lambda p: payment_of(p).update(amount_money={"amount": amount, "currency": "USD"}),
    )
    with pytest.raises(error):
        deliver(body)


def test_completed_refund_claws_back_against_the_payment() -> None:
    # Given a completed refund of 5.00
    [event] = deliver(raw("square_refund_updated.json"))

    # Then it names the payment the purchase was keyed by
    assert isinstance(event, RefundEvent)
    assert event.refunded_amount == Decimal("5.00")
    assert event.order_external_id == "hYy9pRFVxpDsO1FB05SunFWUe9JZY"
    assert event.identity.kind is IdentityKind.ORDER


def test_pending_refunds_wait() -> None:
    body = edited("square_refund_updated.json", lambda p: p["data"]["object"]["refund"].update(status="PENDING"))
    assert deliver(body) == []


def test_an_enriched_completed_order_earns_without_tax_and_tip_keyed_by_its_payment() -> None:
    # Given a completed order 19.82 with 1.32 tax and a 2.00 tip, paid by one tender
    [event] = deliver(raw("square_order_updated_enriched.json"))

    # Then 16.50 earns, under the same key as the payment event for the sale
    assert event.eligible_amount == Decimal("16.50")
    assert event.tax == Decimal("1.32")
    assert event.external_id == "hYy9pRFVxpDsO1FB05SunFWUe9JZY"
    assert [(line.sku, line.quantity, line.amount) for line in event.lines] == [
        ("W62UWFY35CWMYGVWK6TWJDNI", 2, Decimal("9.00")),
        ("v8ZuEXpOJpb0bazLuvrLDB", 1, Decimal("7.50")),
    ]
    assert event.identity.value == hash_card(ID_KEY.encode(), "6012345678")


def test_a_plain_order_notification_carries_no_amounts_and_earns_nothing() -> None:
    body = edited("square_order_updated_enriched.json", lambda p: p["data"]["object"].pop("order"))
    assert deliver(body) == []


def test_other_event_types_are_unsupported() -> None:
    body = edited("square_payment_updated.json", lambda p: p.update(type="customer.created"))
    with pytest.raises(UnsupportedEventError):
        deliver(body)


def test_another_merchant_is_an_unknown_source() -> None:
    body = edited("square_payment_updated.json", lambda p: p.update(merchant_id="OTHER"))
    with pytest.raises(UnknownSourceError):
        deliver(body)


@pytest.mark.parametrize("offset", [timedelta(hours=-25, minutes=-1), timedelta(minutes=10)])
def test_events_outside_the_window_are_stale(offset: timedelta) -> None:
    body = edited("square_payment_updated.json", lambda p: p.update(created_at=(NOW + offset).isoformat()))
    with pytest.raises(StaleWebhookError):
        deliver(body)


@pytest.mark.parametrize("age", [timedelta(minutes=10), timedelta(hours=6), timedelta(hours=24)])
def test_squares_retries_for_up_to_a_day_are_accepted(age: timedelta) -> None:
    # Given a notification Square retries (for up to 24 hours, same event and created_at)
    body = edited("square_payment_updated.json", lambda p: p.update(created_at=(NOW - age).isoformat()))
    # When / Then a retry that late still earns
    assert len(deliver(body)) == 1


def test_the_signature_covers_the_notification_url() -> None:
    # Given a body signed for a different URL
    body = raw("square_payment_updated.json")
    headers = {"x-square-hmacsha256-signature": sign(KEY, b"https://elsewhere.example/hook" + body)}

    # When / Then
    with pytest.raises(BadSignatureError):
        parse_square_webhook(body, headers, config(), now=NOW)


@pytest.mark.parametrize("body", [b"", b"{", b"null", b'{"merchant_id": "6SSW7HV8K2ST5"}'])
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedPayloadError):
        deliver(body)


@given(st.binary(max_size=200), st.text(max_size=40))
def test_only_the_exact_url_and_body_verify(body: bytes, url: str) -> None:
    # Given a signature made over some other URL + body pair
    real = raw("square_payment_updated.json")
    headers = {"x-square-hmacsha256-signature": sign(KEY, url.encode() + body)}

    # When the real body is presented / Then it verifies only if the signed text was identical
    if url.encode() + body != URL.encode() + real:
        with pytest.raises(BadSignatureError):
            parse_square_webhook(real, headers, config(), now=NOW)
