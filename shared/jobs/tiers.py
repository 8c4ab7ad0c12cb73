"""The scheduled tier review: members whose qualification period (plus grace) ended are re-qualified or moved down."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from dateutil.relativedelta import relativedelta

from shared.infra import keys
from shared.infra.codec import ts
from shared.jobs.walk import DayWalk, JobContext, JobReport, wall_clock

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.jobs.store import DueItem, JobItems
    from shared.jobs.walk import JobInput
    from shared.ledger.ledger import Ledger
    from shared.members.tiers import TierMove, Tiers
    from shared.program.store import ProgramRepository


class TierReviewJob(JobContext):
    """Walk the tier index (GSI1 `T#<program>#<review day>`) up to now; review each member met."""

    def __init__(
        self,
        ledger: Ledger,
        programs: ProgramRepository,
        jobs: JobItems,
        tiers: Tiers,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        super().__init__(ledger, programs, jobs, clock)
        self._tiers = tiers

    def run(self, request: JobInput) -> list[JobReport]:
        now = self.moment(request)
        budget = request.page_budget or 200
        reports = []
        for program in self.program_ids(request.program):
            report = JobReport(job="tiers", program=program, now=ts(now))
            moves: list[TierMove] = []

            def handle(items: list[DueItem], program: str = program, moves: list[TierMove] = moves) -> None:
                for item in items:
                    if item.kind == "tier":
                        move = self._tiers.review(program, item.member, now)
                        if move is not None:
                            moves.append(move)

            # Nobody's period can end before one full window after the program started.
            window = relativedelta(months=self.config(program).tier_qualification.window_months)
            first_due = self.start(program) + window
            walk = DayWalk(
                self.jobs, "tiers", program, partial(keys.tier_index_pks, program), first_due, self.page_size
            )
            result = walk.run(now, budget, handle)
            report.pages, report.items_read, report.finished = result.pages, result.items, result.finished
            report.details["moves"] = [f"{m.member}: {m.from_tier} -> {m.to_tier}" for m in moves]
            reports.append(report)
        return reports
