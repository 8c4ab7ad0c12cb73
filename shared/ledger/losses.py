"""The audit's second half: losses, not arithmetic. Each finding names its class.

The arithmetic audit (`shared.ledger.audit`) proves that every point is accounted for; it cannot
see a point taken back for nothing, a refund left unapplied, an order earned twice, or an earn
rated by the wrong rules, because each of those balances perfectly. These checks look at what the
entries say happened and why, against the facts beside the ledger (`Evidence`, gathered from the
table by `shared.jobs.audit`; without it, only what the entries alone show is checked).

- `takeback_without_cause`: a void, reversal, claw-back or expiry names no cause, or one that does
  not exist, belongs to another member or program, or does not justify the amount;
- `refund_never_applied`: a refund waits on an order whose points are spendable, and nothing will
  apply it (no follow-up mark);
- `duplicate_effect`: one source event with two effects (a refund both clawed back and named by a void);
- `duplicate_order`: one order id earned on by one member through two sources;
- `over_refund`: an order's refunds add up to more than the money it earned on;
- `unrecovered_shortfall`: a refund after spending under the `recover` policy that put no debt on the member;
- `rules_not_of_event_time`: an earn decided by a config version other than the one live at its event's time;
- `held_member_debited`: a flagged member spent, gifted or exchanged while the flag was open and held it;
- given the audit's clock (`Evidence.now`, the wall clock for `pointbridge audit`):
  `expired_early`: an expiry recorded at a time that had not come yet (a job run with a "now" ahead
  of the clock took points before they were due); `clock_ahead`: any other entry recorded ahead of
  the clock; `hold_past_lapse`: a hold (checkout, outbound transfer, held gift) still open well after
  it lapsed, its points out of the member's reach with nothing left to release them.

`shared.jobs.audit` adds the ones that need the members' areas: `tier_not_of_event_time` (an earn
rated below the tier the member had reached by its time) and `referral_unpaid`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from shared.ledger.commands import CauseKind
from shared.ledger.models import Account, Entry, EntryKind
from shared.program.config import FlagHold, ShortfallPolicy

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from shared.ledger.models import Hold
    from shared.program.config import ProgramConfig

TAKEBACKS = frozenset({EntryKind.VOID, EntryKind.CLAWBACK, EntryKind.REVERSAL, EntryKind.EXPIRY})
EARNS = frozenset({EntryKind.EARN, EntryKind.EARN_PENDING})
# What each debit is, for what a flag holds (as the ledger decides it).
_DEBIT_PURPOSES = {Account.REDEMPTION: FlagHold.SPENDING, Account.PARTNER: FlagHold.EXCHANGING}
# Clocks of the machines writing entries may run a little ahead of the auditor's.
CLOCK_MARGIN = timedelta(minutes=5)
# The hold-lapse job runs every 5 minutes (template.yaml): an hour past its lapse, a hold is stuck.
LAPSE_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Loss:
    kind: str  # the class of loss (the table above)
    program: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.program}: {self.detail}"


@dataclass(frozen=True)
class RefundFact:
    """A refund event the platform received (kept on its order's list): what it refunded."""

    order: str  # the order's entry id
    amount: Decimal


@dataclass(frozen=True)
class FlagFact:
    at: datetime
    decision: str  # flagged, released, voided, cleared


@dataclass
class Evidence:
    """What the loss checks need besides the ledger's records, as plain facts."""

    refunds: dict[tuple[str, str], RefundFact] = field(default_factory=dict)  # (program, refund id)
    # (program, order id) -> (refund ids still waiting, whether a follow-up mark is on the list)
    waiting: dict[tuple[str, str], tuple[frozenset[str], bool]] = field(default_factory=dict)
    flags: dict[tuple[str, str], list[FlagFact]] = field(default_factory=dict)  # (program, member), by time
    configs: dict[str, list[tuple[datetime, ProgramConfig]]] = field(default_factory=dict)  # oldest first
    now: datetime | None = None  # the audit's clock; None: the checks against the clock are skipped

    def config_at(self, program: str, moment: datetime) -> ProgramConfig | None:
        """The version live at `moment`, as `ProgramRepository.at` chooses it (the first counts from the start)."""
        versions = self.configs.get(program)
        if not versions:
            return None
        if len(versions) == 1:
            return versions[0][1]
        live = versions[0][1]
        for published_at, config in versions:
            if published_at <= moment:
                live = config
        return live


def find_losses(entries: Sequence[Entry], evidence: Evidence | None = None, holds: Sequence[Hold] = ()) -> list[Loss]:
    by_id = {(e.program, e.entry_id): e for e in entries}
    survivor = _survivors(entries)
    losses: list[Loss] = []
    for entry in entries:
        if entry.kind in TAKEBACKS:
            losses.extend(_check_cause(entry, by_id, survivor, evidence))
    losses.extend(_duplicates(entries, by_id, survivor))
    losses.extend(_refund_amounts(entries, by_id, evidence))
    if evidence is not None:
        losses.extend(_unapplied_refunds(by_id, evidence))
        losses.extend(_rules_of_event_time(entries, evidence))
        losses.extend(_held_debits(entries, evidence))
        if evidence.now is not None:
            losses.extend(_against_the_clock(entries, holds, evidence.now))
    return losses


def _survivors(entries: Iterable[Entry]) -> dict[tuple[str, str], str]:
    """(program, merged member) -> the member it was merged into, from the merges' transfer entries."""
    return {
        (e.program, e.member): e.details["to_member"]
        for e in entries
        if e.kind is EntryKind.TRANSFER and "to_member" in e.details
    }


def _same_account(program: str, holder: str, owner: str, survivor: dict[tuple[str, str], str]) -> bool:
    """Whether `holder` is `owner` or the member `owner` was merged into (through any chain of merges)."""
    seen = {owner}
    while owner != holder:
        owner = survivor.get((program, owner), "")
        if not owner or owner in seen:
            return False
        seen.add(owner)
    return True


def _points(entry: Entry) -> int:
    return entry.delta(Account.AVAILABLE) + entry.delta(Account.PENDING) + entry.delta(Account.DEBT)


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        return Decimal(0)


def _check_cause(
    entry: Entry,
    by_id: dict[tuple[str, str], Entry],
    survivor: dict[tuple[str, str], str],
    evidence: Evidence | None,
) -> list[Loss]:
    why = _why_unjustified(entry, by_id, survivor, evidence)
    if why is None:
        return []
    return [Loss("takeback_without_cause", entry.program, f"{entry.kind} {entry.entry_id} of {entry.member}: {why}")]


def _why_unjustified(
    entry: Entry,
    by_id: dict[tuple[str, str], Entry],
    survivor: dict[tuple[str, str], str],
    evidence: Evidence | None,
) -> str | None:
    """What is wrong with a take-back's cause (None: it exists, is the member's, and justifies it)."""
    related = by_id.get((entry.program, entry.related))
    if entry.kind is EntryKind.EXPIRY:
        if entry.details.get("cause_kind", CauseKind.LAPSE) != CauseKind.LAPSE or entry.event_time > entry.recorded_at:
            return f"expired at {entry.event_time.isoformat()} before its lapse was due"
        return None
    if related is None:
        return f"takes back from {entry.related}, which does not exist"
    if not _same_account(entry.program, entry.member, related.member, survivor):
        return f"takes back {related.member}'s points from {entry.member}"
    if entry.kind is EntryKind.CLAWBACK:
        return None  # its cause is the refund it is keyed by; the amounts are checked per order
    kind, ref = entry.details.get("cause_kind", ""), entry.details.get("cause", "")
    if not kind or not ref:
        return "names no cause"
    if kind == CauseKind.OPERATOR:
        return None
    if entry.kind is not EntryKind.VOID:
        return f"a {entry.kind} for a {kind} is not an operator's decision"
    if kind == CauseKind.ENTRY:
        cause = by_id.get((entry.program, ref))
        return None if cause is not None and cause.kind is EntryKind.VOID else f"names {ref}, which is not a void"
    if evidence is None:
        return None  # whether the refunds or the flag decision exist is in the evidence
    if kind == CauseKind.REFUND:
        return _refunds_unjustified(entry, related, ref.split(), evidence)
    if kind == CauseKind.FLAG:
        flagged = ref.rpartition(":")[0]
        decided = [f for f in evidence.flags.get((entry.program, flagged), []) if f.decision == "voided"]
        if not decided or not related.details.get("held"):
            return f"names a voided flag on {flagged} that was never decided, or an earn it did not hold"
        return None
    return f"names an unknown kind of cause {kind!r}"


def _refunds_unjustified(void: Entry, earned: Entry, refund_ids: list[str], evidence: Evidence) -> str | None:
    facts = {refund: evidence.refunds.get((void.program, refund)) for refund in refund_ids}
    missing = [refund for refund, fact in facts.items() if fact is None or fact.order != earned.entry_id]
    if missing:
        return f"names refunds that do not exist for {earned.entry_id}: {' '.join(missing)}"
    refunded = sum((fact.amount for fact in facts.values() if fact is not None), Decimal(0))
    basis = _decimal(earned.details.get("basis_amount", "0"))
    return f"refunds of {refunded} do not cover the order's {basis}" if refunded < basis else None


def _duplicates(
    entries: Sequence[Entry], by_id: dict[tuple[str, str], Entry], survivor: dict[tuple[str, str], str]
) -> list[Loss]:
    losses: list[Loss] = []
    voided = {(e.program, e.related) for e in entries if e.kind is EntryKind.VOID}
    sources: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for e in entries:
        if e.kind in EARNS and "basis_amount" in e.details and (e.program, e.entry_id) not in voided:
            holder = e.member
            while (e.program, holder) in survivor:
                holder = survivor[(e.program, holder)]
            sources[(e.program, holder, e.external_id)].add(e.source)
    for (program, member, order), found in sorted(sources.items()):
        if len(found) > 1:
            detail = f"order {order} earned {len(found)} times for {member}: {', '.join(sorted(found))}"
            losses.append(Loss("duplicate_order", program, detail))
    named = {
        (e.program, refund): e.entry_id
        for e in entries
        if e.kind is EntryKind.VOID and e.details.get("cause_kind") == CauseKind.REFUND
        for refund in e.details.get("cause", "").split()
    }
    for (program, refund), void in sorted(named.items()):
        clawback = by_id.get((program, refund))
        if clawback is not None and clawback.kind is EntryKind.CLAWBACK:
            losses.append(Loss("duplicate_effect", program, f"refund {refund} was clawed back and voided {void}"))
    return losses


def _refund_amounts(
    entries: Sequence[Entry], by_id: dict[tuple[str, str], Entry], evidence: Evidence | None
) -> list[Loss]:
    losses: list[Loss] = []
    refunded: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    requested: dict[tuple[str, str], int] = defaultdict(int)
    topped: dict[tuple[str, str], int] = defaultdict(int)
    for e in entries:
        if e.kind is EntryKind.CLAWBACK:
            order = (e.program, e.details.get("order", e.related))
            refunded[order] += _decimal(e.details.get("refunded_amount", "0"))
            requested[order] += int(e.details.get("requested", "0") or 0)
            losses.extend(_shortfall(e, evidence))
        elif e.kind in EARNS and e.source == "tier" and e.related:
            topped[(e.program, e.related)] += _points(e)
    for key, amount in sorted(refunded.items()):
        earn = by_id.get(key)
        if earn is None:
            continue
        basis = _decimal(earn.details.get("basis_amount", "0"))
        if basis > 0 and amount > basis:
            losses.append(Loss("over_refund", key[0], f"refunds of {key[1]} add up to {amount}, more than its {basis}"))
        earned = _points(earn) + topped[key]
        if requested[key] > earned:
            losses.append(
                Loss(
                    "takeback_without_cause",
                    key[0],
                    f"refunds of {key[1]} took back {requested[key]} points, more than the {earned} it earned",
                )
            )
    return losses


def _shortfall(clawback: Entry, evidence: Evidence | None) -> list[Loss]:
    shortfall = int(clawback.details.get("shortfall", "0") or 0)
    if not shortfall:
        return []
    policy = clawback.details.get("shortfall_policy", "")
    config = evidence.config_at(clawback.program, clawback.recorded_at) if evidence is not None else None
    owed = -clawback.delta(Account.DEBT)
    program_recovers = config is not None and config.refunds.shortfall is ShortfallPolicy.RECOVER
    recover = policy == ShortfallPolicy.RECOVER or program_recovers
    if recover and owed != shortfall:
        return [
            Loss(
                "unrecovered_shortfall",
                clawback.program,
                f"{clawback.entry_id}: {shortfall} points already spent, {owed} put on {clawback.member}'s debt "
                f"(policy {policy or 'not named'})",
            )
        ]
    return []


def _unapplied_refunds(by_id: dict[tuple[str, str], Entry], evidence: Evidence) -> list[Loss]:
    losses: list[Loss] = []
    for (program, order_id), (waiting, marked) in sorted(evidence.waiting.items()):
        if not waiting or marked:
            continue  # a mark: the activation job's next run applies them
        order = by_id.get((program, order_id))
        settled = by_id.get((program, f"settle:{order_id}"))
        spendable = order is not None and (
            order.kind is EntryKind.EARN or (settled is not None and settled.kind is EntryKind.ACTIVATE)
        )
        if spendable:
            losses.append(
                Loss(
                    "refund_never_applied",
                    program,
                    f"{' '.join(sorted(waiting))} still wait on {order_id}, whose points are spendable",
                )
            )
    return losses


def _rules_of_event_time(entries: Sequence[Entry], evidence: Evidence) -> list[Loss]:
    losses: list[Loss] = []
    for e in entries:
        if e.kind not in EARNS or "breakdown" not in e.details:
            continue  # only earns the rules decided carry their working
        config = evidence.config_at(e.program, e.event_time)
        if config is not None and config.version != e.config_version:
            losses.append(
                Loss(
                    "rules_not_of_event_time",
                    e.program,
                    f"{e.entry_id} from {e.event_time.isoformat()} was decided by version {e.config_version}; "
                    f"version {config.version} was live then",
                )
            )
    return losses


def _held_debits(entries: Sequence[Entry], evidence: Evidence) -> list[Loss]:
    losses: list[Loss] = []
    for e in entries:
        purpose = _debit_purpose(e)
        if purpose is None:
            continue
        decisions = evidence.flags.get((e.program, e.member), [])
        open_since = None
        for fact in decisions:
            if fact.at > e.recorded_at:
                break
            open_since = fact.at if fact.decision == "flagged" else None
        config = evidence.config_at(e.program, e.recorded_at)
        if open_since is not None and config is not None and purpose in config.anomaly.flag_holds:
            losses.append(
                Loss(
                    "held_member_debited",
                    e.program,
                    f"{e.entry_id}: {e.member} was flagged since {open_since.isoformat()} and {purpose} was held",
                )
            )
    return losses


def _debit_purpose(entry: Entry) -> FlagHold | None:
    if entry.kind is EntryKind.SPEND:
        counter = next((p.account for p in entry.postings if p.amount > 0), None)
        return _DEBIT_PURPOSES.get(counter) if counter is not None else None
    if entry.kind is EntryKind.HOLD:
        return FlagHold.EXCHANGING if entry.details.get("to_partner") else FlagHold.SPENDING
    if entry.kind is EntryKind.TRANSFER_OUT:
        return FlagHold.GIFTING if any(p.account is Account.TRANSFER for p in entry.postings) else FlagHold.EXCHANGING
    return None


def _against_the_clock(entries: Sequence[Entry], holds: Sequence[Hold], now: datetime) -> list[Loss]:
    losses: list[Loss] = []
    for e in entries:
        if e.recorded_at <= now + CLOCK_MARGIN:
            continue
        when = f"recorded at {e.recorded_at.isoformat()}, ahead of the clock ({now.isoformat()})"
        if e.kind is EntryKind.EXPIRY:
            detail = f"{e.entry_id} of {e.member} took {-_points(e)} points {when}"
            losses.append(Loss("expired_early", e.program, detail))
        else:
            losses.append(Loss("clock_ahead", e.program, f"{e.kind} {e.entry_id} of {e.member} {when}"))
    for hold in holds:
        if hold.lapses_at + LAPSE_GRACE < now:
            detail = (
                f"{hold.hold_id} of {hold.member} ({hold.amount} points) lapsed at {hold.lapses_at.isoformat()} "
                f"and is still held at {now.isoformat()}"
            )
            losses.append(Loss("hold_past_lapse", hold.program, detail))
    return losses
