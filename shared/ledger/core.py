"""The ledger's machinery shared by every operation: plan a change, commit it, retry, replay."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.errors import (
    AccountClosedError,
    AlreadySettledError,
    ContentionError,
    IdempotencyConflictError,
    InvalidInputError,
    LedgerError,
    MemberOnHoldError,
    NotFoundError,
    TooManyLotsError,
    UnknownEntryError,
    UnknownMemberError,
)
from shared.infra.settings import LOCAL_CHAIN_KEY
from shared.ledger.contract import (
    MAX_TRANSACTION_ITEMS,
    Change,
    Check,
    CheckFailedError,
    ConcurrentUpdateError,
    DebitHolds,
    EntryExistsError,
    Guard,
    LedgerStore,
    Mark,
    Programs,
    Tally,
)
from shared.ledger.lots import spend_order, spendable, take_from_lots
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
)
from shared.ledger.statement import balances_after

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shared.ledger.commands import Activate, Reverse, Void, _Command


MAX_ATTEMPTS = 40


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _local_chain_key() -> bytes:
    """Only for a ledger built without a key (unit and integration tests): deployed functions always
    get the stack's key from the settings, which refuse to run without it."""
    return LOCAL_CHAIN_KEY.encode()


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


class LedgerCore:
    def __init__(
        self,
        store: LedgerStore,
        programs: Programs,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
        holds: DebitHolds | None = None,
        chain_key: Callable[[], bytes] | None = None,
    ) -> None:
        """`chain_key` gives the key every entry's hash is keyed with (read when the first entry is
        sealed, so a function that writes none never asks for it); tests and local runs may leave it
        out and get the local key."""
        self._store = store
        self._chain_key = chain_key or _local_chain_key
        self._programs = programs
        self._clock = clock
        self._sleep = sleep
        self._holds = holds

    def _held(self, program: str, member: str, purpose: str) -> tuple[Check, ...]:
        """The checks a debit of this purpose carries (an open flag holding it refuses it at commit)."""
        return tuple(self._holds.checks(program, member, purpose)) if self._holds is not None else ()

    # Reads

    def account(self, program: str, member: str) -> AccountState:
        self._programs.get(program)
        state = self._store.get_account(program, member)
        if state is None:
            raise UnknownMemberError(f"member {member} has no account in {program}", member=member)
        return state

    def account_and_lots(
        self, program: str, member: str, until: datetime | None = None
    ) -> tuple[AccountState | None, list[Lot]]:
        """The balance (None: no account) and the lots whose own expiry is at or before `until`: one read."""
        return self._store.get_account_and_lots(program, member, until)

    def lots(self, program: str, member: str) -> list[Lot]:
        return spend_order(self._store.get_account_and_lots(program, member)[1])

    def entries_named(self, program: str, entry_ids: Sequence[str]) -> dict[str, Entry]:
        """Entries by id, one read each (ids with no entry left out): what a notice names a lot's earn from."""
        found = {}
        for entry_id in dict.fromkeys(entry_ids):
            entry = self._store.get_entry(program, entry_id)
            if entry is not None:
                found[entry_id] = entry
        return found

    def spendable_points(self, program: str, member: str, at: datetime) -> int:
        """Points a debit could take now: unexpired by effective expiry (one read of the partition)."""
        state, lots = self._store.get_account_and_lots(program, member)
        return spendable(lots, at, self._programs.get(program).kept_until(state.active_at if state else None))

    # Internals shared by the operations

    def _claw_back(self, cmd: Reverse, entry_id: str, original: Entry, draft: _Draft, now: datetime) -> Change:
        points = original.delta(Account.AVAILABLE) + original.delta(Account.DEBT)  # a repaid debt was earned too
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
        postings = tuple(p for p in draft.postings if p.amount != 0)
        moved = {a: sum(p.amount for p in postings if p.account is a) for a in Account}
        balances = balances_after(
            state.available + moved[Account.AVAILABLE],
            state.pending + moved[Account.PENDING],
            state.held + moved[Account.HELD],
        )
        entry = Entry(
            program=cmd.program,
            entry_id=entry_id,
            member=cmd.member,
            kind=draft.kind,
            source=draft.source,
            external_id=draft.external_id,
            reason=draft.reason,
            config_version=config_version,
            postings=postings,
            lots=tuple(draft.lots),
            related=draft.related,
            event_time=draft.event_time,
            recorded_at=now,
            expires_at=draft.expires_at,
            details={**draft.details, **balances},
            fingerprint=cmd.fingerprint(),
            seq=state.seq + 1,
            prev_hash=state.head,
        ).sealed(self._chain_key())
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
            except CheckFailedError as failed:
                if failed.check.code == MemberOnHoldError.code:
                    raise MemberOnHoldError(failed.check.detail, member=cmd.member) from None
                raise
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


def _with_tallies(
    change: Change, tallies: Sequence[Tally], checks: Sequence[Check] = (), marks: Sequence[Mark] = ()
) -> Change:
    if not tallies and not checks and not marks:
        return change
    change = replace(change, tallies=tuple(tallies), checks=tuple(checks), marks=tuple(marks))
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
