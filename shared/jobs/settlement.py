"""The daily partner settlement statements: yesterday's lines of every live program, written to S3.

Rewritten on a rerun (same keys), so a retried run is harmless.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from shared.exchange.settlement import statement
from shared.infra.codec import ts
from shared.jobs.walk import JobContext, JobReport

if TYPE_CHECKING:
    from shared.exchange.store import ExchangeItems
    from shared.jobs.store import JobItems, StatementFiles
    from shared.jobs.walk import JobInput
    from shared.ledger.ledger import Ledger
    from shared.program.store import ProgramRepository


def statement_keys(program: str, day: date) -> tuple[str, str]:
    base = f"statements/{program}/{day.isoformat()}/settlement"
    return f"{base}.json", f"{base}.csv"


class SettlementJob(JobContext):
    """Each day, yesterday's statement for every live program, written to S3 (rewritten on rerun)."""

    def __init__(
        self,
        ledger: Ledger,
        programs: ProgramRepository,
        jobs: JobItems,
        items: ExchangeItems,
        files: StatementFiles,
    ) -> None:
        super().__init__(ledger, programs, jobs)
        self._items, self._files = items, files

    def run(self, request: JobInput, day: date | None = None) -> list[JobReport]:
        now: datetime = request.at
        # The day before the run: complete, since entries are recorded before the schedule fires.
        day = day or (now - timedelta(days=1)).date()
        reports = []
        for program in self.program_ids(request.program):
            result = statement(self._items, program, day)
            json_key, csv_key = statement_keys(program, day)
            body = result.model_dump_json(indent=2)
            self._files.put(json_key, body, "application/json")
            self._files.put(csv_key, result.to_csv(), "text/csv")
            report = JobReport(job="settlement", program=program, now=ts(now))
            report.details = {"day": day.isoformat(), "partners": len(result.positions), "keys": [json_key, csv_key]}
            reports.append(report)
        return reports
