"""The points ledger: every movement of points, for every channel, goes through here.

Invariants, in plain words (the audit in `shared.audit` checks each one):

1. Append-only. An entry is never edited or deleted; a mistake is undone by a new entry that
   names the one it reverses.
2. Double entry. Every entry's postings sum to zero, so points are never created or destroyed
   silently; all accounts of a program sum to zero.
3. Exactly-once effect. An entry's id comes from its source and the source's own id (or from the
   entry it settles), and its write is conditional: a replay writes nothing and returns the stored
   entry; the same id with a different request is a typed conflict. This never expires.
   A rejected request (insufficient points, unknown member, ...) writes nothing, so retrying it
   later is evaluated afresh against the balance at that time.
4. Lots. Every credit to a member's available points is a lot with an expiry; debits consume lots
   earliest-expiry-first (ties by lot id) and never touch a lot that has expired, even before the
   expiry job has run; expiry debits exactly a lot's unspent remainder. Available = sum of lots.
   "Expired" is the lot's effective expiry: its own date, or, where the program extends expiry by
   activity, no earlier than N months after the member's last activity (kept on the balance).
   Likewise pending = sum of the member's open pending earns: each is held by one member at a
   time (a merge moves it) and is settled once, by an activation or a void on that member.
5. Guarded balances. The entry, the member's balance and the lots change in one transaction,
   conditional on the balance's sequence number and each lot's remaining points, so concurrent
   operations serialise and no bucket (available, pending, held) can go negative.
6. Tamper evidence. A member account's entries form a hash chain (seq 1, 2, ...; each hash covers
   the previous one); the balance item holds the head.
7. Closed accounts. A merge's transfer moves everything a member holds (unexpired lots, pending
   earns, holds) to the survivor and closes the account in the same transaction (`merged_into` on
   the balance). A closed account is neither credited nor debited (`AccountClosedError` names the
   survivor), so nothing can land there after the merge; only the lots that had already expired at
   the merge stay, for the expiry job, and a later transfer may still move leftovers onward.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.errors import (
    AccountClosedError,
    AlreadySettledError,
    CaptureExceedsHoldError,
    ContentionError,
    IdempotencyConflictError,
    InsufficientPointsError,
    InvalidInputError,
    LedgerError,
    NotDueError,
    NotFoundError,
    NotReversibleError,
    TooManyLotsError,
    UnknownEntryError,
    UnknownMemberError,
)
from shared.ledger.models import (
    CARRIED_ACTIVITY,
    Account,
    AccountState,
    Entry,
    EntryKind,
    Hold,
    Lot,
    LotMove,
    PendingEarn,
    Posting,
    fingerprint,
)
from shared.program.config import ProgramId

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from shared.program.config import ProgramConfig

# DynamoDB's TransactWriteItems takes at most 100 items; an operation writes a few besides lots.
MAX_TRANSACTION_ITEMS = 100
MAX_LOTS_PER_OPERATION = MAX_TRANSACTION_ITEMS - 4
MAX_POINTS_PER_OPERATION = 100_000_000
MAX_ATTEMPTS = 40

Points = Annotated[int, Field(strict=True, gt=0, le=MAX_POINTS_PER_OPERATION)]
Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]

CREDIT_COUNTERS = frozenset({Account.ISSUANCE, Account.PARTNER, Account.TRANSFER})
DEBIT_COUNTERS = frozenset({Account.REDEMPTION, Account.PARTNER, Account.TRANSFER})


# --- The store's contract -------------------------------------------------------------------


class EntryExistsError(Exception):
    """The store found an entry already written under this id (a replay or a conflict)."""


class ConcurrentUpdateError(Exception):
    """The store found the account or a lot changed since it was read; plan again."""


class TallyChangedError(Exception):
    """A tally no longer holds the value the caller decided on; the caller must decide again.

    Not a ConcurrentUpdateError on purpose: the ledger cannot re-plan it, because the points of the
    command were computed from the stale tally (e.g. a daily cap) by the caller.
    """


@dataclass(frozen=True)
class Tally:
    """A small counter outside the ledger that must move with an entry, in the same transaction.

    Used by ingest for a member's points earned on a day (daily caps), refunded money per order,
    sign-in days and qualifying activity per month. `expected` guards against deciding on a stale
    value (None: unguarded); `mark` adds a label (e.g. a day) to the tally's set; `counters` are
    further named numbers of the same item added to, unguarded (e.g. one per month), and `drop`
    names counters to remove (ones no window reads any more).
    """

    program: str
    member: str
    name: str
    add: int = 0
    expected: int | None = None
    mark: str = ""
    counters: tuple[tuple[str, int], ...] = ()
    drop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    """An item that must not carry `attribute` when the operation commits; checked, never written.

    Lets a caller make an operation conditional on something outside the ledger without reading it
    first (e.g. "no refund is waiting for this order"): the store checks it inside the transaction.
    """

    pk: str
    sk: str
    attribute: str


class CheckFailedError(Exception):
    """The store found a Check's item carrying its attribute; nothing was written."""

    def __init__(self, check: Check) -> None:
        super().__init__(f"{check.pk}/{check.sk} has {check.attribute}")
        self.check = check


@dataclass(frozen=True)
class Snapshot:
    """A balance the caller has just read consistently (None: no account yet).

    The first attempt of an operation plans on it instead of reading the balance again; a retry
    after a concurrent update reads afresh, so a stale snapshot costs a retry, never a wrong write.
    """

    account: AccountState | None


@dataclass(frozen=True)
class Change:
    """Everything one operation writes, applied by the store atomically or not at all."""

    entries: tuple[Entry, ...]
    # New state and the sequence number it must still have (0: the account must not exist yet).
    accounts: tuple[tuple[AccountState, int], ...]
    lots_created: tuple[Lot, ...] = ()
    # New state and the remaining points the lot must still have.
    lots_updated: tuple[tuple[Lot, int], ...] = ()
    lots_deleted: tuple[tuple[Lot, int], ...] = ()
    hold_created: Hold | None = None
    hold_deleted: Hold | None = None
    tallies: tuple[Tally, ...] = ()
    # Counters bumped in the same transaction (reward stock, per-member limits); see Guard.
    guards: tuple[Guard, ...] = ()
    # Open pending earns written (an earn, the receiving side of a merge) and removed (settled, moved).
    pending_created: tuple[PendingEarn, ...] = ()
    pending_deleted: tuple[PendingEarn, ...] = ()
    checks: tuple[Check, ...] = ()
    # Open holds a merge re-homes: (as held by the merged member, as held by the survivor).
    holds_moved: tuple[tuple[Hold, Hold], ...] = ()

    @property
    def item_count(self) -> int:
        holds = (self.hold_created is not None) + (self.hold_deleted is not None) + 2 * len(self.holds_moved)
        lots = len(self.lots_created) + len(self.lots_updated) + len(self.lots_deleted)
        pending = len(self.pending_created) + len(self.pending_deleted)
        extras = len(self.tallies) + len(self.guards) + len(self.checks)
        return len(self.entries) + len(self.accounts) + lots + holds + pending + extras


