"""Expiry reminders, and the notice that a program ends, to every member who holds points."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from shared.infra.codec import ts
from shared.infra.keys import expiry_index_pks
from shared.jobs.expiry import lots_horizon
from shared.jobs.walk import DEFAULT_PAGE_BUDGET, DayWalk, JobContext, JobInput, JobReport, wall_clock
from shared.ledger.models import EntryKind
from shared.ledger.statement import LANGUAGES, earn_named, expiring_notice
from shared.program.config import NEVER, ProgramConfig, Sunset, end_of_local_day

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import tzinfo

    from shared.jobs.notify import Notifier
    from shared.jobs.store import DueItem, JobItems
    from shared.ledger.ledger import Ledger
    from shared.program.store import ProgramRepository


REMINDER_LEASE_SECONDS = 900


class ReminderJob(JobContext):
    """One notice per member per expiry date, `reminder_days` before, never sent twice.

    Dates are effective expiry dates (kept later by the member's activity where the program says
    so), as local dates of the program's time zone. The marker `REM#<program>#<member>#<date>` is
    claimed (conditional put) before publishing and marked sent after. A crash between publishing
    and marking leaves a claim that a run after the lease may retake: delivery is at-least-once in
    that one window, at-most-once otherwise, and every notice carries the stable id
    `reminder:<program>:<member>:<date>` so a consumer can drop the rare duplicate.
    """

    def __init__(
        self,
        ledger: Ledger,
        programs: ProgramRepository,
        jobs: JobItems,
        notifier: Notifier,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        super().__init__(ledger, programs, jobs, clock)
        self._notifier = notifier

    def run(self, request: JobInput) -> list[JobReport]:
        now = self.moment(request)
        budget = request.page_budget or DEFAULT_PAGE_BUDGET
        reports = []
        for program in self.program_ids(request.program):
            config = self.config(program)
            report = JobReport(job="reminders", program=program, now=ts(now))
            if config.reminder_days:
                target = now + timedelta(days=config.reminder_days)
                walk = DayWalk(
                    self.jobs,
                    "reminders",
                    program,
                    partial(expiry_index_pks, program),
                    self.start(program),
                    self.page_size,
                )
                result = walk.run(target, budget, self._reminder(program, config, now, target, report))
                report.pages, report.items_read, report.finished = result.pages, result.items, result.finished
            if config.sunset is not None and config.sunset.announced_at <= now < config.sunset.ends_at:
                self._tell_sunset(program, config, config.sunset, now, budget, report)
            reports.append(report)
        return reports

    def _reminder(
        self, program: str, config: ProgramConfig, now: datetime, target: datetime, report: JobReport
    ) -> Callable[[list[DueItem]], None]:
        def handle(items: list[DueItem]) -> None:
            by_member: dict[str, list[DueItem]] = {}
            for item in items:
                if item.kind == "lot":
                    by_member.setdefault(item.member, []).append(item)
            for member, due in by_member.items():
                self._remind_member(program, config, member, due, now, target, report)

        return handle

    def _remind_member(
        self,
        program: str,
        config: ProgramConfig,
        member: str,
        due: list[DueItem],
        now: datetime,
        target: datetime,
        report: JobReport,
    ) -> None:
        """Notices for the dates this member's lots met in the index expire on, effective and local."""
        # One read: the balance (its last activity may keep the points) and every lot that can fall
        # on a date inside the window, so a date's notice has the whole amount across index pages.
        window_end = end_of_local_day(target.astimezone(config.tz).date(), config.tz)
        state, lots = self.ledger.account_and_lots(program, member, window_end)
        kept = config.kept_until(state.active_at) if state else None
        by_id = {lot.lot_id: lot for lot in lots}
        days: set[str] = set()
        for item in due:
            lot = by_id.get(item.lot_id)
            if lot is None:
                continue  # spent or expired since the index was read
            expires = lot.expires(kept)
            if expires <= now:
                continue  # already expired: the expiry job's business, too late for a notice
            if expires > target:
                # Kept alive beyond the window by activity: move it so this walk meets it again in time.
                if self.jobs.reindex_lot(item, expires):
                    report.lots_extended += 1
                continue
            days.add(_local_day(expires, config.tz))
        amounts: dict[str, int] = defaultdict(int)
        origins: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for lot in lots:
            if lot.expires(kept) > now:
                day = _local_day(lot.expires(kept), config.tz)
                amounts[day] += lot.remaining
                if lot.remaining:
                    origins[day][lot.origin] += lot.remaining
        for day in sorted(days):
            told = partial(self._expiring_words, program, day, origins[day])
            self._notify(
                program, member, day, day, now, report, "PointsExpiring", partial(amounts.__getitem__, day), told
            )

    def _expiring_words(self, program: str, day: str, origins: dict[str, int], points: int) -> dict[str, Any]:
        """The reminder in the statement's words: which earns expire, how many points, when (both languages)."""
        named = self.ledger.entries_named(program, list(origins))
        activated = [e.related for e in named.values() if e.kind is EntryKind.ACTIVATE and e.related]
        named |= self.ledger.entries_named(program, [i for i in activated if i not in named])
        earns = []
        for origin, count in sorted(origins.items(), key=lambda item: (-item[1], item[0])):
            words = {language: earn_named(origin, language, named) for language in LANGUAGES}
            if all(words.values()):
                earns.append((count, words))
        sentence = {
            language: expiring_notice(points, day, [(n, w[language]) for n, w in earns], language)
            for language in LANGUAGES
        }
        return {
            "earns": [{"points": n, "earned": w} for n, w in earns],
            "words": sentence,
        }

    def _notify(
        self,
        program: str,
        member: str,
        marker: str,
        day: str,
        now: datetime,
        report: JobReport,
        kind: str,
        amount: Callable[[], int],
        told: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        if not self.jobs.claim_reminder(program, member, marker, now, REMINDER_LEASE_SECONDS):
            report.notices_skipped += 1
            return
        points = amount()
        detail: dict[str, Any] = {"program": program, "member": member, "points": points, "date": day}
        if told is not None:
            detail |= told(points)
        self._notifier.publish(kind, f"reminder:{program}:{member}:{marker}", detail)
        self.jobs.reminder_sent(program, member, marker, points, now)
        report.notices_sent += 1

    def _tell_sunset(
        self, program: str, config: ProgramConfig, sunset: Sunset, now: datetime, budget: int, report: JobReport
    ) -> None:
        """Tell every member who holds points that the program ends: walk all their lots once."""
        day = _local_day(sunset.ends_at, config.tz)

        def holding(member: str) -> int:
            state, lots = self.ledger.account_and_lots(program, member, NEVER)
            kept = config.kept_until(state.active_at) if state else None
            return sum(lot.remaining for lot in lots if not lot.expired(now, kept))

        def handle(items: list[DueItem]) -> None:
            for member in sorted({i.member for i in items if i.kind == "lot"}):
                self._notify(program, member, f"END-{day}", day, now, report, "ProgramEnding", partial(holding, member))

        for job, start, target in (
            ("sunset-notice", now, lots_horizon(config)),
            ("sunset-notice-never", NEVER, NEVER),
        ):
            walk = DayWalk(self.jobs, job, program, partial(expiry_index_pks, program), start, self.page_size)
            progress = self.jobs.get_progress(job, program)
            if progress and progress.through >= ts(target):
                continue
            result = walk.run(target, budget, handle)
            report.pages += result.pages
            if not result.finished:
                report.finished = False
                return


def _local_day(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).date().isoformat()
