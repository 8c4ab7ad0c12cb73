"""Moving points between member accounts: merges (transfer) and sends (gifts, exchanges)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from shared.errors import (
    InvalidInputError,
    TooManyLotsError,
)
from shared.ledger.contract import MAX_TRANSACTION_ITEMS, Change, ConcurrentUpdateError, Guard
from shared.ledger.core import LedgerCore, _carried_activity, _closed, _Draft, _restore
from shared.ledger.lots import spend_order, take_from_lots
from shared.ledger.models import (
    Account,
    AccountState,
    Entry,
    EntryKind,
    Hold,
    LotMove,
    Posting,
)
from shared.program.config import FlagHold

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from shared.ledger.commands import Send, Transfer


class Transfers(LedgerCore):
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
            if not (moving or waiting or holds or state.debt):
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
                    # What the member owes moves too: a merge is no way out of a debt.
                    Posting(account=Account.DEBT, amount=state.debt),
                    Posting(account=Account.TRANSFER, amount=total + moved - state.debt),
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
                    Posting(account=Account.TRANSFER, amount=-(total + moved - state.debt)),
                    Posting(account=Account.AVAILABLE, amount=total),
                    Posting(account=Account.PENDING, amount=state.pending),
                    Posting(account=Account.HELD, amount=state.held),
                    Posting(account=Account.DEBT, amount=-state.debt),
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
                details={
                    **cmd.details,
                    "from": f"{cmd.program}/{cmd.member}",
                    **({"held_until": cmd.hold_until.isoformat()} if cmd.hold_until is not None else {}),
                },
            )
            out = self._change(cmd, entry_id, state, debit, now, taken=taken)
            into = self._change(
                receiver, credit_id, self._store.get_account(cmd.to_program, cmd.to_member), credit, now
            )
            purpose = FlagHold.GIFTING if cmd.counter is Account.TRANSFER else FlagHold.EXCHANGING
            return Change(
                entries=out.entries + into.entries,
                accounts=out.accounts + into.accounts,
                lots_created=out.lots_created + into.lots_created,
                lots_updated=out.lots_updated,
                lots_deleted=out.lots_deleted,
                hold_created=hold,
                checks=self._held(cmd.program, cmd.member, purpose),
            )

        return self._post(cmd, entry_id, plan, at, guards=guards)
