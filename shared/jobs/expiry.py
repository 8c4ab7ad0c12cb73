"""Scheduled expiry, expiry reminders and the end of a program (sunset).

The jobs read only what is due: lots carry GSI1PK `X#<program>#<day>[#<shard>]` (the UTC day of their due
time) and GSI1SK `<due ts>#<member>#<lot id>`. A lot is due at its expiry, or just after it was
written if that is later (points restored after their date, back-dated earns: see
`shared.store.lot_due`), or, once a job found it kept alive by the member's activity, at its new
effective expiry (`JobStore.reindex_lot`). A `DayWalk` reads those day partitions from where the
last run stopped up to a target time, a page at a time, and records its position in the progress
item `JOB#<job>#<program>` after every page. So:

- by level: a run expires everything due up to its "now"; a skipped or failed run is caught up by
  the next one, which starts where the progress item says;
- a page budget bounds one invocation; what is left is picked up by the next scheduled run (the
  schedule runs every 15 minutes, see docs/jobs.md), from the saved cursor;
- resumable: a crash loses at most the page in flight, which the next run reads again;
- safe twice or twice at once: the ledger's entry id `expiry:<lot id>` makes a second expiry of
  a lot a replay that writes nothing; a lot gone meanwhile (spent, expired) counts as done.

TTL is never consulted: an expired lot is one whose effective expiry has passed, decided by the
ledger from the lot and the member's balance (its last activity), never from the index alone.
Dates members see (reminders, entry reasons) are local dates of the program's time zone; the
index's days are UTC days, which only decide which partition a lot sits in.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from shared.errors import (
    NotDueError,
    UnknownEntryError,
)
from shared.infra.codec import ts
from shared.infra.keys import expiry_index_pks
from shared.jobs.walk import DEFAULT_PAGE_BUDGET, DayWalk, JobContext, JobInput, JobReport
from shared.ledger.commands import ExpireLot
from shared.ledger.models import Account
from shared.program.config import NEVER, ExpiryKind, ProgramConfig

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.jobs.store import DueItem


class ExpiryJob(JobContext):
    """Expire the unspent remainder of every lot due up to `now`, in every live program."""

    def run(self, request: JobInput) -> list[JobReport]:
        now = self.moment(request)
        budget = request.page_budget or DEFAULT_PAGE_BUDGET
        programs = self.program_ids(request.program)
        walks = [self._walk(program) for program in programs]
        for walk in walks:  # refuse before writing anything, for any program
            walk.check(now)
        return [self.run_program(program, now, budget) for program in programs]

    def _walk(self, program: str, job: str = "expiry") -> DayWalk:
        return DayWalk(self.jobs, job, program, partial(expiry_index_pks, program), self.start(program), self.page_size)

    def run_program(self, program: str, now: datetime, budget: int) -> JobReport:
        config = self.config(program)
        report = JobReport(job="expiry", program=program, now=ts(now))
        ended_at = config.sunset.ends_at if config.sunset and config.sunset.ends_at <= now else None
        handle = self._expirer(program, now, report, ended_at)
        result = self._walk(program).run(now, budget, handle)
        report.pages, report.items_read, report.finished = result.pages, result.items, result.finished
        if ended_at is not None and result.finished:
            self._sunset(program, config, now, budget - result.pages, report, handle)
        return report

    def _expirer(
        self, program: str, now: datetime, report: JobReport, ended_at: datetime | None
    ) -> Callable[[list[DueItem]], None]:
        def handle(items: list[DueItem]) -> None:
            for item in items:
                if item.kind != "lot":
                    continue
                cmd = ExpireLot(program=program, member=item.member, lot_id=item.lot_id, program_ended_at=ended_at)
                try:
                    entry = self.ledger.expire_lot(cmd, at=now)
                except UnknownEntryError:
                    report.lots_gone += 1  # fully spent (or reversed) since the index was read
                    continue
                except NotDueError as kept:
                    # Kept alive by the member's activity: the walk meets the lot again on its new date.
                    if self.jobs.reindex_lot(item, kept.due):
                        report.lots_extended += 1
                    continue
                report.lots_expired += 1
                report.points_expired += entry.delta(Account.BREAKAGE)

        return handle

    def _sunset(
        self,
        program: str,
        config: ProgramConfig,
        now: datetime,
        budget: int,
        report: JobReport,
        handle: Callable[[list[DueItem]], None],
    ) -> None:
        """After the end date, every remaining lot expires ("program ended"), whatever its own date."""
        assert config.sunset is not None
        horizon = lots_horizon(config)
        start = config.sunset.ends_at
        walk = DayWalk(self.jobs, "sunset", program, partial(expiry_index_pks, program), start, self.page_size)
        progress = self.jobs.get_progress("sunset", program)
        if not (progress and progress.through >= ts(horizon)):
            result = walk.run(horizon, max(budget, 1), handle)
            report.pages += result.pages
            report.items_read += result.items
            report.finished = result.finished
            budget -= result.pages
            if not result.finished:
                return
        # Lots that never expire sit in the last partition the key format allows.
        never = DayWalk(self.jobs, "sunset-never", program, partial(expiry_index_pks, program), NEVER, self.page_size)
        progress = self.jobs.get_progress("sunset-never", program)
        if not (progress and progress.through >= ts(NEVER)):
            result = never.run(NEVER, max(budget, 1), handle)
            report.pages += result.pages
            report.items_read += result.items
            report.finished = result.finished
        report.details["program_ended"] = ts(config.sunset.ends_at)


def lots_horizon(config: ProgramConfig) -> datetime:
    """The latest expiry a lot earned before earning stopped can have under the program's policies."""
    assert config.sunset is not None
    last_earn = config.sunset.earning_ends_at
    latest = config.sunset.ends_at
    for policy in [config.expiry, *(t.expiry for t in config.tiers if t.expiry is not None)]:
        if policy.kind is not ExpiryKind.NONE:
            latest = max(latest, policy.expires_at(last_earn, config.tz))
    # Redeeming stays open until the end, and counts as activity.
    return max(latest, config.kept_until(config.sunset.ends_at) or latest)
