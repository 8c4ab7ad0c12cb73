"""Square webhooks: completed payments (or enriched completed orders) earn, completed refunds claw back.

Square signs base64(HMAC-SHA256(signature key, notification URL + raw body)) into
x-square-hmacsha256-signature. The URL is part of the signed text, so the configuration holds the
exact subscription URL, byte for byte.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from integrations.common import (
    array,
    as_bytes,
    build,
    check_amount,
    check_sent_within,
    header,
    obj,
    opt_obj,
    opt_text,
    parse_json_object,
    parse_time,
    text,
    verify_signature,
)
from integrations.currency import Converter, CurrencyPolicy, from_minor_units
from integrations.errors import (
    AmountOutOfRangeError,
    MalformedPayloadError,
    MissingIdentityError,
    UnknownSourceError,
    UnsupportedEventError,
)
from shared.events.identity import InvalidIdentityError, hash_card, hash_card_fingerprint, hash_email, hash_phone
from shared.events.model import Channel, Identity, IdentityKind, LineItem, PurchaseEvent, RefundEvent, Text

if TYPE_CHECKING:
    from collections.abc import Mapping

    from integrations.report import Event

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
# Square's retries (24 hours) and the first attempt's lag (see SquareConfig.replay_window).
SQUARE_RETRY_HORIZON = timedelta(hours=25)

# Where, in a payment, the till or the checkout put something that identifies the member.
IdentitySource = Literal[
    "card_in_reference_id",
    "card_in_note",
    "phone_in_reference_id",
    "phone_in_note",
    "buyer_email",
    "customer_id",
]
DEFAULT_IDENTITY_SOURCES: tuple[IdentitySource, ...] = (
    "card_in_reference_id",
    "card_in_note",
    "phone_in_note",
    "buyer_email",
    "customer_id",
)
PAYMENT_EVENTS = frozenset({"payment.created", "payment.updated"})
REFUND_EVENTS = frozenset({"refund.created", "refund.updated"})
ORDER_EVENTS = frozenset({"order.created", "order.updated", "order.fulfillment.updated"})


class SquareConfig(BaseModel):
    """One Square seller (merchant) feeding one program."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    program: Text
    merchant_id: Text
    notification_url: Text  # the subscription's URL exactly as registered with Square
    signature_key: SecretStr
    identity_key: SecretStr
    currency: CurrencyPolicy
    identity_sources: tuple[IdentitySource, ...] = Field(default=DEFAULT_IDENTITY_SOURCES, min_length=1)
    # Loyalty card numbers are printed digits; the pattern's first group is the number.
    card_pattern: str = r"(?:^|\D)(\d{8,19})(?:\D|$)"
    phone_region: str | None = None  # for phones typed without a country code
    include_tip: bool = False
    include_tax: bool = False
    # How old an event's created_at may be: Square retries an unacknowledged notification for up to
    # 24 hours, then discards it; the first attempt is typically within 60 seconds of the event
    # (developer.squareup.com, "Troubleshoot Webhooks"). An hour spare for that first attempt's lag.
    # The payment or refund id keys the event, so a retry after a success posts nothing twice.
    replay_window: timedelta = Field(default=SQUARE_RETRY_HORIZON, gt=timedelta(0))
    future_skew: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(0))

    @property
    def source(self) -> str:
        return f"square:{self.merchant_id}"


def parse_square_webhook(
    body: bytes | str, headers: Mapping[str, str], config: SquareConfig, *, now: datetime
) -> list[Event]:
    """Verify and normalise one notification. An empty list means "valid, but nothing earns yet"."""
    raw = as_bytes(body)
    verify_signature(
        config.signature_key.get_secret_value().encode("utf-8"),
        config.notification_url.encode("utf-8") + raw,
        header(headers, SIGNATURE_HEADER),
        SIGNATURE_HEADER,
    )
    envelope = parse_json_object(raw)
    merchant = opt_text(envelope, "merchant_id", "event")
    if merchant != config.merchant_id:
        raise UnknownSourceError(
            f"event is for merchant {merchant!r}, this source is {config.merchant_id!r}", merchant=merchant
        )
    # created_at is inside the signed body, so unlike a header it cannot be moved by a replayer.
    created = parse_time(envelope.get("created_at"), "event.created_at")
    check_sent_within(created, now, config.replay_window, config.future_skew, "event")
    kind = text(envelope, "type", "event")
    data_object = obj(obj(envelope, "data", "event"), "object", "event.data")
    if kind in PAYMENT_EVENTS:
        return _payment(obj(data_object, "payment", "event.data.object"), config)
    if kind in REFUND_EVENTS:
        return _refund(obj(data_object, "refund", "event.data.object"), config)
    if kind in ORDER_EVENTS:
        order = opt_obj(data_object, "order", "event.data.object")
        # Square's own order notifications carry only id, state and version; only an order event
        # enriched with the full Order (by our fetcher) has amounts to earn on.
        return [] if order is None else _order(order, config)
    raise UnsupportedEventError(f"Square event type {kind!r} does not earn or refund", event_type=kind)