@dataclass(frozen=True)
class Guard:
    """A counter an operation adds to atomically with its entries, refused if it would pass `limit`.

    Limits that must hold under concurrency (reward stock, per-member and per-day limits) cannot be
    checked by reading first: two redemptions would both see the last item. Bumping a counter with
    a condition in the ledger's own transaction makes the entry and the limit succeed or fail together.
    """

    pk: str
    sk: str
    amount: int
    limit: int | None = None  # the counter's value after adding must stay <= limit
    # Raised (by the caller that owns the limit) when the store reports the condition failed.
    code: str = "limit_reached"
    detail: str = "a limit was reached"


class GuardRefusedError(Exception):
    """The store found a guard's counter would pass its limit; nothing was written."""

    def __init__(self, guard: Guard) -> None:
        super().__init__(guard.detail)
        self.guard = guard


class LedgerStore(Protocol):
    def get_account(self, program: str, member: str) -> AccountState | None: ...

    def get_account_and_lots(self, program: str, member: str) -> tuple[AccountState | None, list[Lot]]: ...

    def get_entry(self, program: str, entry_id: str) -> Entry | None: ...

    def get_hold(self, program: str, member: str, hold_id: str) -> Hold | None: ...

    def get_pending(self, program: str, member: str, entry_id: str) -> PendingEarn | None: ...

    def get_pending_earns(self, program: str, member: str) -> list[PendingEarn]: ...

    def get_holds(self, program: str, member: str) -> list[Hold]: ...

    def commit(self, change: Change) -> None:
        """Apply atomically; raise EntryExistsError, TallyChangedError, CheckFailedError or ConcurrentUpdateError."""
        ...


class Programs(Protocol):
    def get(self, program: str) -> ProgramConfig:
        """The live config; raises UnknownProgramError."""
        ...


# --- Commands: what callers ask the ledger to do ----------------------------------------------


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    program: ProgramId
    member: Key

    def fingerprint(self) -> str:
        return fingerprint({"op": type(self).__name__, **self.model_dump(mode="json")})


class Earn(_Command):
    """Credit a member: available at once (a lot), or pending until activated."""

    points: Points
    source: Key
    external_id: Key
    reason: Reason
    event_time: AwareDatetime
    expires_at: AwareDatetime | None = None  # default: the program's expiry policy at event_time
    pending: bool = False
    counter: Account = Account.ISSUANCE
    counter_owner: str = ""
    config_version: int | None = None  # default: the live config's version
    details: dict[str, str] = Field(default_factory=dict)
    # Pending only: when the activation job may activate it, and whether a flag holds it beyond that.
    pending_until: AwareDatetime | None = None
    held: bool = False
    # Another member whose flag must be decided first (a referral reward waits for a flagged buyer's).
    held_for: str = ""

    def fingerprint(self) -> str:
        # Leave the newer optional fields out when unset, so entries written before them still match.
        dumped = self.model_dump(mode="json")
        for name in ("pending_until", "held", "held_for"):
            if not dumped[name]:
                del dumped[name]
        return fingerprint({"op": type(self).__name__, **dumped})


class Spend(_Command):
    """Debit a member's unexpired available points, earliest expiry first."""

    points: Points
    source: Key
    external_id: Key
    reason: Reason
    counter: Account = Account.REDEMPTION
    counter_owner: str = ""
    details: dict[str, str] = Field(default_factory=dict)


class Authorise(_Command):
    """Reserve points for a checkout; captured or released later, or released when it lapses."""

    points: Points
    source: Key
    external_id: Key
    reason: Reason
    lapses_at: AwareDatetime


class Capture(_Command):
    """Post a hold in full or in part; the part not captured goes back to the member."""

    hold_id: Key
    points: Points | None = None  # default: the whole hold
    reason: Reason = "checkout captured"
    # Where captured points go: redemption for a checkout, a partner for an outbound transfer.
    counter: Account = Account.REDEMPTION
    counter_owner: str = ""


class Release(_Command):
    hold_id: Key
    reason: Reason = "checkout hold released"


class Activate(_Command):
    """Make a pending earn spendable (its return window closed)."""

    entry_id: Key
    reason: Reason = "return window closed"


class Void(_Command):
    """Cancel a pending earn (the order was returned within the window, or a flag was confirmed)."""

    entry_id: Key
    reason: Reason = "pending points voided"


class Reverse(_Command):
    """Undo an earn, an activation, a spend or a capture with a linked entry."""

    entry_id: Key
    reason: Reason


class ClawBack(_Command):
    """Take back points of one earn (a refund): never more than the member has available.

    What cannot be taken is the shortfall, recorded on the entry (details `shortfall`). Zero
    points is allowed so that a refund too small to cost a point still leaves a record.
    """

    entry_id: Key  # the EARN or ACTIVATE entry whose points are taken back; its lot goes first
    points: Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS_PER_OPERATION)]
    source: Key
    external_id: Key
    reason: Reason
    details: dict[str, str] = Field(default_factory=dict)


class Transfer(_Command):
    """Move all of a member's points to another member (a merge): available lot by lot, pending earn by earn."""

    to_member: Key
    external_id: Key
    reason: Reason


class Send(_Command):
    """Send points from one member account to another in one transaction (gifts, exchanges).

    The sender's entry debits `points` to the counter account (TRANSFER within a program, PARTNER
    with owner = the other program across programs); the receiver's entry credits `credited` from
    the counter account of its own program. Each program's accounts still sum to zero on their own.
    """

    to_program: ProgramId
    to_member: Key
    points: Points
    credited: Points
    source: Key
    external_id: Key
    reason: Reason
    counter: Account = Account.TRANSFER
    # Gifts keep the original expiry dates (the sender's lots move); an exchange starts new lots
    # under the receiving program's expiry policy.
    keep_expiry: bool = False
    # Received points stay held until then (gifts), released by the hold-lapse job with their lots.
    hold_until: AwareDatetime | None = None
    details: dict[str, str] = Field(default_factory=dict)


