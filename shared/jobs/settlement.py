"""The daily partner settlement statements: every complete day's lines of every live program, written to S3.

A day is complete once it has ended (the schedule fires at 00:45 UTC, after the day's entries are
recorded). Progress `JOB#settlement#<program>` says up to which day statements are written
(`through` = midnight after the last written day), so a run writes every complete day since then,
oldest first, saving its progress after each: a job that was down for days writes each missed day
at its next run (at most `page_budget` days per run, default `DAY_BUDGET`; the next run goes on).
A program's first run starts on the day it was first published.

A statement is rewritten on a rerun (same keys, the bucket is versioned), so a retried or
overlapping run is harmless, and `{"day": "YYYY-MM-DD"}` rewrites one complete day on purpose (lines
replayed late, e.g. by a stream redrive) without moving the progress.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from shared.errors import InvalidInputError
from shared.exchange.settlement import statement
from shared.infra.codec import parse_ts, ts
from shared.jobs.store import Progress
from shared.jobs.walk import JobContext, JobReport, wall_clock

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.exchange.store import ExchangeItems
    from shared.jobs.store import JobItems, StatementFiles
    from shared.jobs.walk import JobInput
    from shared.ledger.ledger import Ledger
    from shared.program.store import ProgramRepository

JOB = "settlement"
# Days written by one run at most: a quarter's outage is caught up in one run; a longer one over
# the next daily runs (or an operator's runs, which resume where the last stopped).
DAY_BUDGET = 92


def statement_keys(program: str, day: date) -> tuple[str, str]:
    base = f"statements/{program}/{day.isoformat()}/settlement"
    return f"{base}.json", f"{base}.csv"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


class SettlementJob(JobContext):
    """Each complete day's statement for every live program, written to S3 (rewritten on rerun)."""

    def __init__(
        self,
        ledger: Ledger,
        programs: ProgramRepository,
        jobs: JobItems,
        items: ExchangeItems,
        files: StatementFiles,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        super().__init__(ledger, programs, jobs, clock)
        self._items, self._files = items, files

    def run(self, request: JobInput) -> list[JobReport]:
        now = self.moment(request)
        # The day before the run is the latest complete one: entries are recorded before the schedule fires.
        last_day = (now - timedelta(days=1)).date()
        programs = self.program_ids(request.program)
        if request.day is not None:
            if request.day > last_day:
                raise InvalidInputError(f"day {request.day} is not complete at {ts(now)}", day=request.day.isoformat())
            return [self._rewrite(program, request.day, now) for program in programs]
        budget = request.page_budget or DAY_BUDGET
        return [self._catch_up(program, last_day, now, budget) for program in programs]

    def _rewrite(self, program: str, day: date, now: datetime) -> JobReport:
        report = JobReport(job=JOB, program=program, now=ts(now))
        report.details = {"days": [self._write(program, day)], "rewrite": True}
        return report

    def _catch_up(self, program: str, last_day: date, now: datetime, budget: int) -> JobReport:
        report = JobReport(job=JOB, program=program, now=ts(now))
        progress = self.jobs.get_progress(JOB, program)
        rev = progress.rev if progress else 0
        day = parse_ts(progress.through).date() if progress else self.start(program).date()
        written: list[dict[str, object]] = []
        while day <= last_day and len(written) < budget:
            written.append(self._write(program, day))
            day += timedelta(days=1)
            rev, day = self._save(program, rev, day)
        report.finished = day > last_day
        report.details = {"days": written}
        return report

    def _write(self, program: str, day: date) -> dict[str, object]:
        result = statement(self._items, program, day)
        json_key, csv_key = statement_keys(program, day)
        self._files.put(json_key, result.model_dump_json(indent=2), "application/json")
        self._files.put(csv_key, result.to_csv(), "text/csv")
        return {"day": day.isoformat(), "partners": len(result.positions), "keys": [json_key, csv_key]}

    def _save(self, program: str, rev: int, next_day: date) -> tuple[int, date]:
        """Record that every day before `next_day` is written; a run that lost the race continues after the other."""
        mark = ts(_midnight(next_day))
        state = Progress(through=mark, target=mark)
        while not self.jobs.save_progress(JOB, program, replace(state, rev=rev)):
            other = self.jobs.get_progress(JOB, program)
            rev = other.rev if other else 0
            if other is not None and other.through >= mark:
                return rev, parse_ts(other.through).date()  # another run is ahead: go on from its day
        return rev + 1, next_day
