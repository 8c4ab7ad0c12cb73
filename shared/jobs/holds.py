"""Lapsed holds: a checkout hold (or an outbound transfer, or a held gift) nobody settled in time is released.

Holds carry GSI1PK `H#<program>#<lapse day>[#<shard>]` and GSI1SK `<lapse ts>#<member>#<hold id>`. A
`DayWalk` reads those day partitions of every program that ever had holds, from where the last run
stopped (progress `JOB#holds#<program>`) up to the run's time, so however long the job was down,
its next run releases every hold that lapsed meanwhile. Safe to re-run: a hold already captured or
released is gone from the index, and a release is idempotent.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from shared.errors import AlreadySettledError, UnknownEntryError
from shared.infra.codec import ts
from shared.infra.keys import hold_index_pks
from shared.jobs.walk import DEFAULT_PAGE_BUDGET, DayWalk, JobContext, JobReport
from shared.ledger.commands import Release
from shared.ledger.models import Hold

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.jobs.store import DueItem
    from shared.jobs.walk import JobInput

LAPSED = "checkout hold lapsed"
JOB = "holds"


class HoldLapseJob(JobContext):
    """Release every hold that lapsed by the run's time, in every program that has holds."""

    def run(self, request: JobInput) -> list[JobReport]:
        now = self.moment(request)
        budget = request.page_budget or DEFAULT_PAGE_BUDGET
        programs = [request.program] if request.program is not None else self.programs.with_holds()
        # A program registered for holds but never published has nothing to walk from (and no holds).
        programs = [program for program in programs if self._program_since(program) is not None]
        walks = {program: self._walk(program) for program in programs}
        for walk in walks.values():  # refuse before writing anything, for any program
            walk.check(now)
        reports = []
        for program, walk in walks.items():
            report = JobReport(job=JOB, program=program, now=ts(now))
            released: list[str] = []
            result = walk.run(now, budget, self._releaser(program, now, released))
            report.pages, report.items_read, report.finished = result.pages, result.items, result.finished
            report.details = {"released": len(released), "holds": released[:100]}
            reports.append(report)
        return reports

    def _walk(self, program: str) -> DayWalk:
        return DayWalk(self.jobs, JOB, program, partial(hold_index_pks, program), self.start(program), self.page_size)

    def _releaser(self, program: str, now: datetime, released: list[str]) -> Callable[[list[DueItem]], None]:
        def handle(items: list[DueItem]) -> None:
            for item in items:
                if item.kind != "hold":
                    continue
                hold = Hold.model_validate_json(item.body)
                if hold.lapses_at > now:
                    continue  # the walk's bound is the second; a hold is never released early
                try:
                    cmd = Release(program=program, member=hold.member, hold_id=hold.hold_id, reason=LAPSED)
                    self.ledger.release(cmd, at=now)
                except (AlreadySettledError, UnknownEntryError):
                    continue  # captured or released between the read and now
                released.append(hold.hold_id)

        return handle


def released_total(reports: list[JobReport]) -> int:
    return sum(int(report.details.get("released", 0)) for report in reports)