class ExpireLot(_Command):
    """Move the unspent remainder of an expired lot to breakage."""

    lot_id: Key
    # Set when the program has ended: the lot is due from then, whatever its own expiry.
    program_ended_at: AwareDatetime | None = None

    def fingerprint(self) -> str:
        # Leave the optional field out when unset, so entries written before it existed still match.
        return fingerprint({"op": type(self).__name__, **self.model_dump(mode="json", exclude_none=True)})


# --- Lot policy -------------------------------------------------------------------------------


def spend_order(lots: Iterable[Lot]) -> list[Lot]:
    """Earliest expiry first; ties by lot id so every run picks the same lots.

    Also earliest effective expiry first: max(own date, kept_until) never reorders two lots.
    """
    return sorted(lots, key=lambda lot: (lot.expires_at, lot.lot_id))


def take_from_lots(
    lots: Sequence[Lot], points: int, at: datetime, prefer: str = "", kept_until: datetime | None = None
) -> list[tuple[Lot, int]]:
    """Which lots a debit of `points` consumes and how much of each; `prefer` is taken first."""
    usable = [lot for lot in spend_order(lots) if not lot.expired(at, kept_until) and lot.remaining > 0]
    usable.sort(key=lambda lot: lot.lot_id != prefer)  # stable: keeps expiry order otherwise
    spendable = sum(lot.remaining for lot in usable)
    if spendable < points:
        raise InsufficientPointsError(
            f"needs {points} points, {spendable} available", needed=points, available=spendable
        )
    taken: list[tuple[Lot, int]] = []
    left = points
    for lot in usable:
        if left == 0:
            break
        amount = min(lot.remaining, left)
        taken.append((lot, amount))
        left -= amount
    if len(taken) > MAX_LOTS_PER_OPERATION:
        raise TooManyLotsError(
            f"this debit would touch {len(taken)} lots; at most {MAX_LOTS_PER_OPERATION} at once",
            lots=len(taken),
        )
    return taken


def spendable(lots: Iterable[Lot], at: datetime, kept_until: datetime | None = None) -> int:
    return sum(lot.remaining for lot in lots if not lot.expired(at, kept_until))


# --- The ledger -------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Draft:
    """An entry being planned, before its chain position is known."""

    kind: EntryKind
    postings: list[Posting]
    source: str
    external_id: str
    reason: str
    event_time: datetime
    lots: list[LotMove] = field(default_factory=list)
    related: str = ""
    expires_at: datetime | None = None
    config_version: int | None = None
    details: dict[str, str] = field(default_factory=dict)


