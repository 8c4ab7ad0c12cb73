"""Till end-of-day CSV: one row per sale or refund, identified by loyalty card or phone.

The layout is ours (docs/channels.md, "Till end-of-day CSV"); every till vendor exports to it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from integrations.batch import collect, csv_rows, decode, event_time, field, optional
from integrations.common import build, check_amount, parse_money
from integrations.currency import CurrencyPolicy
from integrations.errors import (
    AdapterError,
    AmountOutOfRangeError,
    MalformedPayloadError,
    MissingIdentityError,
    UnknownSourceError,
)
from integrations.report import BatchReport, RejectedRow
from shared.events.identity import InvalidIdentityError, hash_card, hash_phone
from shared.events.model import Channel, Identity, IdentityKind, PurchaseEvent, RefundEvent, Text

if TYPE_CHECKING:
    from collections.abc import Iterator

    from integrations.batch import Row
    from integrations.report import Event

REQUIRED = frozenset({"store_id", "till_id", "receipt_no", "occurred_at", "currency", "amount", "type"})
ALIASES = {
    "store": "store_id",
    "shop_id": "store_id",
    "till": "till_id",
    "register_id": "till_id",
    "receipt": "receipt_no",
    "receipt_number": "receipt_no",
    "timestamp": "occurred_at",
    "date_time": "occurred_at",
    "card": "card_number",
    "card_no": "card_number",
    "loyalty_card": "card_number",
    "phone_number": "phone",
    "mobile": "phone",
    "total": "amount",
    "transaction_type": "type",
    "original_receipt": "original_receipt_no",
    "original_receipt_number": "original_receipt_no",
}
_ID = re.compile(r"^[A-Za-z0-9_.\-/]{1,60}$")  # no ':' so till:receipt keys stay unambiguous


class TillCsvConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    program: Text
    identity_key: SecretStr
    currency: CurrencyPolicy
    phone_region: str | None = None  # tills often print national numbers
    store_ids: frozenset[str] | None = None  # when set, rows from other stores are refused
    max_age: timedelta = Field(default=timedelta(days=14), gt=timedelta(0))
    future_skew: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(0))


def parse_till_csv(raw: bytes | str, config: TillCsvConfig, *, now: datetime) -> BatchReport:
    """Never raises for bad input: every problem is a RejectedRow with its line number and reason."""
    report = BatchReport()
    try:
        text = decode(raw)
    except AdapterError as exc:
        report.rejected.append(RejectedRow(0, exc.code, exc.detail))
        return report
    return _convert(csv_rows(text, REQUIRED, ALIASES, report), config, now, report)


def parse_till_chunk(
    header: str, body: bytes, first_line: int, config: TillCsvConfig, *, now: datetime, header_at: int = 1
) -> BatchReport:
    """One chunk of a till file (`integrations.batch.layout`): its rows, numbered as in the whole file.

    A receipt repeated within the chunk is refused here; repeated across chunks, ingest posts it
    once (the same row) or dead-letters it as `idempotency_conflict` (a different one).
    """
    report = BatchReport()
    rows = csv_rows(
        decode(body), REQUIRED, ALIASES, report, header_line=header, header_at=header_at, first_line=first_line
    )
    return _convert(rows, config, now, report)


def _convert(rows: Iterator[Row], config: TillCsvConfig, now: datetime, report: BatchReport) -> BatchReport:
    seen: set[tuple[str, str]] = set()

    def convert(row: Row) -> Event:
        event = _row(row, config, now)
        key = (event.source, event.external_id)
        if key in seen:
            raise MalformedPayloadError(f"receipt {event.external_id} appears twice in this file")
        seen.add(key)
        return event

    return collect(rows, convert, report)


def _id(row: Row, name: str) -> str:
    value = field(row, name)
    if not _ID.match(value):
        raise MalformedPayloadError(f"{name} {value[:40]!r} must be 1-60 letters, digits or _ . - /")
    return value


def _identity(row: Row, config: TillCsvConfig) -> Identity:
    card = optional(row, "card_number")
    if card:
        try:
            key = config.identity_key.get_secret_value().encode("utf-8")
            return Identity(kind=IdentityKind.CARD, value=hash_card(key, card))
        except InvalidIdentityError:
            raise MalformedPayloadError("card_number must be 4-32 letters or digits") from None
    phone = optional(row, "phone")
    if phone:
        key = config.identity_key.get_secret_value().encode("utf-8")
        try:
            return Identity(kind=IdentityKind.PHONE, value=hash_phone(key, phone, config.phone_region))
        except InvalidIdentityError as exc:
            raise MalformedPayloadError(f"phone: {exc.detail}") from None
    raise MissingIdentityError("row has neither card_number nor phone")


def _row(row: Row, config: TillCsvConfig, now: datetime) -> Event:
    store = _id(row, "store_id")
    if config.store_ids is not None and store not in config.store_ids:
        raise UnknownSourceError(f"store {store!r} is not one of this program's stores")
    till, receipt = _id(row, "till_id"), _id(row, "receipt_no")
    kind = field(row, "type").lower()
    currency = field(row, "currency").upper()
    convert = config.currency.converter(currency)
    amount = parse_money(field(row, "amount"), "amount")
    if amount == 0:
        raise AmountOutOfRangeError("amount must be greater than zero")
    common = {
        "program": config.program,
        "channel": Channel.POS,
        "source": f"till:{store}",
        "external_id": f"{till}:{receipt}",
        "occurred_at": event_time(row, "occurred_at", now, config.max_age, config.future_skew),
        "currency": config.currency.program_currency,
        "fx": convert.record(check_amount(amount, "amount")),
    }
    converted = check_amount(convert(amount), "amount")
    if kind == "sale":
        identity = _identity(row, config)
        # The card presented (its keyed hash, as the identity holds it): counted by the velocity check.
        card = identity.value if identity.kind is IdentityKind.CARD else None
        return build(PurchaseEvent, identity=identity, eligible_amount=converted, card=card, **common)
    if kind == "refund":
        original = optional(row, "original_receipt_no")
        if not original:
            raise MalformedPayloadError("a refund row needs original_receipt_no")
        # "R123" is a receipt of the same till; "T2:R123" names the till it was sold at.
        original_till, _, original_receipt = original.rpartition(":")
        order = f"{original_till or till}:{original_receipt}"
        if not _ID.match(original_receipt) or (original_till and not _ID.match(original_till)):
            raise MalformedPayloadError(f"original_receipt_no {original[:40]!r} is not [till:]receipt")
        identity = _identity_or_order(row, config, order, store)
        return build(RefundEvent, identity=identity, order_external_id=order, refunded_amount=converted, **common)
    raise MalformedPayloadError(f"type {kind[:20]!r} is neither sale nor refund")


def _identity_or_order(row: Row, config: TillCsvConfig, order: str, store: str) -> Identity:
    """Refund rows often lack the card (the customer left it at home); the sale knows the member."""
    try:
        return _identity(row, config)
    except MissingIdentityError:
        return Identity(kind=IdentityKind.ORDER, value=order, scope=f"till:{store}")
