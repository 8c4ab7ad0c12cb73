"""Pending earns: activated when their return window closes, held while a flag is open, settled by its decision."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from shared.earning.core import CATCH_UP_DAYS, Decision, HeldSettlement, IngestCore
from shared.earning.store import FollowUp
from shared.errors import (
    AccountClosedError,
    AlreadySettledError,
    UnknownEntryError,
)
from shared.ledger.commands import Activate, Cause, CauseKind, Transfer
from shared.ledger.contract import CheckFailedError
from shared.members.records import FLAG_OPEN, FLAG_VOIDED

# A program whose activation was never walked is walked from its first publication, at most this far back.
OLDEST_CATCH_UP = timedelta(days=366)

if TYPE_CHECKING:
    from shared.ledger.models import PendingEarn
    from shared.program.config import ProgramConfig


class HeldEarns(IngestCore):
    def activate_due(self, program: str, now: datetime | None = None) -> list[str]:
        """Activate every pending earn whose return window has closed by `now`; safe to re-run.

        Earns held for a flagged member wait while the flag is open; once an operator decided it,
        they activate (released) or are voided (fraud confirmed) here, if the decision itself did
        not already settle them.
        """
        now = now or self._clock()
        config = self._programs.get(program)
        activated: list[str] = []
        flags: dict[str, str] = {}
        today = now.astimezone(UTC).date()
        saved = self._saved_day(program, today)
        look_back = today - timedelta(days=CATCH_UP_DAYS)
        day = min(look_back, saved) if saved else look_back
        while day <= today:
            acted = self._activate_day(config, day.isoformat(), now, flags, activated)
            day += timedelta(days=1)
            if acted and day <= look_back:
                # Catching up beyond the look-back: a run that fails later starts after this day.
                self._items.save_activated_through(program, datetime.combine(day, time(), UTC))
        if saved != today:  # once a day is enough: the next run walks the look-back again
            self._items.save_activated_through(program, now)
        return activated

    def _saved_day(self, program: str, today: date) -> date | None:
        """The day the walk's saved progress reached (or, never walked, the program's first day).

        Each run walks the last `CATCH_UP_DAYS` days again (an earn that arrived late, a flag decided
        since, a run that stopped after an activation); an outage longer than that is caught up from
        the saved progress, and a program never walked from its first publication (up to a year back).
        """
        through = self._items.activated_through(program)
        if through is None:
            since = self._programs.since(program)
            if since is None:
                return None
            through = max(since, datetime.combine(today - OLDEST_CATCH_UP, time(), UTC))
        return through.astimezone(UTC).date()

    def _activate_day(
        self, config: ProgramConfig, day: str, now: datetime, flags: dict[str, str], activated: list[str]
    ) -> bool:
        """Activate (or void, or leave held) what the index holds for `day` up to `now`; False: nothing was due."""
        program = config.program
        found = self._items.due_pending(program, day, now)
        for due in found:
            if isinstance(due, FollowUp):
                self._follow_up(config, due.order_entry_id)  # a run that stopped after settling it
                continue
            pending = due
            if pending.held_for:
                if pending.held_for not in flags:
                    flags[pending.held_for] = self._members.flag_status(program, pending.held_for)
                if flags[pending.held_for] == FLAG_OPEN:
                    continue
                if flags[pending.held_for] == FLAG_VOIDED:
                    self._void_held(config, pending, "fraud confirmed after review")
                    continue
            if self._activate(program, pending, now, "return window closed"):
                activated.append(pending.entry_id)
        return bool(found)

    def _activate(self, program: str, pending: PendingEarn, now: datetime, reason: str) -> bool:
        """Activate, then apply the refunds that waited for it: two steps, safe to stop between.

        The activation carries a check that no refund waits on the order. If one does, it is posted
        instead with a follow-up mark on the refunds' list (same transaction), which keeps the list
        in this job's index until the refunds are applied: a run that stops right after the
        activation leaves the refunds for the next run, never lost. A refund parked after the
        activation committed finds the activation itself.
        """
        cmd = Activate(program=program, member=pending.member, entry_id=pending.entry_id, reason=reason[:300])
        marked = False
        try:
            try:
                self._ledger.activate(cmd, at=now, checks=[self._items.no_refund_waiting(program, pending.entry_id)])
            except CheckFailedError:
                mark = self._items.follow_up(program, pending.entry_id, pending.member, now)
                self._ledger.activate(cmd, at=now, marks=[mark])
                marked = True
            done = True
        except (AlreadySettledError, UnknownEntryError, AccountClosedError):
            done = False  # settled meanwhile, or moved by a merge: the next run finds it with its holder
        if marked:
            self._follow_up(self._programs.get(program), pending.entry_id)
        survivor = self._follow(pending.member)
        if survivor != pending.member:
            # Activated in the instant between a merge's pointer and its transfer: move the points along
            # (whichever of this and the merge's own transfer comes second finds nothing left to move).
            self._ledger.transfer(
                Transfer(
                    program=program,
                    member=pending.member,
                    to_member=survivor,
                    external_id=f"merge:{pending.member}:{survivor}:{pending.entry_id}",
                    reason="points activated after merge",
                ),
                at=now,
            )
        return done

    def _void_held(self, config: ProgramConfig, pending: PendingEarn, reason: str) -> bool:
        """Void an earn a flag held, because an operator confirmed the fraud (the flag's decision)."""
        earned = self._entries.get_entry(config.program, pending.entry_id)
        cause = Cause(kind=CauseKind.FLAG, ref=f"{pending.held_for}:{FLAG_VOIDED}")
        return earned is not None and self._void(config, pending.member, earned, reason, cause)

    def settle_held(
        self, program: str, member: str, decision: Decision, note: str, at: datetime | None = None
    ) -> HeldSettlement:
        """Apply an operator's decision on a member's flag to the earns it held (record the decision first).

        `release`: each held earn activates now, or stays pending until its return window closes
        (the activation job then activates it). `void`: each held earn is voided (fraud confirmed).
        Idempotent: settling twice finds nothing more to do.
        """
        now = at or self._clock()
        config = self._programs.get(program)
        result = HeldSettlement()
        holders = dict.fromkeys([member, self._follow(member)])  # the earns follow a merge
        for holder in holders:
            for pending in self._entries.get_pending_earns(program, holder):
                if pending.held_for != member:
                    continue
                if decision == "void":
                    if self._void_held(config, pending, f"voided after review: {note}"):
                        result.voided.append(pending.entry_id)
                elif pending.until is None or pending.until <= now:
                    if self._activate(program, pending, now, f"released after review: {note}"):
                        result.released.append(pending.entry_id)
                else:
                    result.still_pending.append(pending.entry_id)
        return result