def _money(data: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> tuple[Decimal, str] | None:
    value = data.get(key)
    if value is None:
        if required:
            raise MalformedPayloadError(f"{where}.{key} is missing")
        return None
    if not isinstance(value, dict):
        raise MalformedPayloadError(f"{where}.{key} must be an object")
    amount, currency = value.get("amount"), value.get("currency")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MalformedPayloadError(f"{where}.{key}.amount must be an integer in the currency's minor unit")
    if not isinstance(currency, str):
        raise MalformedPayloadError(f"{where}.{key}.currency is missing")
    if amount < 0:
        raise AmountOutOfRangeError(f"{where}.{key}.amount is negative: {amount}")
    return from_minor_units(amount, currency), currency


def _currency(data: Mapping[str, Any], key: str, where: str) -> str:
    found = _money(data, key, where)
    if found is None:  # unreachable: required money raises first; kept for the type checker
        raise MalformedPayloadError(f"{where}.{key} is missing")
    return found[1]


class _Amounts:
    """Reads Money objects that must all share one currency, then converts them for the program."""

    def __init__(self, config: SquareConfig, currency: str) -> None:
        self.currency = currency
        self.convert: Converter = config.currency.converter(currency)

    def read(self, data: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> Decimal:
        found = _money(data, key, where, required=required)
        if found is None:
            return Decimal(0)
        amount, currency = found
        if currency != self.currency:
            raise MalformedPayloadError(f"{where}.{key} is in {currency}, the rest in {self.currency}")
        return amount


def _identity(data: Mapping[str, Any], config: SquareConfig) -> Identity:
    id_key = config.identity_key.get_secret_value().encode("utf-8")
    for source in config.identity_sources:
        if source == "buyer_email":
            email = data.get("buyer_email_address")
            if isinstance(email, str) and email.strip():
                try:
                    return Identity(kind=IdentityKind.EMAIL, value=hash_email(id_key, email))
                except InvalidIdentityError:
                    continue
        elif source == "customer_id":
            customer = opt_text(data, "customer_id", "payment")
            if customer:
                return Identity(kind=IdentityKind.CUSTOMER, value=customer, scope=config.source)
        else:
            what, _, field = source.partition("_in_")
            value = data.get(field)
            if not isinstance(value, str) or not value.strip():
                continue
            if what == "card":
                match = re.search(config.card_pattern, value)
                if match:
                    # Hashed: a number in a note may be a payment card's, and is stored nowhere raw.
                    try:
                        return Identity(kind=IdentityKind.CARD, value=hash_card(id_key, match.group(1)))
                    except InvalidIdentityError:
                        continue
            else:
                try:
                    return Identity(kind=IdentityKind.PHONE, value=hash_phone(id_key, value, config.phone_region))
                except InvalidIdentityError:
                    continue
    raise MissingIdentityError(f"nothing identifies a member in {', '.join(config.identity_sources)}")


def _card(data: Mapping[str, Any], identity: Identity, config: SquareConfig) -> str | None:
    """The card the sale was paid with, hashed: Square's own card fingerprint (the same card in every
    location), else the loyalty card that identified the buyer; None when neither is there."""
    key = config.identity_key.get_secret_value().encode("utf-8")
    details = data.get("card_details")
    card = details.get("card") if isinstance(details, dict) else None
    fingerprint = card.get("fingerprint") if isinstance(card, dict) else None
    if isinstance(fingerprint, str) and fingerprint.strip():
        return hash_card_fingerprint(key, "square", fingerprint)
    if identity.kind is IdentityKind.CARD:
        return identity.value  # the loyalty card's keyed hash already
    return None


def _payment(payment: Mapping[str, Any], config: SquareConfig) -> list[Event]:
    if payment.get("status") != "COMPLETED":
        return []  # APPROVED, PENDING, CANCELED or FAILED money has not changed hands
    where = "payment"
    amounts = _Amounts(config, _currency(payment, "amount_money", where))
    # amount_money excludes the tip by Square's definition; payments carry no tax breakdown.
    base = amounts.read(payment, "amount_money", where, required=True)
    tip = amounts.read(payment, "tip_money", where)
    eligible = base + tip if config.include_tip else base
    identity = _identity(payment, config)
    return [
        build(
            PurchaseEvent,
            program=config.program,
            channel=Channel.POS,
            source=config.source,
            external_id=text(payment, "id", where),
            reference=str(payment.get("receipt_number") or "")[:64],
            identity=identity,
            card=_card(payment, identity, config),
            occurred_at=parse_time(payment.get("created_at"), "payment.created_at"),
            currency=config.currency.program_currency,
            eligible_amount=check_amount(amounts.convert(eligible), "eligible amount"),
            fx=amounts.convert.record(check_amount(eligible, "eligible amount")),
        )
    ]


def _quantity(value: object, where: str) -> int:
    """Square quantities are decimal strings ("1", "0.5" kg); weighed goods count as one line unit."""
    try:
        qty = Decimal(str(value))
    except InvalidOperation:
        raise MalformedPayloadError(f"{where}.quantity is not a number") from None
    if not qty.is_finite() or qty <= 0:
        raise MalformedPayloadError(f"{where}.quantity must be positive")
    return int(qty) if qty == qty.to_integral_value() else 1


def _order(order: Mapping[str, Any], config: SquareConfig) -> list[Event]:
    if order.get("state") != "COMPLETED":
        return []
    where = "order"
    amounts = _Amounts(config, _currency(order, "total_money", where))
    total = amounts.read(order, "total_money", where, required=True)
    tax = amounts.read(order, "total_tax_money", where)
    tip = amounts.read(order, "total_tip_money", where)
    service = amounts.read(order, "total_service_charge_money", where)
    eligible = total - service - (0 if config.include_tax else tax) - (0 if config.include_tip else tip)
    lines = []
    for index, line in enumerate(array(order, "line_items", where)):
        line_where = f"{where}.line_items[{index}]"
        if not isinstance(line, dict):
            raise MalformedPayloadError(f"{line_where} must be an object")
        line_total = amounts.read(line, "total_money", line_where, required=True)
        line_tax = amounts.read(line, "total_tax_money", line_where)
        sku = opt_text(line, "catalog_object_id", line_where) or opt_text(line, "uid", line_where) or "custom"
        lines.append(
            build(
                LineItem,
                sku=sku,
                quantity=_quantity(line.get("quantity"), line_where),
                amount=check_amount(amounts.convert(line_total - line_tax), f"{line_where} amount"),
            )
        )
    tenders = [t for t in array(order, "tenders", where) if isinstance(t, dict)]
    payment_ids = {opt_text(t, "payment_id", "order.tenders") or opt_text(t, "id", "order.tenders") for t in tenders}
    # One tender: key by the payment, so a payment event for the same sale is the same earn.
    external_id = next(iter(payment_ids)) if len(payment_ids) == 1 and None not in payment_ids else None
    tender = tenders[0] if tenders else {}
    identity = _identity({**order, **tender}, config)
    return [
        build(
            PurchaseEvent,
            program=config.program,
            channel=Channel.POS,
            source=config.source,
            external_id=external_id or text(order, "id", where),
            identity=identity,
            card=_card(tender, identity, config),
            occurred_at=parse_time(order.get("closed_at") or order.get("created_at"), "order.closed_at"),
            currency=config.currency.program_currency,
            eligible_amount=check_amount(amounts.convert(eligible), "eligible amount"),
            lines=tuple(lines),
            tax=check_amount(amounts.convert(tax), "tax"),
            fx=amounts.convert.record(check_amount(eligible, "eligible amount")),
        )
    ]


def _refund(refund: Mapping[str, Any], config: SquareConfig) -> list[Event]:
    if refund.get("status") != "COMPLETED":
        return []  # PENDING refunds may still be REJECTED; claw back once money has gone back
    where = "refund"
    amounts = _Amounts(config, _currency(refund, "amount_money", where))
    refunded = amounts.read(refund, "amount_money", where, required=True)
    payment_id = text(refund, "payment_id", where)
    return [
        build(
            RefundEvent,
            program=config.program,
            channel=Channel.POS,
            source=config.source,
            external_id=text(refund, "id", where),
            identity=Identity(kind=IdentityKind.ORDER, value=payment_id, scope=config.source),
            occurred_at=parse_time(refund.get("created_at"), "refund.created_at"),
            order_external_id=payment_id,
            currency=config.currency.program_currency,
            refunded_amount=check_amount(amounts.convert(refunded), "refunded amount"),
            fx=amounts.convert.record(check_amount(refunded, "refunded amount")),
        )
    ]
