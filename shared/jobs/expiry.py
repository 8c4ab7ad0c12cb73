"""Scheduled expiry, expiry reminders and the end of a program (sunset).

The jobs read only what is due: lots carry GSI1PK `X#<program>#<day>` (the UTC day of their due
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

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from shared.errors import (
    InvalidInputError,
    NotDueError,
    StaleRunError,
    SunsetError,
    UnknownEntryError,
    UnknownProgramError,
)
from shared.ledger.commands import ExpireLot
from shared.ledger.models import Account
from shared.ledger.store import JOB_PAGE_SIZE, expiry_index_pk, parse_ts, ts
from shared.program.config import NEVER, ExpiryKind, ExpiryPolicy, ProgramConfig, Sunset, end_of_local_day

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import tzinfo

    from shared.ledger.ledger import Ledger
    from shared.ledger.store import JobStore, ProgramRepository

DEFAULT_PAGE_BUDGET = 200
REMINDER_LEASE_SECONDS = 900
MIN_NOTICE_DAYS = 30


class Notifier(Protocol):
    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        """Publish one member notice; raise if it was not accepted."""
        ...


class JobInput(BaseModel):
    """What a schedule sends: ScheduleV2's `scheduled_time`, or an operator's explicit `now`."""

    model_config = ConfigDict(extra="ignore")

    scheduled_time: AwareDatetime | None = None
    now: AwareDatetime | None = None
    program: str | None = None
    page_budget: int | None = None

    @property
    def at(self) -> datetime:
        moment = self.now or self.scheduled_time
        if moment is None:
            raise InvalidInputError("a job needs `now` or `scheduled_time`")
        # Keys hold whole seconds; a fraction would make a lot look due in the index but not in the ledger.
        return moment.astimezone(UTC).replace(microsecond=0)


def parse_job_input(event: dict[str, Any]) -> JobInput:
    try:
        return JobInput.model_validate(event)
    except ValidationError as exc:
        raise InvalidInputError(f"bad job input: {exc.errors()[0]['msg']}") from exc


@dataclass
class WalkResult:
    finished: bool = False
    pages: int = 0
    items: int = 0
    yielded: bool = False  # a concurrent run had already gone further


class DayWalk:
    """Reads index partitions `<prefix>#<day>` in order up to a target time, with saved progress."""

    def __init__(
        self,
        jobs: JobStore,
        job: str,
        program: str,
        index_pk: Callable[[str], str],
        start: datetime,
        page_size: int = JOB_PAGE_SIZE,
    ):
        self._jobs, self._job, self._program, self._index_pk, self._start = jobs, job, program, index_pk, start
        self._page_size = page_size

    def check(self, target: datetime) -> None:
        """Refuse a target earlier than what was already processed (or is being processed)."""
        progress = self._jobs.get_progress(self._job, self._program)
        if progress:
            floor = max(progress["through"], progress.get("target") or progress["through"])
            if ts(target) < floor:
                raise StaleRunError(
                    f"{self._job} for {self._program} already processed up to {floor}; refusing {ts(target)}",
                    processed=floor,
                )

    def run(self, target: datetime, budget: int, handle: Callable[[list[dict[str, Any]]], None]) -> WalkResult:
        self.check(target)
        result = WalkResult()
        progress = self._jobs.get_progress(self._job, self._program) or {}
        rev = int(progress.get("rev", 0))
        through = parse_ts(progress["through"]) if progress else self._start
        if progress.get("cursor_day"):
            day = date.fromisoformat(progress["cursor_day"])
            key: dict[str, Any] | None = json.loads(progress["cursor_key"]) if progress.get("cursor_key") else None
        else:
            day, key = through.date(), None
        end_day = target.date()
        # Sort keys start with the expiry timestamp: `<ts>#...` < `<ts>$` takes everything due at `ts`.
        last_bound = ts(target) + "$"
        while day <= end_day:
            if result.pages >= budget:
                self._save(
                    rev,
                    result,
                    {
                        "through": ts(through),
                        "target": ts(target),
                        "cursor_day": day.isoformat(),
                        "cursor_key": json.dumps(key) if key else "",
                    },
                )
                return result
            items, key = self._jobs.due_page(
                self._index_pk(day.isoformat()), last_bound if day == end_day else None, key, self._page_size
            )
            result.pages += 1
            result.items += len(items)
            handle(items)
            if key is None and day >= end_day:
                # The level is reached: everything due up to the target has been read and handled.
                state = {"through": ts(target), "target": ts(target), "cursor_day": "", "cursor_key": ""}
                self._save(rev, result, state, target)
                result.finished = True
                return result
            if key is None:
                day += timedelta(days=1)
            state = {
                "through": ts(through),
                "target": ts(target),
                "cursor_day": day.isoformat(),
                "cursor_key": json.dumps(key) if key else "",
            }
            rev = self._save(rev, result, state, target)
            if result.yielded:
                return result
        if result.pages == 0:
            self._save(rev, result, {"through": ts(target), "target": ts(target), "cursor_day": "", "cursor_key": ""})
        result.finished = not result.yielded
        return result

    def _save(self, rev: int, result: WalkResult, state: dict[str, Any], target: datetime | None = None) -> int:
        """Save, or on a lost race adopt the other run's revision; stop if it already finished our target."""
        while not self._jobs.save_progress(self._job, self._program, state, rev):
            other = self._jobs.get_progress(self._job, self._program) or {}
            rev = int(other.get("rev", 0))
            if target is not None and other.get("through", "") >= ts(target):
                result.yielded = True
                result.finished = True
                return rev
        return rev + 1


