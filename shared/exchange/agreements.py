"""Partner exchange: swapping points of one program (A) for points of another (B).

Each program is its own currency, so "conservation" is stated per program and per exchange:

- Within each program the entries still sum to zero: in A the member's available points go down
  by `gross` and the partner account PARTNER(owner=B) goes up by `gross`; in B PARTNER(owner=A)
  goes down by `credited` and the member's available points go up by `credited`. The audit checks
  both programs independently, as for any other entry.
- Across programs the agreement's rule links the two numbers exactly:
  `credited = floor((gross - fee) * rate)` and `residue = (gross - fee) * rate - credited`,
  with 0 <= residue < 1 point of B. The residue is never paid to anybody; it is recorded on both
  entries (with the rate and fee), so the pair can be re-derived: `check_pair` recomputes it, and
  the partner settlement (shared.settlement) sums it. Rounding is always down: the member never
  receives a fraction that B did not agree to issue, and a rounding error can only ever be less
  than one point of B per exchange.

Both entries are written in ONE transaction (Ledger.send), so one side never exists without
the other.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, ConfigDict, Field, ValidationError, model_validator

from shared.errors import (
    ConfigError,
    InvalidInputError,
    LimitReachedError,
    NotFoundError,
    QuoteExpiredError,
    UnknownAgreementError,
)
from shared.infra import keys
from shared.ledger.commands import Send
from shared.ledger.contract import Guard, GuardRefusedError
from shared.ledger.models import Account, EntryKind
from shared.model import Model
from shared.program.config import ProgramId, RuleId

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shared.exchange.store import ExchangeItems
    from shared.ledger.ledger import Ledger
    from shared.ledger.models import Entry
    from shared.program.store import Documents

SOURCE = "exchange"
Rate = Annotated[Decimal, Field(gt=0, le=Decimal(10_000), max_digits=14, decimal_places=8)]


class UnknownQuoteError(NotFoundError):
    """Raised when an execution names a quote that was never issued."""

    code = "unknown_quote"


class Agreement(Model):
    """Members of `from_program` may swap points into `to_program` at `rate` B-points per A-point."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: RuleId
    version: Annotated[int, Field(ge=1)]
    from_program: ProgramId
    to_program: ProgramId
    rate: Rate
    minimum: Annotated[int, Field(gt=0, le=100_000_000)] = 1  # smallest gross, in A-points
    increment: Annotated[int, Field(gt=0, le=1_000_000)] = 1  # gross must be a multiple of it
    daily_limit: Annotated[int, Field(gt=0)] | None = None  # gross A-points per member per UTC day
    fee_points: Annotated[int, Field(ge=0, le=1_000_000)] = 0  # flat fee, in A-points, kept by A
    quote_seconds: Annotated[int, Field(ge=10, le=3600)] = 300
    active: bool = True

    @model_validator(mode="after")
    def _check(self) -> Agreement:
        if self.from_program == self.to_program:
            raise ValueError("an agreement links two different programs")
        if self.fee_points >= self.minimum:
            raise ValueError("the minimum must exceed the fee, or an exchange could credit nothing")
        return self

    def parties(self) -> frozenset[str]:
        return frozenset({self.from_program, self.to_program})


