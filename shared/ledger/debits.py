"""Debiting members: spends, checkout holds (authorise, capture, release) and expiry of lots."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from shared.errors import (
    AlreadySettledError,
    CaptureExceedsHoldError,
    InvalidInputError,
    NotDueError,
    UnknownEntryError,
)
from shared.ledger.commands import Cause, CauseKind
from shared.ledger.contract import Change, Guard
from shared.ledger.core import LedgerCore, _Draft, _restore, _slices
from shared.ledger.lots import take_from_lots
from shared.ledger.models import (
    Account,
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

    from shared.ledger.commands import Authorise, Capture, ExpireLot, Release, Spend


DEBIT_COUNTERS = frozenset({Account.REDEMPTION, Account.PARTNER, Account.TRANSFER, Account.GOODWILL})
# What a debit to each counter is, for what an open flag holds (`ProgramConfig.anomaly.flag_holds`).
_PURPOSES = {
    Account.REDEMPTION: FlagHold.SPENDING,
    Account.PARTNER: FlagHold.EXCHANGING,
    Account.TRANSFER: FlagHold.GIFTING,
    Account.GOODWILL: FlagHold.SPENDING,  # a support debit takes points as a spend would
}


class Debits(LedgerCore):
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
            change = self._change(cmd, entry_id, state, draft, now, taken=taken)
            return replace(change, checks=self._held(cmd.program, cmd.member, _PURPOSES[cmd.counter]))

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
                details={"lapses_at": cmd.lapses_at.isoformat(), **({"to_partner": "yes"} if cmd.to_partner else {})},
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
            purpose = FlagHold.EXCHANGING if cmd.to_partner else FlagHold.SPENDING
            return replace(change, hold_created=hold, checks=self._held(cmd.program, cmd.member, purpose))

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
                details=Cause(kind=CauseKind.LAPSE, ref=lot.lot_id).details(),
            )
            taken = [(lot, lot.remaining)]
            return self._change(cmd, entry_id, state, draft, now, taken=taken, lot_moves_done=True, allow_closed=True)

        return self._post(cmd, entry_id, plan, at)
