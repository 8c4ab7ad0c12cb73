"""Partner settlement: daily net positions per (program, partner), from entries with PARTNER postings.

The stream watcher records one settlement line per entry and partner (one partition per program
and day, keyed by entry id, so a redelivered stream record rewrites the same line); the daily job
(`shared.jobs.settlement`) sums a day's lines into a statement and writes it to S3 as JSON and
CSV. The same statement is what the API serves (`statement`).

Signs: a PARTNER posting is + when points flow to the partner's account (a member spent or
exchanged points out to the partner) and - when they flow from it (the partner issued points to a
member). `net` is their sum: positive means the program owes the partner for points taken there,
negative means the partner owes the program for points it issued.

An exchange's line also carries its fee (on the debit, in this program's points) and its rounding
residue (on the credit: the fraction of a point the member did not receive), so a period statement
for one partner (`partner_period`, what the API serves) is summed from the day partitions alone,
one Query per day, without reading any entry.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import ConfigDict

from shared.errors import InvalidInputError
from shared.exchange.agreements import SOURCE as EXCHANGE_SOURCE
from shared.exchange.store import ExchangeItems, SettlementLine
from shared.ledger.models import Account
from shared.model import Model

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shared.ledger.models import Entry


class PartnerPosition(Model):
    model_config = ConfigDict(frozen=True)

    partner: str
    points_to_partner: int
    points_from_partner: int
    net: int
    entries: int


class Statement(Model):
    model_config = ConfigDict(frozen=True)

    program: str
    day: date
    positions: tuple[PartnerPosition, ...]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["program", "day", "partner", "points_to_partner", "points_from_partner", "net", "entries"])
        for p in self.positions:
            row = [self.program, self.day.isoformat(), p.partner, p.points_to_partner, p.points_from_partner, p.net]
            writer.writerow([*row, p.entries])
        return out.getvalue()


def record_partner_postings(items: ExchangeItems, entry: Entry) -> int:
    """Write the entry's settlement lines (one per partner it touches); returns how many."""
    lines = settlement_lines_of(entry)
    for day, line in lines:
        items.add_settlement_line(entry.program, day, line)
    return len(lines)


def record_batch_postings(items: ExchangeItems, entries: Sequence[Entry]) -> set[str]:
    """The settlement lines of many entries (a stream batch's) in as few writes as the table allows;
    returns the ids of the entries whose lines are all written (those without partner postings included)."""
    lines = [(entry.program, day, line) for entry in entries for day, line in settlement_lines_of(entry)]
    if lines:
        items.add_settlement_lines(lines)
    return {entry.entry_id for entry in entries}


def settlement_lines_of(entry: Entry) -> list[tuple[str, SettlementLine]]:
    """The (UTC day, line) the entry settles with each partner it moved points to or from."""
    by_partner: dict[str, int] = defaultdict(int)
    for posting in entry.postings:
        if posting.account is Account.PARTNER:
            by_partner[posting.owner] += posting.amount
    day = entry.recorded_at.date().isoformat()
    exchange = entry.source == EXCHANGE_SOURCE
    lines = []
    for partner, points in by_partner.items():
        # Both entries of an exchange carry its fee and residue: the fee is the debit side's, the residue the credit's.
        fee = int(entry.details.get("fee", "0")) if exchange and points > 0 else 0
        residue = Decimal(entry.details.get("residue", "0")) if exchange and points < 0 else Decimal(0)
        lines.append(
            (day, SettlementLine(partner=partner, entry_id=entry.entry_id, points=points, fee=fee, residue=residue))
        )
    return lines


def statement(items: ExchangeItems, program: str, day: date) -> Statement:
    """The day's net positions, one per partner, in partner order."""
    to_partner: dict[str, int] = defaultdict(int)
    from_partner: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for line in items.settlement_lines(program, day.isoformat()):
        points = line.points
        partner = line.partner
        count[partner] += 1
        if points >= 0:
            to_partner[partner] += points
        else:
            from_partner[partner] += -points
    positions = tuple(
        PartnerPosition(
            partner=partner,
            points_to_partner=to_partner[partner],
            points_from_partner=from_partner[partner],
            net=to_partner[partner] - from_partner[partner],
            entries=count[partner],
        )
        for partner in sorted(count)
    )
    return Statement(program=program, day=day, positions=positions)


MAX_PERIOD_DAYS = 93  # a quarter: one Query per day


class Position(Model):
    """What one program and one partner moved between them. Signs as in the module docstring."""

    model_config = ConfigDict(frozen=True)

    entries: int = 0
    sent: int = 0  # points that went to the partner's account (members spent or exchanged them out, fees included)
    received: int = 0  # points that came from the partner's account (the partner issued them to members)
    fees: int = 0  # exchange fees among `sent`, kept by this program
    residue: Decimal = Decimal(0)  # fractions of points members did not get on exchanges into this program

    @property
    def net(self) -> int:
        return self.sent - self.received

    def plus(self, other: Position) -> Position:
        return Position(
            entries=self.entries + other.entries,
            sent=self.sent + other.sent,
            received=self.received + other.received,
            fees=self.fees + other.fees,
            residue=self.residue + other.residue,
        )


def _line_position(line: SettlementLine) -> Position:
    return Position(
        entries=1,
        sent=max(line.points, 0),
        received=max(-line.points, 0),
        fees=line.fee,
        residue=line.residue,
    )


class PartnerDay(Model):
    model_config = ConfigDict(frozen=True)

    day: date
    position: Position


class PartnerPeriod(Model):
    """One partner's settlement with one program over whole UTC days, `start` to `end` inclusive."""

    model_config = ConfigDict(frozen=True)

    program: str
    partner: str
    start: date
    end: date
    total: Position
    days: tuple[PartnerDay, ...]  # only the days with lines


def partner_period(items: ExchangeItems, program: str, partner: str, start: date, end: date) -> PartnerPeriod:
    """Sum one partner's settlement lines day by day (the watch writes them from the table's stream)."""
    if end < start:
        raise InvalidInputError("the period ends before it starts")
    length = (end - start).days + 1
    if length > MAX_PERIOD_DAYS:
        raise InvalidInputError(f"a statement covers at most {MAX_PERIOD_DAYS} days, not {length}")
    total = Position()
    days = []
    for offset in range(length):
        day = start + timedelta(days=offset)
        position = Position()
        for line in items.settlement_lines(program, day.isoformat(), partner=partner):
            position = position.plus(_line_position(line))
        if position.entries:
            days.append(PartnerDay(day=day, position=position))
            total = total.plus(position)
    return PartnerPeriod(program=program, partner=partner, start=start, end=end, total=total, days=tuple(days))
