"""Partner brand feeds, CSV or JSON lines: points the partner already computed, or amounts to earn on.

Members are the partner's own ids (a PARTNER identity scoped by the partner), linked to ours when
the member connects the two accounts.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from integrations.batch import collect, csv_rows, decode, event_time, field, jsonl_rows, optional
from integrations.common import build, check_amount, parse_money
from integrations.currency import CurrencyPolicy
from integrations.errors import AdapterError, AmountOutOfRangeError, MalformedPayloadError
from integrations.report import BatchReport, RejectedRow
from shared.events.model import MAX_POINTS, Channel, Identity, IdentityKind, PointsEvent, PurchaseEvent, Text

if TYPE_CHECKING:
    from collections.abc import Iterator

    from integrations.batch import Row
    from integrations.report import Event

REQUIRED = frozenset({"partner_member_id", "external_id", "occurred_at"})
ALIASES = {
    "member_id": "partner_member_id",
    "member": "partner_member_id",
    "id": "external_id",
    "transaction_id": "external_id",
    "timestamp": "occurred_at",
    "date_time": "occurred_at",
    "note": "reason",
    "description": "reason",
    "memo": "reason",
    "amount_spent": "amount",
}
_MEMBER = re.compile(r"^[A-Za-z0-9_.\-@:/]{1,100}$")


class PartnerFeedConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    program: Text
    partner_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,49}$")
    currency: CurrencyPolicy
    max_age: timedelta = Field(default=timedelta(days=30), gt=timedelta(0))
    future_skew: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(0))

    @property
    def source(self) -> str:
        return f"partner:{self.partner_id}"


def parse_partner_feed(
    raw: bytes | str, config: PartnerFeedConfig, *, now: datetime, fmt: Literal["csv", "jsonl"]
) -> BatchReport:
    """Never raises for bad input: every problem is a RejectedRow with its line number and reason."""
    report = BatchReport()
    try:
        text = decode(raw)
    except AdapterError as exc:
        report.rejected.append(RejectedRow(0, exc.code, exc.detail))
        return report
    rows = csv_rows(text, REQUIRED, ALIASES, report) if fmt == "csv" else jsonl_rows(text, report)
    return _convert(rows, config, now, report)


def parse_partner_chunk(
    header: str,
    body: bytes,
    first_line: int,
    config: PartnerFeedConfig,
    *,
    now: datetime,
    fmt: Literal["csv", "jsonl"],
    header_at: int = 1,
) -> BatchReport:
    """One chunk of a feed (`integrations.batch.layout`): its rows, numbered as in the whole file.

    An external id repeated within the chunk is refused here; repeated across chunks, ingest posts
    it once (the same row) or dead-letters it as `idempotency_conflict` (a different one).
    """
    report = BatchReport()
    text = decode(body)
    if fmt == "csv":
        rows = csv_rows(text, REQUIRED, ALIASES, report, header_line=header, header_at=header_at, first_line=first_line)
    else:
        rows = jsonl_rows(text, report, first_line=first_line)
    return _convert(rows, config, now, report)


def _convert(rows: Iterator[Row], config: PartnerFeedConfig, now: datetime, report: BatchReport) -> BatchReport:
    seen: set[str] = set()

    def convert(row: Row) -> Event:
        event = _row(row, config, now)
        if event.external_id in seen:
            raise MalformedPayloadError(f"external_id {event.external_id} appears twice in this file")
        seen.add(event.external_id)
        return event

    return collect(rows, convert, report)


def _points(value: object) -> int:
    if isinstance(value, bool):
        raise MalformedPayloadError("points must be a whole number")
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,12}", value.strip()):
        value = int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value() and abs(value) < 10**12:
        value = int(value)
    if not isinstance(value, int):
        raise MalformedPayloadError("points must be a whole number")
    if value <= 0:
        raise AmountOutOfRangeError(f"points must be positive, got {value}")
    if value > MAX_POINTS:
        raise AmountOutOfRangeError(f"points {value} are above the {MAX_POINTS} cap")
    return value


def _row(row: Row, config: PartnerFeedConfig, now: datetime) -> Event:
    member = field(row, "partner_member_id")
    if not _MEMBER.match(member):
        raise MalformedPayloadError("partner_member_id must be 1-100 letters, digits or _ . - @ : /")
    common = {
        "program": config.program,
        "channel": Channel.PARTNER,
        "source": config.source,
        "external_id": field(row, "external_id"),
        "identity": Identity(kind=IdentityKind.PARTNER, value=member, scope=config.partner_id),
        "occurred_at": event_time(row, "occurred_at", now, config.max_age, config.future_skew),
    }
    points, amount = row.values.get("points"), row.values.get("amount")
    has_points = points not in (None, "")
    has_amount = amount not in (None, "")
    if has_points == has_amount:
        raise MalformedPayloadError("a row carries exactly one of points and amount")
    if has_points:
        reason = optional(row, "reason") or "partner points"
        return build(PointsEvent, points=_points(points), reason=reason[:200], **common)
    currency = field(row, "currency").upper()
    convert = config.currency.converter(currency)
    value = parse_money(amount, "amount")
    if value == 0:
        raise AmountOutOfRangeError("amount must be greater than zero")
    return build(
        PurchaseEvent,
        currency=config.currency.program_currency,
        eligible_amount=check_amount(convert(value), "amount"),
        fx=convert.record(check_amount(value, "amount")),
        **common,
    )
