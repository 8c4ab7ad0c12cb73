"""The whole audit of a table: one scan, the ledger's arithmetic, and every loss it can name.

`pointbridge audit` runs this. The ledger's audit (`shared.ledger.audit`) checks the arithmetic and,
given the evidence gathered here (refunds received, refunds still waiting, flag decisions, every
config version), each take-back's cause and the other classes of loss in `shared.ledger.losses`.
Here, with the members' records, two more:

- `tier_not_of_event_time`: a purchase rated below the tier its member had reached by its time
  (recomputed as ingest rates it, `shared.earning.rating.timeline_of`), top-ups counted: the 650 of
  the 660-vs-650 story. Rated above is not a loss (a later refund lowers the activity, never the
  tier an upgrade gave).
- `referral_unpaid`: a referral still waiting for a first purchase that its member has made.
- `settlement_unwritten`, given the clock and a way to tell which statements exist: a day with
  settlement lines, long enough ago for the daily job to have written it, with no statement (the
  job was down that day and nothing caught up).
- `settlement_line_missing`, given the clock: an entry that moved points to or from a partner, an
  hour or more ago, without its settlement line (the stream consumer dropped the record).
- `clock_ahead`, given the audit's clock: a job's progress beyond it (a run with a "now" ahead of
  the clock, after which every run at the real time is refused as stale). The walks that look ahead
  by design are judged by how far they look: reminders up to the program's `reminder_days` past
  the clock, the notices of a program's end not at all (they walk every lot once).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.earning.core import parse_event
from shared.earning.rating import TOP_UP_SOURCE, Timeline, timeline_of
from shared.earning.store import FOLLOW_UP, WAITING_IDS
from shared.events.model import RefundEvent
from shared.infra.codec import parse_ts
from shared.ledger.audit import AuditReport, audit
from shared.ledger.losses import CLOCK_MARGIN, EARNS, Evidence, FlagFact, Loss, RefundFact
from shared.ledger.models import Account, AccountState, Entry, EntryKind, Hold, Lot, PendingEarn
from shared.ledger.store import account_from, lot_from, pending_from
from shared.members.activity import ACTIVITY
from shared.members.store import counters_of
from shared.program.config import ProgramConfig
from shared.program.rules import points_at_tier
from shared.program.store import LONG_AGO

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.infra.table import Table
    from shared.ledger.evidence import Anchors


@dataclass
class TableRecords:
    """Everything the audit reads, from one scan of the table."""

    entries: list[Entry] = field(default_factory=list)
    accounts: list[AccountState] = field(default_factory=list)
    lots: list[Lot] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    pending: list[PendingEarn] = field(default_factory=list)
    evidence: Evidence = field(default_factory=Evidence)
    tier_logs: dict[tuple[str, str], list[tuple[datetime, str]]] = field(default_factory=lambda: defaultdict(list))
    activity: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    awaiting_referrals: list[tuple[str, str, str]] = field(default_factory=list)  # (program, referred, referrer)
    progress: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (job, program) -> done through
    settlement_days: set[tuple[str, date]] = field(default_factory=set)  # (program, UTC day) with lines
    settlement_lines: set[tuple[str, str, str]] = field(default_factory=set)  # (program, entry id, partner)


def read_table(table: Table) -> TableRecords:
    records = TableRecords()
    for item in table.scan():
        _read(item, records)
    for facts in records.evidence.flags.values():
        facts.sort(key=lambda fact: fact.at)
    for versions in records.evidence.configs.values():
        versions.sort(key=lambda version: (version[0], version[1].version))
    return records


def _read(item: dict[str, Any], records: TableRecords) -> None:  # noqa: C901 - one branch per kind of item
    kind = item.get("type")
    pk, sk = str(item["PK"]), str(item["SK"])
    if kind == "entry":
        records.entries.append(Entry.model_validate_json(item["body"]))
    elif kind == "balance":
        records.accounts.append(account_from(item))
    elif kind == "lot":
        records.lots.append(lot_from(item))
    elif kind == "hold":
        records.holds.append(Hold.model_validate_json(item["body"]))
    elif kind == "pending":
        records.pending.append(pending_from(item))
    elif kind == "waiting_refunds":
        program, order = pk.removeprefix("W#").split("#", 1)
        for name, body in item.items():
            if name.startswith("r#"):
                refund = parse_event(str(body))
                if isinstance(refund, RefundEvent):
                    received = RefundFact(order=order, amount=refund.refunded_amount)
                    records.evidence.refunds[(program, name.removeprefix("r#"))] = received
        waiting = frozenset(str(i) for i in item.get(WAITING_IDS, set()))
        records.evidence.waiting[(program, order)] = (waiting, FOLLOW_UP in item)
    elif kind == "flag_decision":
        program = pk.removeprefix("FLAG#")
        member = sk.removeprefix("LOG#").split("#", 1)[0]
        decided = FlagFact(at=parse_ts(str(item["at"])), decision=str(item["decision"]))
        records.evidence.flags.setdefault((program, member), []).append(decided)
    elif kind == "config":
        published = parse_ts(str(item["published_at"])) if item.get("published_at") else LONG_AGO
        config = ProgramConfig.model_validate_json(item["body"])
        records.evidence.configs.setdefault(config.program, []).append((published, config))
    elif kind == "tier_change":
        program = sk.split("#")[1]
        records.tier_logs[(program, pk.removeprefix("M#"))].append((parse_ts(str(item["at"])), str(item["to"])))
    elif kind == "tally" and sk.endswith(f"#T#{ACTIVITY}"):
        records.activity[(sk.split("#")[1], pk.removeprefix("M#"))] = counters_of(item)
    elif kind == "settlement_line":
        program, day = pk.removeprefix("S#").rsplit("#", 1)
        records.settlement_days.add((program, date.fromisoformat(day)))
        records.settlement_lines.add((program, str(item["entry_id"]), str(item["partner"])))
    elif kind == "job_progress" and item.get("through"):
        job, program = pk.removeprefix("JOB#").split("#", 1)
        records.progress[(job, program)] = parse_ts(str(item["through"]))
    elif kind == "referral" and item.get("awaiting"):
        records.awaiting_referrals.append((sk.split("#")[1], pk.removeprefix("M#"), str(item["awaiting"])))


def audit_table(
    table: Table,
    now: datetime | None = None,
    statement_written: Callable[[str, date], bool] | None = None,
    chain_key: bytes | None = None,
    anchors: Anchors | None = None,
) -> AuditReport:
    """Read the table once; check the ledger's arithmetic and every class of loss. With `now` (the
    wall clock, for `pointbridge audit`), also what is ahead of it or long overdue by it; with
    `statement_written` (program, day -> whether its settlement statement exists), the statements;
    with `chain_key` and `anchors`, the keyed hashes and the digests (`shared.ledger.evidence`)."""
    records = read_table(table)
    records.evidence.now = now
    report = audit(
        records.entries,
        records.accounts,
        records.lots,
        records.holds,
        records.pending,
        records.evidence,
        chain_key=chain_key,
        anchors=anchors,
    )
    member_losses = [*_tiers(records), *_referrals(records), *_jobs_ahead(records, now)]
    if now is not None:
        member_losses.extend(_settlement_lines(records, now))
    if now is not None and statement_written is not None:
        member_losses.extend(_statements(records, now, statement_written))
    report.losses.extend(member_losses)
    report.problems.extend(str(loss) for loss in member_losses)
    return report


def _tiers(records: TableRecords) -> list[Loss]:
    losses: list[Loss] = []
    histories: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for entry in records.entries:
        histories[(entry.program, entry.member)].append(entry)
    voided = {(e.program, e.related) for e in records.entries if e.kind is EntryKind.VOID}
    for (program, member), history in sorted(histories.items()):
        purchases = [
            e
            for e in history
            if e.kind in EARNS
            and "tier_basis" in e.details
            and not e.details.get("held")
            and (program, e.entry_id) not in voided
        ]
        if not purchases:
            continue

        def config_at(moment: datetime, program: str = program) -> ProgramConfig:
            config = records.evidence.config_at(program, moment)
            assert config is not None, f"no config of {program} in the table"
            return config

        counters = records.activity.get((program, member), {})
        timeline = timeline_of(history, records.tier_logs.get((program, member), []), counters, config_at)
        for earned in purchases:
            missing = _underpaid(config_at(earned.event_time), earned, timeline, history)
            if missing is not None:
                losses.append(Loss("tier_not_of_event_time", program, f"{earned.entry_id} of {member} {missing}"))
    return losses


def _underpaid(config: ProgramConfig, earned: Entry, timeline: Timeline, history: list[Entry]) -> str | None:
    """What an earn (with its top-ups) was paid below the tier its member had reached by its time, in
    points: a higher tier that changes no point (rounding, a cap) is no loss."""
    expected = timeline.tier_at(config, earned.event_time, rating=earned.entry_id)
    paid = [earned, *timeline.top_ups.get(earned.entry_id, [])]
    best = max((config.held_tier(e.details.get("tier")) for e in paid), key=lambda tier: tier.rank)
    if expected.rank <= best.rank:
        return None
    due = points_at_tier(
        config, Decimal(earned.details["tier_basis"]), Decimal(earned.details["flat_points"]), expected
    )
    rated = max(int(e.details.get("uncapped_points", "0")) for e in paid)
    per_event = config.caps.per_event
    short = min(due, per_event or due) - min(rated, per_event or rated)
    if short <= 0:
        return None
    cap, day = config.caps.per_member_per_day, earned.details.get("earn_day", "")
    if cap is not None:
        days = _earn_days(history)
        earned_that_day = sum(_points(e) for e in history if e.kind in EARNS and days.get(e.entry_id) == day)
        if earned_that_day >= cap:
            return None  # the day's cap would have cut it anyway
    return (
        f"was rated {best.name}; by its time ({earned.event_time.isoformat()}) the member had reached "
        f"{expected.name}: {short} points short"
    )


def _earn_days(history: list[Entry]) -> dict[str, str]:
    """Each earn's day for the daily cap. A tier top-up is counted in its earn's day, whose cap it
    drew on (tier top-ups written before they recorded `earn_day` included)."""
    days = {e.entry_id: e.details["earn_day"] for e in history if e.kind in EARNS and e.details.get("earn_day")}
    for e in history:
        if e.kind in EARNS and e.source == TOP_UP_SOURCE and e.related in days:
            days[e.entry_id] = days[e.related]
    return days


def _points(entry: Entry) -> int:
    return entry.delta(Account.AVAILABLE) + entry.delta(Account.PENDING) + entry.delta(Account.DEBT)


def _referrals(records: TableRecords) -> list[Loss]:
    losses: list[Loss] = []
    voided = {(e.program, e.related) for e in records.entries if e.kind is EntryKind.VOID}
    bought = {
        (e.program, e.member)
        for e in records.entries
        if e.kind in EARNS
        and "basis_amount" in e.details
        and e.source != TOP_UP_SOURCE
        and (e.program, e.entry_id) not in voided
    }
    for program, referred, referrer in sorted(records.awaiting_referrals):
        if (program, referred) in bought:
            losses.append(
                Loss(
                    "referral_unpaid",
                    program,
                    f"{referrer}'s referral of {referred} still waits for a first purchase {referred} has made",
                )
            )
    return losses


def _jobs_ahead(records: TableRecords, now: datetime | None) -> list[Loss]:
    if now is None:
        return []
    return [
        Loss(
            "clock_ahead",
            program,
            f"job {job} has run through {through.isoformat()}, ahead of the clock ({now.isoformat()})",
        )
        for (job, program), through in sorted(records.progress.items())
        if job not in _WALKS_EVERY_LOT and through > now + CLOCK_MARGIN + _looks_ahead(records, job, program)
    ]


_WALKS_EVERY_LOT = frozenset({"sunset-notice", "sunset-notice-never"})


def _looks_ahead(records: TableRecords, job: str, program: str) -> timedelta:
    """How far past its run a job's walk goes by design: reminders, the longest `reminder_days` the program had."""
    if job != "reminders":
        return timedelta(0)
    configs = records.evidence.configs.get(program, [])
    return timedelta(days=max((config.reminder_days for _, config in configs), default=0))


# The stream projects an entry's settlement lines within seconds; retries and lag take minutes, not an hour.
PROJECTION_GRACE = timedelta(hours=1)


def _settlement_lines(records: TableRecords, now: datetime) -> list[Loss]:
    losses: list[Loss] = []
    for e in records.entries:
        if e.recorded_at + PROJECTION_GRACE > now:
            continue
        for partner in sorted({p.owner for p in e.postings if p.account is Account.PARTNER}):
            if (e.program, e.entry_id, partner) not in records.settlement_lines:
                detail = f"{e.kind} {e.entry_id} moved points with {partner} and has no settlement line"
                losses.append(Loss("settlement_line_missing", e.program, detail))
    return losses


# The settlement job writes yesterday's statement early each morning (UTC): two days back, it has had its chance.
STATEMENT_DUE = timedelta(days=2)


def _statements(records: TableRecords, now: datetime, written: Callable[[str, date], bool]) -> list[Loss]:
    return [
        Loss("settlement_unwritten", program, f"settlement lines of {day.isoformat()} and no statement written")
        for program, day in sorted(records.settlement_days)
        if day <= (now - STATEMENT_DUE).date() and not written(program, day)
    ]
