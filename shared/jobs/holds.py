"""Lapsed holds: a checkout hold (or an outbound transfer, or a held gift) nobody settled in time is released.

Reads the hold index (GSI1 `H#<program>#<day>`) of every program that ever had holds, for the days
up to the run's time: today and yesterday, so a run that straddles midnight or follows a missed
run still finds its holds. Safe to re-run: a hold already captured or released is gone from the
index, and a release is idempotent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from shared.errors import AlreadySettledError, UnknownEntryError
from shared.ledger.commands import Release

if TYPE_CHECKING:
    from datetime import datetime

    from shared.jobs.store import JobItems
    from shared.ledger.ledger import Ledger
    from shared.program.store import ProgramRepository

LOOKBACK_DAYS = 2
LAPSED = "checkout hold lapsed"


class HoldLapseJob:
    def __init__(self, ledger: Ledger, programs: ProgramRepository, jobs: JobItems) -> None:
        self._ledger, self._programs, self._jobs = ledger, programs, jobs

    def run(self, at: datetime) -> int:
        """Release every hold of every program that lapsed by `at`; returns how many were released."""
        released = 0
        for program in self._programs.with_holds():
            for back in range(LOOKBACK_DAYS):
                day = (at - timedelta(days=back)).strftime("%Y-%m-%d")
                for hold in self._jobs.due_holds(program, day, at):
                    if hold.lapses_at > at:
                        continue
                    try:
                        cmd = Release(program=program, member=hold.member, hold_id=hold.hold_id, reason=LAPSED)
                        self._ledger.release(cmd, at=at)
                    except (AlreadySettledError, UnknownEntryError):
                        continue  # captured or released between the read and now
                    released += 1
        return released