@dataclass
class JobReport:
    """What one run of a job did for one program: returned by handlers and logged."""

    job: str
    program: str
    now: str
    finished: bool = True
    pages: int = 0
    items_read: int = 0
    lots_expired: int = 0
    points_expired: int = 0
    lots_gone: int = 0  # spent or expired by someone else before we got to them
    lots_extended: int = 0  # kept alive by the member's activity: moved to their new date in the index
    notices_sent: int = 0
    notices_skipped: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class _Context:
    page_size = JOB_PAGE_SIZE

    def __init__(self, ledger: Ledger, programs: ProgramRepository, jobs: JobStore) -> None:
        self.ledger, self.programs, self.jobs = ledger, programs, jobs
        # When each program was first published: it never changes, so it is read once per instance
        # (a warm container), not on every use; a program not found yet is asked again next time.
        self._since: dict[str, datetime] = {}

    def _program_since(self, program: str) -> datetime | None:
        if program not in self._since:
            since = self.jobs.program_since(program)
            if since is None:
                return None
            self._since[program] = since
        return self._since[program]

    def config(self, program: str) -> ProgramConfig:
        if self._program_since(program) is None:
            raise UnknownProgramError(f"no program {program!r}", program=program)
        return self.programs.get(program)

    def start(self, program: str) -> datetime:
        since = self._program_since(program)
        assert since is not None
        return since

    def program_ids(self, only: str | None) -> list[str]:
        if only is not None:
            self.config(only)
            return [only]
        return sorted(self.jobs.live_programs())


# --- Expiry -----------------------------------------------------------------------------------


class ExpiryJob(_Context):
    """Expire the unspent remainder of every lot due up to `now`, in every live program."""

    def run(self, request: JobInput) -> list[JobReport]:
        now = request.at
        budget = request.page_budget or DEFAULT_PAGE_BUDGET
        programs = self.program_ids(request.program)
        walks = [self._walk(program) for program in programs]
        for walk in walks:  # refuse before writing anything, for any program
            walk.check(now)
        return [self.run_program(program, now, budget) for program in programs]

    def _walk(self, program: str, job: str = "expiry") -> DayWalk:
        return DayWalk(self.jobs, job, program, partial(expiry_index_pk, program), self.start(program), self.page_size)

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
    ) -> Callable[[list[dict[str, Any]]], None]:
        def handle(items: list[dict[str, Any]]) -> None:
            for item in items:
                if item.get("type") != "lot":
                    continue
                cmd = ExpireLot(
                    program=program, member=item["member"], lot_id=item["lot_id"], program_ended_at=ended_at
                )
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
        handle: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        """After the end date, every remaining lot expires ("program ended"), whatever its own date."""
        assert config.sunset is not None
        horizon = lots_horizon(config)
        start = config.sunset.ends_at
        walk = DayWalk(self.jobs, "sunset", program, partial(expiry_index_pk, program), start, self.page_size)
        progress = self.jobs.get_progress("sunset", program)
        if not (progress and progress["through"] >= ts(horizon)):
            result = walk.run(horizon, max(budget, 1), handle)
            report.pages += result.pages
            report.items_read += result.items
            report.finished = result.finished
            budget -= result.pages
            if not result.finished:
                return
        # Lots that never expire sit in the last partition the key format allows.
        never = DayWalk(self.jobs, "sunset-never", program, partial(expiry_index_pk, program), NEVER, self.page_size)
        progress = self.jobs.get_progress("sunset-never", program)
        if not (progress and progress["through"] >= ts(NEVER)):
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


# --- Reminders --------------------------------------------------------------------------------


