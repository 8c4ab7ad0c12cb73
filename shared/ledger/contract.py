"""What the ledger asks of its store, and the pieces a store applies in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from shared.infra.keys import ItemKey
    from shared.ledger.models import (
        AccountState,
        Entry,
        Hold,
        Lot,
        PendingEarn,
    )
    from shared.program.config import ProgramConfig

# DynamoDB's TransactWriteItems takes at most 100 items; an operation writes a few besides lots.
MAX_TRANSACTION_ITEMS = 100
MAX_LOTS_PER_OPERATION = MAX_TRANSACTION_ITEMS - 4


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
    """An item that must not carry `attribute` (or, with `value`, must not carry it with that value)
    when the operation commits; checked, never written.

    Lets a caller make an operation conditional on something outside the ledger without reading it
    first (e.g. "no refund is waiting for this order", "the member's flag is not open"): the store
    checks it inside the transaction. With a `code`, a failed check is the refusal of that name
    (`MemberOnHoldError` for `member_on_hold`, saying `detail`) rather than `CheckFailedError`.
    """

    key: ItemKey
    attribute: str
    value: str | None = None
    code: str = ""
    detail: str = ""


class DebitHolds(Protocol):
    """Who may not debit now, as checks for the debit's transaction (`shared.members.flags.FlagHolds`):
    `purpose` is spending, gifting or exchanging."""

    def checks(self, program: str, member: str, purpose: str) -> Sequence[Check]: ...


@dataclass(frozen=True)
class Mark:
    """An item outside the ledger given attributes in the same transaction (SET, unconditional).

    What a multi-step operation leaves for its next run when a step after the commit is still to
    do: e.g. an activation with refunds waiting marks their list so the activation job meets it
    again until they are applied, so a process that stops right after the commit loses nothing.
    """

    key: ItemKey
    values: tuple[tuple[str, str], ...]


class CheckFailedError(Exception):
    """The store found a Check's item carrying its attribute; nothing was written."""

    def __init__(self, check: Check) -> None:
        super().__init__(f"{check.key.pk}/{check.key.sk} has {check.attribute}")
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
    marks: tuple[Mark, ...] = ()
    # Open holds a merge re-homes: (as held by the merged member, as held by the survivor).
    holds_moved: tuple[tuple[Hold, Hold], ...] = ()

    @property
    def item_count(self) -> int:
        holds = (self.hold_created is not None) + (self.hold_deleted is not None) + 2 * len(self.holds_moved)
        lots = len(self.lots_created) + len(self.lots_updated) + len(self.lots_deleted)
        pending = len(self.pending_created) + len(self.pending_deleted)
        extras = len(self.tallies) + len(self.guards) + len(self.checks) + len(self.marks)
        return len(self.entries) + len(self.accounts) + lots + holds + pending + extras


@dataclass(frozen=True)
class Guard:
    """A counter an operation adds to atomically with its entries, refused if it would pass `limit`.

    Limits that must hold under concurrency (reward stock, per-member and per-day limits) cannot be
    checked by reading first: two redemptions would both see the last item. Bumping a counter with
    a condition in the ledger's own transaction makes the entry and the limit succeed or fail together.
    """

    key: ItemKey
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

    def get_account_and_lots(
        self, program: str, member: str, until: datetime | None = None
    ) -> tuple[AccountState | None, list[Lot]]:
        """The balance and the lots (those whose own expiry is at or before `until`, if given)."""
        ...

    def get_entry(self, program: str, entry_id: str) -> Entry | None: ...

    def get_hold(self, program: str, member: str, hold_id: str) -> Hold | None: ...

    def get_pending(self, program: str, member: str, entry_id: str) -> PendingEarn | None: ...

    def get_pending_earns(self, program: str, member: str) -> list[PendingEarn]: ...

    def get_holds(self, program: str, member: str) -> list[Hold]: ...

    def entries(self, program: str, member: str, after_seq: int = 0, limit: int | None = None) -> list[Entry]:
        """A member's entries in chain order."""
        ...

    def commit(self, change: Change) -> None:
        """Apply atomically; raise EntryExistsError, TallyChangedError, CheckFailedError or ConcurrentUpdateError."""
        ...


class Programs(Protocol):
    def get(self, program: str) -> ProgramConfig:
        """The live config; raises UnknownProgramError."""
        ...

    def at(self, program: str, moment: datetime) -> ProgramConfig:
        """The version that was live at `moment` (an event is evaluated by the rules of its time)."""
        ...

    def since(self, program: str) -> datetime | None:
        """When the program's first version was published (None: no such program)."""
        ...