class Ledger:
    def __init__(
        self,
        store: LedgerStore,
        programs: Programs,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._programs = programs
        self._clock = clock
        self._sleep = sleep

    # Reads

    def account(self, program: str, member: str) -> AccountState:
        self._programs.get(program)
        state = self._store.get_account(program, member)
        if state is None:
            raise UnknownMemberError(f"member {member} has no account in {program}", member=member)
        return state

    def lots(self, program: str, member: str) -> list[Lot]:
        return spend_order(self._store.get_account_and_lots(program, member)[1])

    def spendable_points(self, program: str, member: str, at: datetime) -> int:
        """Points a debit could take now: unexpired by effective expiry (one read of the partition)."""
        state, lots = self._store.get_account_and_lots(program, member)
        return spendable(lots, at, self._programs.get(program).kept_until(state.active_at if state else None))

    # Credits

    def earn(
        self,
        cmd: Earn,
        at: datetime | None = None,
        tallies: Sequence[Tally] = (),
        checks: Sequence[Check] = (),
        snapshot: Snapshot | None = None,
    ) -> Entry:
        config = self._programs.get(cmd.program)
        if cmd.counter not in CREDIT_COUNTERS:
            raise InvalidInputError(f"an earn cannot come from the {cmd.counter} account")
        if (cmd.pending_until is not None or cmd.held or cmd.held_for) and not cmd.pending:
            raise InvalidInputError("only a pending earn has a time to activate or a hold")
        entry_id = f"{cmd.source}:{cmd.external_id}"
        expires_at = cmd.expires_at or config.expiry.expires_at(cmd.event_time, config.tz)
        if expires_at <= cmd.event_time:
            raise InvalidInputError("points cannot expire before they are earned")
        bucket = Account.PENDING if cmd.pending else Account.AVAILABLE
        version = cmd.config_version or config.version
        unread = [snapshot] if snapshot is not None else []

        def plan(now: datetime) -> Change:
            state = unread.pop().account if unread else self._store.get_account(cmd.program, cmd.member)
            draft = _Draft(
                kind=EntryKind.EARN_PENDING if cmd.pending else EntryKind.EARN,
                postings=[
                    Posting(account=cmd.counter, owner=cmd.counter_owner, amount=-cmd.points),
                    Posting(account=bucket, amount=cmd.points),
                ],
                source=cmd.source,
                external_id=cmd.external_id,
                reason=cmd.reason,
                event_time=cmd.event_time,
                expires_at=expires_at,
                config_version=version,
                details=dict(cmd.details),
            )
            if not cmd.pending:
                draft.lots.append(LotMove(lot_id=entry_id, expires_at=expires_at, amount=cmd.points))
            change = self._change(cmd, entry_id, state, draft, now)
            if cmd.pending:
                opened = PendingEarn(
                    program=cmd.program,
                    member=cmd.member,
                    entry_id=entry_id,
                    points=cmd.points,
                    expires_at=expires_at,
                    until=cmd.pending_until,
                    held_for=cmd.member if cmd.held else cmd.held_for,
                )
                change = replace(change, pending_created=(opened,))
            return _with_tallies(change, tallies, checks)

        return self._post(cmd, entry_id, plan, at)

    def activate(self, cmd: Activate, at: datetime | None = None) -> Entry:
        """Activate a pending earn on the account that holds it now (after a merge: the survivor's)."""
        entry_id = f"settle:{cmd.entry_id}"

        def plan(now: datetime) -> Change:
            pending = self._open_pending(cmd)
            draft = _Draft(
                kind=EntryKind.ACTIVATE,
                postings=[
                    Posting(account=Account.PENDING, amount=-pending.points),
                    Posting(account=Account.AVAILABLE, amount=pending.points),
                ],
                source="ledger",
                external_id=entry_id,
                reason=cmd.reason,
                event_time=now,
                related=cmd.entry_id,
                lots=[LotMove(lot_id=entry_id, expires_at=pending.expires_at, amount=pending.points)],
            )
            state = self._store.get_account(cmd.program, cmd.member)
            return replace(self._change(cmd, entry_id, state, draft, now), pending_deleted=(pending,))

        return self._post(cmd, entry_id, plan, at, on_conflict=AlreadySettledError)

    def void(self, cmd: Void, at: datetime | None = None, tallies: Sequence[Tally] = ()) -> Entry:
        """Cancel a pending earn on the account that holds it; the points go back where they came from."""
        entry_id = f"settle:{cmd.entry_id}"

        def plan(now: datetime) -> Change:
            pending = self._open_pending(cmd)
            earned = self._store.get_entry(cmd.program, cmd.entry_id)
            assert earned is not None
            counter = next(p for p in earned.postings if p.amount < 0)
            draft = self._derived(EntryKind.VOID, entry_id, cmd.reason, earned, now)
            draft.postings = [
                Posting(account=Account.PENDING, amount=-pending.points),
                Posting(account=counter.account, owner=counter.owner, amount=pending.points),
            ]
            state = self._store.get_account(cmd.program, cmd.member)
            change = replace(self._change(cmd, entry_id, state, draft, now), pending_deleted=(pending,))
            return _with_tallies(change, tallies)

        return self._post(cmd, entry_id, plan, at, on_conflict=AlreadySettledError)

    # Debits

    def spend(self, cmd: Spend, at: datetime | None = None, guards: Sequence[Guard] = ()) -> Entry:
        config = self._programs.get(cmd.program)
        if cmd.counter not in DEBIT_COUNTERS:
            raise InvalidInputError(f"a spend cannot go to the {cmd.counter} account")
        entry_id = f"{cmd.source}:{cmd.external_id}"

        def plan(now: datetime) -> Change:
            state, lots = self._member_lots(cmd)
            taken = take_from_lots(lots, cmd.points, now, kept_until=config.kept_until(state.active_at))
            draft = _Draft(
                kind=EntryKind.SPEND,
                postings=[
                    Posting(account=Account.AVAILABLE, amount=-cmd.points),
                    Posting(account=cmd.counter, owner=cmd.counter_owner, amount=cmd.points),
                ],
                source=cmd.source,
                external_id=cmd.external_id,
                reason=cmd.reason,
                event_time=now,
                details=dict(cmd.details),
            )
            return self._change(cmd, entry_id, state, draft, now, taken=taken)

        return self._post(cmd, entry_id, plan, at, guards=guards)

    def authorise(self, cmd: Authorise, at: datetime | None = None) -> Entry:
        config = self._programs.get(cmd.program)
        entry_id = f"{cmd.source}:{cmd.external_id}"

        def plan(now: datetime) -> Change:
            if cmd.lapses_at <= now:
                raise InvalidInputError("a hold must lapse in the future")
            state, lots = self._member_lots(cmd)
            taken = take_from_lots(lots, cmd.points, now, kept_until=config.kept_until(state.active_at))
            draft = _Draft(
                kind=EntryKind.HOLD,
                postings=[
                    Posting(account=Account.AVAILABLE, amount=-cmd.points),
                    Posting(account=Account.HELD, amount=cmd.points),
                ],
                source=cmd.source,
                external_id=cmd.external_id,
                reason=cmd.reason,
                event_time=now,
                details={"lapses_at": cmd.lapses_at.isoformat()},
            )
            change = self._change(cmd, entry_id, state, draft, now, taken=taken)
            hold = Hold(
                program=cmd.program,
                member=cmd.member,
                hold_id=entry_id,
                amount=cmd.points,
                lots=tuple(LotMove(lot_id=lot.lot_id, expires_at=lot.expires_at, amount=n) for lot, n in taken),
                lapses_at=cmd.lapses_at,
            )
            return Change(**{**change.__dict__, "hold_created": hold})

        return self._post(cmd, entry_id, plan, at)

    def capture(self, cmd: Capture, at: datetime | None = None) -> Entry:
        if cmd.counter not in DEBIT_COUNTERS:
            raise InvalidInputError(f"a capture cannot go to the {cmd.counter} account")
        entry_id = f"settle:{cmd.hold_id}"

        def plan(now: datetime) -> Change:
            hold = self._open_hold(cmd.program, cmd.member, cmd.hold_id)
            captured = hold.amount if cmd.points is None else cmd.points
            if captured > hold.amount:
                raise CaptureExceedsHoldError(
                    f"capture of {captured} exceeds the hold of {hold.amount}", hold=hold.amount
                )
            released = hold.amount - captured
            hold_entry = self._store.get_entry(cmd.program, cmd.hold_id)
            assert hold_entry is not None
            draft = self._derived(EntryKind.CAPTURE, entry_id, cmd.reason, hold_entry, now)
            draft.postings = [
                Posting(account=Account.HELD, amount=-hold.amount),
                Posting(account=cmd.counter, owner=cmd.counter_owner, amount=captured),
            ]
            if released:
                draft.postings.append(Posting(account=Account.AVAILABLE, amount=released))
                draft.lots = _restore(entry_id, _slices(hold.lots, skip=captured))
            draft.details["captured"] = str(captured)
            state = self._store.get_account(cmd.program, cmd.member)
            change = self._change(cmd, entry_id, state, draft, now)
            return Change(**{**change.__dict__, "hold_deleted": hold})

        return self._post(cmd, entry_id, plan, at, on_conflict=AlreadySettledError)

    def release(self, cmd: Release, at: datetime | None = None) -> Entry:
        entry_id = f"settle:{cmd.hold_id}"

        def plan(now: datetime) -> Change:
            hold = self._open_hold(cmd.program, cmd.member, cmd.hold_id)
            hold_entry = self._store.get_entry(cmd.program, cmd.hold_id)
            assert hold_entry is not None
            draft = self._derived(EntryKind.RELEASE, entry_id, cmd.reason, hold_entry, now)
            draft.postings = [
                Posting(account=Account.HELD, amount=-hold.amount),
                Posting(account=Account.AVAILABLE, amount=hold.amount),
            ]
            draft.lots = _restore(entry_id, hold.lots)
            state = self._store.get_account(cmd.program, cmd.member)
            change = self._change(cmd, entry_id, state, draft, now)
            return Change(**{**change.__dict__, "hold_deleted": hold})

        return self._post(cmd, entry_id, plan, at, on_conflict=AlreadySettledError)

    def reverse(self, cmd: Reverse, at: datetime | None = None) -> Entry:
        entry_id = f"reversal:{cmd.entry_id}"

        def plan(now: datetime) -> Change:
            original = self._store.get_entry(cmd.program, cmd.entry_id)
            if original is None or original.member != cmd.member:
                raise UnknownEntryError(f"no entry {cmd.entry_id} for member {cmd.member}")
            draft = self._derived(EntryKind.REVERSAL, entry_id, cmd.reason, original, now)
            if original.kind in (EntryKind.EARN, EntryKind.ACTIVATE):
                return self._claw_back(cmd, entry_id, original, draft, now)
            if original.kind is EntryKind.SPEND:
                points = -original.delta(Account.AVAILABLE)
                counter = next(p for p in original.postings if p.amount > 0)
                draft.postings = [
                    Posting(account=counter.account, owner=counter.owner, amount=-points),
                    Posting(account=Account.AVAILABLE, amount=points),
                ]
                consumed = [LotMove(lot_id=m.lot_id, expires_at=m.expires_at, amount=-m.amount) for m in original.lots]
                draft.lots = _restore(entry_id, consumed)
            elif original.kind is EntryKind.CAPTURE:
                counter = next(p for p in original.postings if p.amount > 0 and p.account in DEBIT_COUNTERS)
                captured = counter.amount
                hold_entry = self._store.get_entry(cmd.program, original.related)
                assert hold_entry is not None
                consumed = [
                    LotMove(lot_id=m.lot_id, expires_at=m.expires_at, amount=-m.amount) for m in hold_entry.lots
                ]
                draft.postings = [
                    Posting(account=counter.account, owner=counter.owner, amount=-captured),
                    Posting(account=Account.AVAILABLE, amount=captured),
                ]
                draft.lots = _restore(entry_id, _slices(consumed, take=captured))
            else:
                raise NotReversibleError(
                    f"a {original.kind} entry is undone by its own operation (void, release), not reversed"
                )
            state = self._store.get_account(cmd.program, cmd.member)
            return self._change(cmd, entry_id, state, draft, now)

        return self._post(cmd, entry_id, plan, at)

    def claw_back(self, cmd: ClawBack, at: datetime | None = None, tallies: Sequence[Tally] = ()) -> Entry:
        config = self._programs.get(cmd.program)
        entry_id = f"{cmd.source}:{cmd.external_id}"

        def plan(now: datetime) -> Change:
            original = self._store.get_entry(cmd.program, cmd.entry_id)
            if original is None or original.kind not in (EntryKind.EARN, EntryKind.ACTIVATE):
                raise UnknownEntryError(f"no earn {cmd.entry_id} to claw back from")
            source_entry = original
            if original.kind is EntryKind.ACTIVATE:
                pending = self._store.get_entry(cmd.program, original.related)
                assert pending is not None
                source_entry = pending
            counter = next(p for p in source_entry.postings if p.amount < 0)
            state, lots = self._store.get_account_and_lots(cmd.program, cmd.member)
            kept = config.kept_until(state.active_at) if state else None
            # The points may have been spent (or moved by a merge): take what is there, owe the rest.
            taken_points = min(cmd.points, spendable(lots, now, kept))
            taken = take_from_lots(lots, taken_points, now, original.entry_id, kept) if taken_points else []
            draft = _Draft(
                kind=EntryKind.CLAWBACK,
                postings=[
                    Posting(account=Account.AVAILABLE, amount=-taken_points),
                    Posting(account=counter.account, owner=counter.owner, amount=taken_points),
                ],
                source=cmd.source,
                external_id=cmd.external_id,
                reason=cmd.reason,
                event_time=now,
                related=original.entry_id,
                details={**cmd.details, "requested": str(cmd.points), "shortfall": str(cmd.points - taken_points)},
            )
            return _with_tallies(self._change(cmd, entry_id, state, draft, now, taken=taken), tallies)

        return self._post(cmd, entry_id, plan, at)

    def transfer(self, cmd: Transfer, at: datetime | None = None) -> Entry | None:
        """Merge: move everything `member` holds to `to_member` and close `member`'s account, atomically.

        Two entries in one transaction, out of `member` and into `to_member` through the transfer
        account: each unexpired lot re-created with its expiry, each open pending earn and each open
        hold re-homed whole. The closure (`merged_into`) is written with them, so an operation planned
        on the account before the merge fails its sequence condition and finds it closed. With
        nothing to move, only the closure is written (the account is created closed if it has none)
        and None is returned; a closed account may still pass leftovers on. Idempotent by `external_id`.
        """
        config = self._programs.get(cmd.program)
        if cmd.to_member == cmd.member:
            raise InvalidInputError("a member cannot transfer to themselves")
        entry_id = f"transfer:{cmd.external_id}"
        in_id = f"{entry_id}:in"

        def plan(now: datetime) -> Change:
            state, lots = self._store.get_account_and_lots(cmd.program, cmd.member)
            survivor = self._store.get_account(cmd.program, cmd.to_member)
            if survivor is not None and survivor.merged_into:
                raise _closed(cmd.program, survivor)  # never close into a closed account: follow it
            if state is None:
                # Nothing was ever posted here, but an earn may be about to: close it before it can.
                closed = AccountState(program=cmd.program, member=cmd.member, merged_into=cmd.to_member)
                return Change(entries=(), accounts=((closed, 0),))
            kept = config.kept_until(state.active_at)
            moving = [lot for lot in spend_order(lots) if not lot.expired(now, kept) and lot.remaining > 0]
            # Pending earns and holds move whole, so the survivor's balance shows them at once; their
            # activation, void, capture or release then happens on the survivor's account.
            waiting = sorted(self._store.get_pending_earns(cmd.program, cmd.member), key=lambda p: p.entry_id)
            holds = sorted(self._store.get_holds(cmd.program, cmd.member), key=lambda h: h.hold_id)
            if sum(p.points for p in waiting) != state.pending or sum(h.amount for h in holds) != state.held:
                raise ConcurrentUpdateError()  # a pending earn or a hold came or went between the reads
            if 2 * (len(moving) + len(waiting) + len(holds)) + 4 > MAX_TRANSACTION_ITEMS:
                raise TooManyLotsError(
                    f"a transfer of {len(moving)} lots, {len(waiting)} pending earns and {len(holds)} holds "
                    "does not fit one transaction"
                )
            closing = state if state.merged_into else state.model_copy(update={"merged_into": cmd.to_member})
            if not (moving or waiting or holds):
                if closing is state:
                    return Change(entries=(), accounts=())  # closed and emptied before: nothing to do
                return Change(entries=(), accounts=((closing, state.seq),))
            total = sum(lot.remaining for lot in moving)
            moved = state.pending + state.held
            moved_items = {"pending_earns": json.dumps([p.entry_id for p in waiting])} if waiting else {}
            if holds:
                moved_items["holds"] = json.dumps([h.hold_id for h in holds])
            out = _Draft(
                kind=EntryKind.TRANSFER,
                postings=[
                    Posting(account=Account.AVAILABLE, amount=-total),
                    Posting(account=Account.PENDING, amount=-state.pending),
                    Posting(account=Account.HELD, amount=-state.held),
                    Posting(account=Account.TRANSFER, amount=total + moved),
                ],
                source="ledger",
                external_id=entry_id,
                reason=cmd.reason,
                event_time=now,
                details={"to_member": cmd.to_member, **moved_items},
            )
            taken = [(lot, lot.remaining) for lot in moving]
            sent = self._change(cmd, entry_id, closing, out, now, taken=taken, allow_closed=True)
            receiver = cmd.model_copy(update={"member": cmd.to_member, "to_member": cmd.member})
            into = _Draft(
                kind=EntryKind.TRANSFER,
                postings=[
                    Posting(account=Account.TRANSFER, amount=-(total + moved)),
                    Posting(account=Account.AVAILABLE, amount=total),
                    Posting(account=Account.PENDING, amount=state.pending),
                    Posting(account=Account.HELD, amount=state.held),
                ],
                source="ledger",
                external_id=in_id,
                reason=cmd.reason,
                event_time=now,
                related=entry_id,
                lots=[
                    LotMove(lot_id=f"{in_id}/{i}", expires_at=lot.expires(kept), amount=lot.remaining)
                    for i, lot in enumerate(moving)
                ],
                details={"from_member": cmd.member, **moved_items, **_carried_activity(state)},
            )
            received = self._change(receiver, in_id, survivor, into, now)
            return Change(
                entries=sent.entries + received.entries,
                accounts=sent.accounts + received.accounts,
                lots_created=sent.lots_created + received.lots_created,
                lots_updated=sent.lots_updated,
                lots_deleted=sent.lots_deleted,
                pending_created=tuple(p.model_copy(update={"member": cmd.to_member}) for p in waiting),
                pending_deleted=tuple(waiting),
                holds_moved=tuple((h, h.model_copy(update={"member": cmd.to_member})) for h in holds),
            )

        return self._post_or_close(cmd, entry_id, plan, at)

    def send(self, cmd: Send, at: datetime | None = None, guards: Sequence[Guard] = ()) -> Entry:
        """Debit one member and credit another in one transaction; returns the sender's entry."""
        if (cmd.program, cmd.member) == (cmd.to_program, cmd.to_member):
            raise InvalidInputError("sending points needs two different accounts")
        if cmd.counter not in (Account.TRANSFER, Account.PARTNER):
            raise InvalidInputError(f"points cannot be sent through the {cmd.counter} account")
        if cmd.keep_expiry and cmd.credited != cmd.points:
            raise InvalidInputError("moving lots keeps their points: credited must equal points")
        receiving = self._programs.get(cmd.to_program)
        sending = self._programs.get(cmd.program)
        entry_id = f"{cmd.source}:{cmd.external_id}"
        credit_id = f"{entry_id}/in"
        # Across programs each side names the other program as the partner it settles with.
        out_owner = cmd.to_program if cmd.counter is Account.PARTNER else ""
        in_owner = cmd.program if cmd.counter is Account.PARTNER else ""
        receiver = cmd.model_copy(update={"program": cmd.to_program, "member": cmd.to_member})

        def plan(now: datetime) -> Change:
            state, lots = self._member_lots(cmd)
            kept = sending.kept_until(state.active_at)
            taken = take_from_lots(lots, cmd.points, now, kept_until=kept)
            details = {**cmd.details, "to": f"{cmd.to_program}/{cmd.to_member}"}
            debit = _Draft(
                kind=EntryKind.TRANSFER_OUT,
                postings=[
                    Posting(account=Account.AVAILABLE, amount=-cmd.points),
                    Posting(account=cmd.counter, owner=out_owner, amount=cmd.points),
                ],
                source=cmd.source,
                external_id=cmd.external_id,
                reason=cmd.reason,
                event_time=now,
                details=details,
            )
            if cmd.keep_expiry:
                # Moved points keep the date they would have expired on for the sender.
                moved = [LotMove(lot_id=lot.lot_id, expires_at=lot.expires(kept), amount=n) for lot, n in taken]
                credit_lots = _restore(credit_id, moved)
            else:
                expires = receiving.expiry.expires_at(now, receiving.tz)
                credit_lots = [LotMove(lot_id=credit_id, expires_at=expires, amount=cmd.credited)]
            hold: Hold | None = None
            if cmd.hold_until is not None:
                # Held points have no lots yet; the hold remembers them, and its release restores
                # them with their expiry dates, exactly as a released checkout hold does.
                hold = Hold(
                    program=cmd.to_program,
                    member=cmd.to_member,
                    hold_id=credit_id,
                    amount=cmd.credited,
                    lots=tuple(credit_lots),
                    lapses_at=cmd.hold_until,
                )
                credit_lots = []
            bucket = Account.AVAILABLE if hold is None else Account.HELD
            credit = _Draft(
                kind=EntryKind.TRANSFER_IN,
                postings=[
                    Posting(account=cmd.counter, owner=in_owner, amount=-cmd.credited),
                    Posting(account=bucket, amount=cmd.credited),
                ],
                source=cmd.source,
                external_id=f"{cmd.external_id}/in",
                reason=cmd.reason,
                event_time=now,
                lots=credit_lots,
                related=entry_id,
                details={**cmd.details, "from": f"{cmd.program}/{cmd.member}"},
            )
            out = self._change(cmd, entry_id, state, debit, now, taken=taken)
            into = self._change(
                receiver, credit_id, self._store.get_account(cmd.to_program, cmd.to_member), credit, now
            )
            return Change(
                entries=out.entries + into.entries,
                accounts=out.accounts + into.accounts,
                lots_created=out.lots_created + into.lots_created,
                lots_updated=out.lots_updated,
                lots_deleted=out.lots_deleted,
                hold_created=hold,
            )

        return self._post(cmd, entry_id, plan, at, guards=guards)

    def expire_lot(self, cmd: ExpireLot, at: datetime | None = None) -> Entry:
        """Expire a lot whose effective expiry has passed; NotDueError (with the date) if it has not."""
        config = self._programs.get(cmd.program)
        entry_id = f"expiry:{cmd.lot_id}"

        def plan(now: datetime) -> Change:
            # A merge leaves lots that had already expired behind: they still expire where they are.
            state, lots = self._member_lots(cmd, allow_closed=True)
            lot = next((lot for lot in lots if lot.lot_id == cmd.lot_id), None)
            if lot is None:
                raise UnknownEntryError(f"member {cmd.member} has no open lot {cmd.lot_id}")
            ended = cmd.program_ended_at is not None and cmd.program_ended_at <= now
            expires = lot.expires(config.kept_until(state.active_at))
            if expires > now and not ended:
                raise NotDueError(f"lot {cmd.lot_id} expires at {expires.isoformat()}, not yet", due=expires)
            day = expires.astimezone(config.tz).date().isoformat()
            reason = f"points earned by {lot.origin} expired on {day}"
            if expires > lot.expires_at and state.active_at is not None:
                active = state.active_at.astimezone(config.tz).date().isoformat()
                reason += f", {config.expiry.months} months after the last activity on {active}"
            event_time = expires
            if ended and cmd.program_ended_at is not None and cmd.program_ended_at < expires:
                end = cmd.program_ended_at.astimezone(config.tz).date().isoformat()
                reason = f"program ended on {end}: points earned by {lot.origin}"
                event_time = cmd.program_ended_at
            draft = _Draft(
                kind=EntryKind.EXPIRY,
                postings=[
                    Posting(account=Account.AVAILABLE, amount=-lot.remaining),
                    Posting(account=Account.BREAKAGE, amount=lot.remaining),
                ],
                source="ledger",
                external_id=entry_id,
                reason=reason,
                event_time=event_time,
                lots=[LotMove(lot_id=lot.lot_id, expires_at=lot.expires_at, amount=-lot.remaining)],
                related=lot.origin,
            )
            taken = [(lot, lot.remaining)]
            return self._change(cmd, entry_id, state, draft, now, taken=taken, lot_moves_done=True, allow_closed=True)

        return self._post(cmd, entry_id, plan, at)

    # Internals

    def _claw_back(self, cmd: Reverse, entry_id: str, original: Entry, draft: _Draft, now: datetime) -> Change:
        points = original.delta(Account.AVAILABLE)
        source_entry = original
        if original.kind is EntryKind.ACTIVATE:
            pending = self._store.get_entry(cmd.program, original.related)
            assert pending is not None
            source_entry = pending
        counter = next(p for p in source_entry.postings if p.amount < 0)
        draft.postings = [
            Posting(account=Account.AVAILABLE, amount=-points),
            Posting(account=counter.account, owner=counter.owner, amount=points),
        ]
        state, lots = self._member_lots(cmd)
        kept = self._programs.get(cmd.program).kept_until(state.active_at)
        taken = take_from_lots(lots, points, now, prefer=original.entry_id, kept_until=kept)
        return self._change(cmd, entry_id, state, draft, now, taken=taken)

    def _derived(self, kind: EntryKind, entry_id: str, reason: str, related: Entry, now: datetime) -> _Draft:
        return _Draft(
            kind=kind,
            postings=[],
            source="ledger",
            external_id=entry_id,
            reason=reason,
            event_time=now,
            related=related.entry_id,
        )

    def _open_pending(self, cmd: Activate | Void) -> PendingEarn:
        pending = self._store.get_pending(cmd.program, cmd.member, cmd.entry_id)
        if pending is None:
            # Settled already (the caller's retry finds the settling entry), moved by a merge, or unknown.
            self._refuse_if_closed(cmd.program, cmd.member)
            raise UnknownEntryError(f"no open pending earn {cmd.entry_id} held by member {cmd.member}")
        return pending

    def _open_hold(self, program: str, member: str, hold_id: str) -> Hold:
        hold = self._store.get_hold(program, member, hold_id)
        if hold is None:
            self._refuse_if_closed(program, member)  # a merge moved it: say where to
            raise UnknownEntryError(f"no open hold {hold_id} for member {member}")
        return hold

    def _refuse_if_closed(self, program: str, member: str) -> None:
        state = self._store.get_account(program, member)
        if state is not None and state.merged_into:
            raise _closed(program, state)

    def _member_lots(self, cmd: _Command, allow_closed: bool = False) -> tuple[AccountState, list[Lot]]:
        state, lots = self._store.get_account_and_lots(cmd.program, cmd.member)
        if state is None:
            raise UnknownMemberError(f"member {cmd.member} has no account in {cmd.program}", member=cmd.member)
        if state.merged_into and not allow_closed:
            raise _closed(cmd.program, state)
        return state, lots

    def _change(
        self,
        cmd: _Command,
        entry_id: str,
        state: AccountState | None,
        draft: _Draft,
        now: datetime,
        taken: Sequence[tuple[Lot, int]] = (),
        lot_moves_done: bool = False,
        allow_closed: bool = False,
    ) -> Change:
        if state is not None and state.merged_into and not allow_closed:
            raise _closed(cmd.program, state)
        if state is None:
            if any(p.amount < 0 for p in draft.postings if p.account in (Account.AVAILABLE, Account.HELD)):
                raise UnknownMemberError(f"member {cmd.member} has no account in {cmd.program}")
            state = AccountState(program=cmd.program, member=cmd.member)
        if not lot_moves_done:
            draft.lots = [
                *(LotMove(lot_id=lot.lot_id, expires_at=lot.expires_at, amount=-n) for lot, n in taken),
                *draft.lots,
            ]
        config = self._programs.get(cmd.program)
        config_version = draft.config_version or config.version
        # After a program's end every lot is due at once: points given back late expire at the next run.
        ended = config.sunset is not None and config.sunset.ends_at <= now
        entry = Entry(
            program=cmd.program,
            entry_id=entry_id,
            member=cmd.member,
            kind=draft.kind,
            source=draft.source,
            external_id=draft.external_id,
            reason=draft.reason,
            config_version=config_version,
            postings=tuple(p for p in draft.postings if p.amount != 0),
            lots=tuple(draft.lots),
            related=draft.related,
            event_time=draft.event_time,
            recorded_at=now,
            expires_at=draft.expires_at,
            details=draft.details,
            fingerprint=cmd.fingerprint(),
            seq=state.seq + 1,
            prev_hash=state.head,
        ).sealed()
        if sum(p.amount for p in entry.postings) != 0:
            raise LedgerError(f"entry {entry_id} does not balance")  # a bug, never a user error
        new_state = state.after(entry)
        created = [
            Lot(
                program=cmd.program,
                member=cmd.member,
                lot_id=m.lot_id,
                expires_at=m.expires_at,
                remaining=m.amount,
                origin=entry_id,
                due_at=now if ended else None,
            )
            for m in draft.lots
            if m.amount > 0
        ]
        updated = [(lot.model_copy(update={"remaining": lot.remaining - n}), lot.remaining) for lot, n in taken]
        change = Change(
            entries=(entry,),
            accounts=((new_state, state.seq),),
            lots_created=tuple(created),
            lots_updated=tuple((lot, before) for lot, before in updated if lot.remaining > 0),
            lots_deleted=tuple((lot, before) for lot, before in updated if lot.remaining == 0),
        )
        if change.item_count > MAX_TRANSACTION_ITEMS:
            raise TooManyLotsError(f"operation would write {change.item_count} items; at most {MAX_TRANSACTION_ITEMS}")
        return change

    def _post(
        self,
        cmd: _Command,
        entry_id: str,
        plan: Callable[[datetime], Change],
        at: datetime | None,
        on_conflict: type[LedgerError] = IdempotencyConflictError,
        guards: Sequence[Guard] = (),
    ) -> Entry:
        entry = self._post_or_close(cmd, entry_id, plan, at, on_conflict, guards)
        assert entry is not None, "only a transfer plans a change without entries"
        return entry

    def _post_or_close(
        self,
        cmd: _Command,
        entry_id: str,
        plan: Callable[[datetime], Change],
        at: datetime | None,
        on_conflict: type[LedgerError] = IdempotencyConflictError,
        guards: Sequence[Guard] = (),
    ) -> Entry | None:
        """Plan, commit, retry on a concurrent update; None when the change wrote no entry (a bare closure)."""
        now = at or self._clock()
        for attempt in range(MAX_ATTEMPTS):
            try:
                change = plan(now)
                if guards:
                    change = Change(**{**change.__dict__, "guards": tuple(guards)})
            except (LedgerError, NotFoundError, InvalidInputError):
                # A rejected request may be the retry of one that already succeeded.
                existing = self._store.get_entry(cmd.program, entry_id)
                if existing is not None:
                    return self._replayed(cmd, existing, on_conflict)
                raise
            except ConcurrentUpdateError:
                self._sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
                continue
            if not change.accounts:
                return None  # nothing to write
            try:
                self._store.commit(change)
            except EntryExistsError:
                existing = self._store.get_entry(cmd.program, entry_id)
                assert existing is not None
                return self._replayed(cmd, existing, on_conflict)
            except ConcurrentUpdateError:
                self._sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
                continue
            return change.entries[0] if change.entries else None
        raise ContentionError(f"account {cmd.member} stayed busy; retry later", member=cmd.member)

    @staticmethod
    def _replayed(cmd: _Command, existing: Entry, on_conflict: type[LedgerError]) -> Entry:
        if existing.fingerprint == cmd.fingerprint():
            return existing
        if on_conflict is AlreadySettledError:
            raise AlreadySettledError(f"{existing.related} was already settled by a {existing.kind}")
        raise IdempotencyConflictError(
            f"{existing.entry_id} was already posted with a different request", entry_id=existing.entry_id
        )


def _closed(program: str, state: AccountState) -> AccountClosedError:
    return AccountClosedError(
        f"member {state.member}'s account in {program} was merged into {state.merged_into}; use that member",
        survivor=state.merged_into,
        member=state.member,
    )


def _with_tallies(change: Change, tallies: Sequence[Tally], checks: Sequence[Check] = ()) -> Change:
    if not tallies and not checks:
        return change
    change = replace(change, tallies=tuple(tallies), checks=tuple(checks))
    if change.item_count > MAX_TRANSACTION_ITEMS:
        raise TooManyLotsError(f"operation would write {change.item_count} items; at most {MAX_TRANSACTION_ITEMS}")
    return change


def _slices(moves: Sequence[LotMove], *, take: int | None = None, skip: int = 0) -> list[LotMove]:
    """The part of a list of lot takings after skipping `skip` points, up to `take` points."""
    out: list[LotMove] = []
    to_skip, to_take = skip, take if take is not None else sum(m.amount for m in moves)
    for move in moves:
        amount = move.amount
        cut = min(amount, to_skip)
        amount -= cut
        to_skip -= cut
        amount = min(amount, to_take)
        if amount > 0:
            out.append(move.model_copy(update={"amount": amount}))
            to_take -= amount
    return out


def _carried_activity(state: AccountState) -> dict[str, str]:
    """A merge carries the merged account's last activity to the surviving one (the same person)."""
    return {CARRIED_ACTIVITY: state.active_at.isoformat()} if state.active_at else {}


def _restore(entry_id: str, taken: Sequence[LotMove]) -> list[LotMove]:
    """Points given back become new lots with their original expiry, named after the entry."""
    return [
        LotMove(lot_id=f"{entry_id}/{i}", expires_at=move.expires_at, amount=move.amount)
        for i, move in enumerate(taken)
        if move.amount > 0
    ]