class Quote(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    quote_id: str
    agreement: str
    agreement_version: int
    from_program: str
    to_program: str
    member: str
    to_member: str
    gross: int  # A-points debited
    fee: int  # A-points kept by A
    rate: Decimal
    credited: int  # B-points credited
    residue: Decimal  # B-points lost to rounding down, 0 <= residue < 1
    expires_at: AwareDatetime


def parse_agreement(body: object) -> Agreement:
    try:
        return Agreement.model_validate(body)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid agreement: {reasons}", reasons=reasons) from exc


def publish_agreement(documents: Documents, agreement: Agreement) -> Agreement:
    if not documents.publish(keys.agreement_pk(agreement.id), agreement.version, agreement.model_dump_json()):
        raise ConfigError(f"agreement version {agreement.version} exists or is not newer than the live one")
    return agreement


def live_agreement(documents: Documents, agreement_id: str) -> Agreement:
    body = documents.live(keys.agreement_pk(agreement_id))
    agreement = Agreement.model_validate_json(body) if body else None
    if agreement is None or not agreement.active:
        raise UnknownAgreementError(f"no active agreement {agreement_id!r}")
    return agreement


def convert(agreement: Agreement, gross: int) -> tuple[int, Decimal]:
    """The one rounding rule: B-points = floor((gross - fee) * rate); returns (credited, residue)."""
    exact = Decimal(gross - agreement.fee_points) * agreement.rate
    credited = int(exact.to_integral_value(rounding=ROUND_FLOOR))
    return credited, exact - credited


def quote(agreement: Agreement, member: str, to_member: str, gross: int, now: datetime) -> Quote:
    if gross < agreement.minimum:
        raise InvalidInputError(f"the smallest exchange under {agreement.id} is {agreement.minimum} points")
    if gross % agreement.increment:
        raise InvalidInputError(f"exchanges under {agreement.id} go in steps of {agreement.increment} points")
    credited, residue = convert(agreement, gross)
    if credited <= 0:
        raise InvalidInputError(f"{gross} points would buy no points of {agreement.to_program}")
    return Quote(
        quote_id=uuid.uuid4().hex,
        agreement=agreement.id,
        agreement_version=agreement.version,
        from_program=agreement.from_program,
        to_program=agreement.to_program,
        member=member,
        to_member=to_member,
        gross=gross,
        fee=agreement.fee_points,
        rate=agreement.rate,
        credited=credited,
        residue=residue,
        expires_at=now + timedelta(seconds=agreement.quote_seconds),
    )


def save_quote(items: ExchangeItems, q: Quote) -> Quote:
    items.put_quote(q.quote_id, q.model_dump_json(), q.expires_at)
    return q


def load_quote(items: ExchangeItems, quote_id: str) -> Quote:
    body = items.get_quote(quote_id)
    if body is None:
        raise UnknownQuoteError(f"no quote {quote_id!r}")
    return Quote.model_validate_json(body)


def execute(ledger: Ledger, agreement: Agreement, q: Quote, now: datetime) -> Entry:
    """Debit in A and credit in B in one transaction; returns the debit entry (the credit is `<id>/in`)."""
    if now >= q.expires_at:
        raise QuoteExpiredError(f"quote {q.quote_id} expired at {q.expires_at.isoformat()}")
    guards: list[Guard] = []
    if agreement.daily_limit is not None:
        guards.append(
            Guard(
                key=keys.exchanged(q.from_program, q.member, agreement.id, now.date().isoformat()),
                amount=q.gross,
                limit=agreement.daily_limit,
                detail=f"exchanges under {agreement.id} are limited to {agreement.daily_limit} points a day",
            )
        )
    cmd = Send(
        program=q.from_program,
        member=q.member,
        to_program=q.to_program,
        to_member=q.to_member,
        points=q.gross,
        credited=q.credited,
        source=SOURCE,
        external_id=q.quote_id,
        reason=f"exchanged with {q.to_program} under {agreement.id}",
        counter=Account.PARTNER,
        details={
            "agreement": f"{agreement.id}@{q.agreement_version}",
            "gross": str(q.gross),
            "fee": str(q.fee),
            "rate": str(q.rate),
            "credited": str(q.credited),
            "residue": str(q.residue),
        },
    )
    try:
        return ledger.send(cmd, guards=guards)
    except GuardRefusedError as refused:
        raise LimitReachedError(refused.guard.detail) from refused


def check_pair(debit: Entry, credit: Entry) -> list[str]:
    """Re-derive an exchange from its two entries; an empty list means value was conserved."""
    problems: list[str] = []
    d = debit.details
    gross, fee, credited = int(d["gross"]), int(d["fee"]), int(d["credited"])
    rate, residue = Decimal(d["rate"]), Decimal(d["residue"])
    partner_b = sum(p.amount for p in debit.postings if p.account is Account.PARTNER and p.owner == credit.program)
    partner_a = sum(p.amount for p in credit.postings if p.account is Account.PARTNER and p.owner == debit.program)
    if -debit.delta(Account.AVAILABLE) != gross or partner_b != gross:
        problems.append(f"{debit.entry_id}: debit does not move {gross} points to partner {credit.program}")
    if credit.delta(Account.AVAILABLE) != credited or partner_a != -credited:
        problems.append(f"{credit.entry_id}: credit does not move {credited} points from partner {debit.program}")
    if Decimal(gross - fee) * rate != credited + residue or not Decimal(0) <= residue < 1:
        problems.append(f"{debit.entry_id}: {gross}-{fee} at {rate} is not {credited} + {residue}")
    return problems


def check_exchanges(entries: Iterable[Entry]) -> list[str]:
    """Pair every exchange debit with its credit and check each pair."""
    debits = {}
    credits = {}
    for entry in entries:
        if entry.source != SOURCE:
            continue
        if entry.kind is EntryKind.TRANSFER_OUT:
            debits[entry.entry_id] = entry
        elif entry.kind is EntryKind.TRANSFER_IN:
            credits[entry.related] = entry
    problems = [f"{key}: exchange debit without its credit" for key in debits.keys() - credits.keys()]
    problems += [f"{key}: exchange credit without its debit" for key in credits.keys() - debits.keys()]
    for key in debits.keys() & credits.keys():
        problems.extend(check_pair(debits[key], credits[key]))
    return problems
