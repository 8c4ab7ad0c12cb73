"""Crediting members: earns (available or pending), activating and voiding pending earns."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from shared.errors import (
    AlreadySettledError,
    InvalidInputError,
)
from shared.ledger.core import LedgerCore, _Draft, _with_tallies
from shared.ledger.models import (
    Account,
    Entry,
    EntryKind,
    LotMove,
    PendingEarn,
    Posting,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from shared.ledger.commands import Activate, Earn, Void
    from shared.ledger.contract import Change, Check, Guard, Mark, Snapshot, Tally


CREDIT_COUNTERS = frozenset({Account.ISSUANCE, Account.PARTNER, Account.TRANSFER, Account.GOODWILL})


class Credits(LedgerCore):
    def earn(
        self,
        cmd: Earn,
        at: datetime | None = None,
        tallies: Sequence[Tally] = (),
        checks: Sequence[Check] = (),
        snapshot: Snapshot | None = None,
        guards: Sequence[Guard] = (),
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
            repaid = 0 if cmd.pending or state is None else min(cmd.points, state.debt)
            draft = _Draft(
                kind=EntryKind.EARN_PENDING if cmd.pending else EntryKind.EARN,
                postings=[
                    Posting(account=cmd.counter, owner=cmd.counter_owner, amount=-cmd.points),
                    Posting(account=bucket, amount=cmd.points - repaid),
                    Posting(account=Account.DEBT, amount=repaid),
                ],
                source=cmd.source,
                external_id=cmd.external_id,
                reason=_repaying(cmd.reason, repaid),
                event_time=cmd.event_time,
                related=cmd.related,
                expires_at=expires_at,
                config_version=version,
                details=_with_repaid(dict(cmd.details), repaid),
            )
            if not cmd.pending and cmd.points > repaid:
                draft.lots.append(LotMove(lot_id=entry_id, expires_at=expires_at, amount=cmd.points - repaid))
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

        return self._post(cmd, entry_id, plan, at, guards=guards)

    def activate(
        self, cmd: Activate, at: datetime | None = None, checks: Sequence[Check] = (), marks: Sequence[Mark] = ()
    ) -> Entry:
        """Activate a pending earn on the account that holds it now (after a merge: the survivor's).

        `checks` and `marks` commit with it (a failed check is `CheckFailedError`, nothing written).
        """
        entry_id = f"settle:{cmd.entry_id}"

        def plan(now: datetime) -> Change:
            pending = self._open_pending(cmd)
            state = self._store.get_account(cmd.program, cmd.member)
            repaid = min(pending.points, state.debt) if state else 0
            kept = pending.points - repaid
            draft = _Draft(
                kind=EntryKind.ACTIVATE,
                postings=[
                    Posting(account=Account.PENDING, amount=-pending.points),
                    Posting(account=Account.AVAILABLE, amount=kept),
                    Posting(account=Account.DEBT, amount=repaid),
                ],
                source="ledger",
                external_id=entry_id,
                reason=_repaying(cmd.reason, repaid),
                event_time=now,
                related=cmd.entry_id,
                lots=[LotMove(lot_id=entry_id, expires_at=pending.expires_at, amount=kept)] if kept else [],
                details=_with_repaid({}, repaid),
            )
            change = replace(self._change(cmd, entry_id, state, draft, now), pending_deleted=(pending,))
            return _with_tallies(change, (), checks, marks)

        return self._post(cmd, entry_id, plan, at, on_conflict=AlreadySettledError)

    def void(
        self,
        cmd: Void,
        at: datetime | None = None,
        tallies: Sequence[Tally] = (),
        checks: Sequence[Check] = (),
        marks: Sequence[Mark] = (),
    ) -> Entry:
        """Cancel a pending earn on the account that holds it; the points go back where they came from."""
        entry_id = f"settle:{cmd.entry_id}"

        def plan(now: datetime) -> Change:
            pending = self._open_pending(cmd)
            earned = self._store.get_entry(cmd.program, cmd.entry_id)
            assert earned is not None
            counter = next(p for p in earned.postings if p.amount < 0)
            draft = self._derived(EntryKind.VOID, entry_id, cmd.reason, earned, now)
            draft.details = {**cmd.details, **cmd.cause.details()}
            draft.postings = [
                Posting(account=Account.PENDING, amount=-pending.points),
                Posting(account=counter.account, owner=counter.owner, amount=pending.points),
            ]
            state = self._store.get_account(cmd.program, cmd.member)
            change = replace(self._change(cmd, entry_id, state, draft, now), pending_deleted=(pending,))
            return _with_tallies(change, tallies, checks, marks)

        return self._post(cmd, entry_id, plan, at, on_conflict=AlreadySettledError)


def _repaying(reason: str, repaid: int) -> str:
    """A credit that repays a debt says so where the member reads it (the statement's line)."""
    return f"{reason} ({repaid} points repaid what was owed)"[:300] if repaid else reason


def _with_repaid(details: dict[str, str], repaid: int) -> dict[str, str]:
    return {**details, "debt_repaid": str(repaid)} if repaid else details