class ReminderJob(_Context):
    """One notice per member per expiry date, `reminder_days` before, never sent twice.

    Dates are effective expiry dates (kept later by the member's activity where the program says
    so), as local dates of the program's time zone. The marker `REM#<program>#<member>#<date>` is
    claimed (conditional put) before publishing and marked sent after. A crash between publishing
    and marking leaves a claim that a run after the lease may retake: delivery is at-least-once in
    that one window, at-most-once otherwise, and every notice carries the stable id
    `reminder:<program>:<member>:<date>` so a consumer can drop the rare duplicate.
    """

    def __init__(self, ledger: Ledger, programs: ProgramRepository, jobs: JobStore, notifier: Notifier) -> None:
        super().__init__(ledger, programs, jobs)
        self._notifier = notifier

    def run(self, request: JobInput) -> list[JobReport]:
        now = request.at
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
                    partial(expiry_index_pk, program),
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
    ) -> Callable[[list[dict[str, Any]]], None]:
        def handle(items: list[dict[str, Any]]) -> None:
            by_member: dict[str, list[dict[str, Any]]] = {}
            for item in items:
                if item.get("type") == "lot":
                    by_member.setdefault(item["member"], []).append(item)
            for member, due in by_member.items():
                self._remind_member(program, config, member, due, now, target, report)

        return handle

    def _remind_member(
        self,
        program: str,
        config: ProgramConfig,
        member: str,
        due: list[dict[str, Any]],
        now: datetime,
        target: datetime,
        report: JobReport,
    ) -> None:
        """Notices for the dates this member's lots met in the index expire on, effective and local."""
        # One read: the balance (its last activity may keep the points) and every lot that can fall
        # on a date inside the window, so a date's notice has the whole amount across index pages.
        window_end = end_of_local_day(target.astimezone(config.tz).date(), config.tz)
        state, lots = self.jobs.member_lots_until(program, member, window_end)
        kept = config.kept_until(state.active_at) if state else None
        by_id = {lot.lot_id: lot for lot in lots}
        days: set[str] = set()
        for item in due:
            lot = by_id.get(item["lot_id"])
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
        for lot in lots:
            if lot.expires(kept) > now:
                amounts[_local_day(lot.expires(kept), config.tz)] += lot.remaining
        for day in sorted(days):
            self._notify(program, member, day, day, now, report, "PointsExpiring", partial(amounts.__getitem__, day))

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
    ) -> None:
        if not self.jobs.claim_reminder(program, member, marker, now, REMINDER_LEASE_SECONDS):
            report.notices_skipped += 1
            return
        points = amount()
        detail = {"program": program, "member": member, "points": points, "date": day}
        self._notifier.publish(kind, f"reminder:{program}:{member}:{marker}", detail)
        self.jobs.reminder_sent(program, member, marker, points, now)
        report.notices_sent += 1

    def _tell_sunset(
        self, program: str, config: ProgramConfig, sunset: Sunset, now: datetime, budget: int, report: JobReport
    ) -> None:
        """Tell every member who holds points that the program ends: walk all their lots once."""
        day = _local_day(sunset.ends_at, config.tz)

        def holding(member: str) -> int:
            state, lots = self.jobs.member_lots_until(program, member, NEVER)
            kept = config.kept_until(state.active_at) if state else None
            return sum(lot.remaining for lot in lots if not lot.expired(now, kept))

        def handle(items: list[dict[str, Any]]) -> None:
            for member in sorted({i["member"] for i in items if i.get("type") == "lot"}):
                self._notify(program, member, f"END-{day}", day, now, report, "ProgramEnding", partial(holding, member))

        for job, start, target in (
            ("sunset-notice", now, lots_horizon(config)),
            ("sunset-notice-never", NEVER, NEVER),
        ):
            walk = DayWalk(self.jobs, job, program, partial(expiry_index_pk, program), start, self.page_size)
            progress = self.jobs.get_progress(job, program)
            if progress and progress["through"] >= ts(target):
                continue
            result = walk.run(target, budget, handle)
            report.pages += result.pages
            if not result.finished:
                report.finished = False
                return


def _local_day(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).date().isoformat()


# --- Sunset -----------------------------------------------------------------------------------


def announce_sunset(
    programs: ProgramRepository, program: str, at: datetime, notice_days: int, redemption_days: int
) -> ProgramConfig:
    """Announce the end of a program: earning stops after the notice, redemption a while later."""
    if notice_days < MIN_NOTICE_DAYS:
        raise SunsetError(f"members need at least {MIN_NOTICE_DAYS} days' notice, not {notice_days}")
    if redemption_days < 0:
        raise SunsetError("redemption cannot close before earning does")
    config = programs.get(program)
    if config.sunset is not None:
        raise SunsetError(f"{program} already ends on {config.sunset.ends_at.date().isoformat()}")
    earning_ends = at + timedelta(days=notice_days)
    sunset = Sunset(
        announced_at=at, earning_ends_at=earning_ends, ends_at=earning_ends + timedelta(days=redemption_days)
    )
    return programs.publish(config.model_copy(update={"version": config.version + 1, "sunset": sunset}))


def earning_open(config: ProgramConfig, at: datetime) -> bool:
    """Whether the ingest path may still credit points in this program at `at`."""
    return config.sunset is None or at < config.sunset.earning_ends_at


def redemption_open(config: ProgramConfig, at: datetime) -> bool:
    return config.sunset is None or at < config.sunset.ends_at


def validate_policy_for(policy: ExpiryPolicy, earned_at: datetime, tz: tzinfo = UTC) -> datetime:
    """The expiry a policy gives an earn, refused when it is not after the earn."""
    expires = policy.expires_at(earned_at, tz)
    if expires <= earned_at:
        raise InvalidInputError(f"policy {policy.kind} makes points earned {ts(earned_at)} expire at {ts(expires)}")
    return expires
