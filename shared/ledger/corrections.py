"""Taking points back with a linked entry: reversals and refund claw-backs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import (
    NotReversibleError,
    UnknownEntryError,
)
from shared.ledger.commands import Cause, CauseKind
from shared.ledger.core import LedgerCore, _Draft, _restore, _slices, _with_tallies
from shared.ledger.debits import DEBIT_COUNTERS
from shared.ledger.lots import spendable, take_from_lots
from shared.ledger.models import (
    Account,
    Entry,
    EntryKind,
    LotMove,
    Posting,
)
from shared.program.config import ShortfallPolicy

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from shared.ledger.commands import ClawBack, Reverse
    from shared.ledger.contract import Change, Tally


class Corrections(LedgerCore):
    def reverse(self, cmd: Reverse, at: datetime | None = None) -> Entry:
        entry_id = f"reversal:{cmd.entry_id}"

        def plan(now: datetime) -> Change:
            original = self._store.get_entry(cmd.program, cmd.entry_id)
            if original is None or original.member != cmd.member:
                raise UnknownEntryError(f"no entry {cmd.entry_id} for member {cmd.member}")
            draft = self._derived(EntryKind.REVERSAL, entry_id, cmd.reason, original, now)
            draft.details = cmd.cause.details()
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
            # The points may have been spent (or moved by a merge): take what is there; the rest is the
            # shortfall, written off or owed by the member as the program's policy says.
            taken_points = min(cmd.points, spendable(lots, now, kept))
            taken = take_from_lots(lots, taken_points, now, original.entry_id, kept) if taken_points else []
            shortfall = cmd.points - taken_points
            recover = config.refunds.shortfall is ShortfallPolicy.RECOVER
            postings = [Posting(account=Account.AVAILABLE, amount=-taken_points)]
            if recover:
                postings += [
                    Posting(account=Account.DEBT, amount=-shortfall),
                    Posting(account=counter.account, owner=counter.owner, amount=cmd.points),
                ]
            else:
                postings.append(Posting(account=counter.account, owner=counter.owner, amount=taken_points))
            details = {
                **cmd.details,
                "requested": str(cmd.points),
                "shortfall": str(shortfall),
                "shortfall_policy": config.refunds.shortfall.value,
                # The refund is its own cause: the claw-back's entry is keyed by the refund's id.
                **Cause(kind=CauseKind.REFUND, ref=entry_id).details(),
            }
            if shortfall:
                said = "owed, repaid from the next points earned" if recover else "written off"
                details["explanation"] = f"{details.get('explanation', '')}; {shortfall} already spent: {said}".lstrip(
                    "; "
                )
            draft = _Draft(
                kind=EntryKind.CLAWBACK,
                postings=postings,
                source=cmd.source,
                external_id=cmd.external_id,
                reason=cmd.reason,
                event_time=now,
                related=original.entry_id,
                details=details,
            )
            return _with_tallies(self._change(cmd, entry_id, state, draft, now, taken=taken), tallies)

        return self._post(cmd, entry_id, plan, at)
