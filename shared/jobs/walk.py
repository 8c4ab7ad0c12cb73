"""What every scheduled job shares: its input, its report, and the walk of the due-date index.

A `DayWalk` reads index partitions `<prefix>#<day>[#<shard>]` (GSI1) in order up to a target time
(a day's shards one after the other, `shared.infra.keys.INDEX_DAY_SHARDS`), a page at a time, and
records its position in the job's progress item after every page. So a job:

- works by level: a run handles everything due up to its "now"; a skipped or failed run is caught
  up by the next one, which starts where the progress item says;
- is bounded: a page budget bounds one invocation (a page that found nothing counts as a share of
  its day, so a day of empty shards is one page); what is left is picked up by the next scheduled
  run, from the saved cursor;
- is resumable: a crash loses at most the page in flight (and the empty pages read since the last
  page with items, whose position is not written), which the next run reads again;
- refuses to go back: a target earlier than what was already processed is a stale run;
- refuses to run ahead: a "now" later than the wall clock (plus `FUTURE_MARGIN`) is refused unless
  the input says it is a simulation, since whatever a job does at a future time (an expiry, a
  release) cannot be taken back, and its progress would then refuse every run at the real time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, ConfigDict, ValidationError

from shared.errors import (
    FutureRunError,
    InvalidInputError,
    StaleRunError,
    UnknownProgramError,
)
from shared.infra.codec import parse_ts, ts
from shared.jobs.store import JOB_PAGE_SIZE, DueItem, JobItems, Progress
from shared.model import Model

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.ledger.ledger import Ledger
    from shared.program.config import ProgramConfig
    from shared.program.store import ProgramRepository


DEFAULT_PAGE_BUDGET = 200
# How far a job's "now" may be ahead of the wall clock: clock differences between the scheduler and
# the function, never time travel. It must stay below the late-lot margin (`shared.ledger.store.LATE_LOT_MARGIN`,
# 5 minutes): a lot written while a run walks is then always due after the run's "now".
FUTURE_MARGIN = timedelta(minutes=1)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class JobInput(Model):
    """What a schedule sends: ScheduleV2's `scheduled_time`, or an operator's explicit `now`."""

    model_config = ConfigDict(extra="ignore")

    scheduled_time: AwareDatetime | None = None
    now: AwareDatetime | None = None
    program: str | None = None
    page_budget: int | None = None
    # The caller moves time on purpose (the sandbox's `pointbridge run --simulate`, tests): a "now"
    # ahead of the wall clock is then taken as given. Its effects are as real as any run's.
    simulate: bool = False
    # Settlement only: rewrite the statement of this one (complete) day, leaving the progress alone.
    day: date | None = None

    @property
    def at(self) -> datetime:
        moment = self.now or self.scheduled_time
        if moment is None:
            raise InvalidInputError("a job needs `now` or `scheduled_time`")
        # Keys hold whole seconds; a fraction would make a lot look due in the index but not in the ledger.
        return moment.astimezone(UTC).replace(microsecond=0)

    def moment(self, wall: datetime) -> datetime:
        """The run's time, refused when it is ahead of the wall clock and this is not a simulation."""
        at = self.at
        if at > wall + FUTURE_MARGIN and not self.simulate:
            raise FutureRunError(
                f"now {ts(at)} is ahead of the clock ({ts(wall)}); a run in the future cannot be undone, "
                "so it needs `simulate: true` (pointbridge run --simulate)",
                now=ts(at),
                clock=ts(wall),
            )
        return at


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
    """Reads each day's index partitions (`index_pks(day)`, in order) up to a target time, with saved progress."""

    def __init__(
        self,
        jobs: JobItems,
        job: str,
        program: str,
        index_pks: Callable[[str], list[str]],
        start: datetime,
        page_size: int = JOB_PAGE_SIZE,
    ):
        self._jobs, self._job, self._program, self._index_pks, self._start = jobs, job, program, index_pks, start
        self._page_size = page_size

    def check(self, target: datetime) -> None:
        """Refuse a target earlier than what was already processed (or is being processed)."""
        progress = self._jobs.get_progress(self._job, self._program)
        if progress:
            floor = max(progress.through, progress.target)
            if ts(target) < floor:
                raise StaleRunError(
                    f"{self._job} for {self._program} already processed up to {floor}; refusing {ts(target)}",
                    processed=floor,
                )

    def run(self, target: datetime, budget: int, handle: Callable[[list[DueItem]], None]) -> WalkResult:
        self.check(target)
        result = WalkResult()
        progress = self._jobs.get_progress(self._job, self._program)
        rev = progress.rev if progress else 0
        through = parse_ts(progress.through) if progress else self._start
        if progress and progress.cursor_day:
            day, shard, key = date.fromisoformat(progress.cursor_day), progress.cursor_shard, progress.resume_key()
        else:
            day, shard, key = through.date(), 0, None
        end_day = target.date()
        # Sort keys start with the due timestamp: `<ts>#...` < `<ts>$` takes everything due at `ts`.
        last_bound = ts(target) + "$"
        done = Progress(through=ts(target), target=ts(target))
        spent = 0.0
        while day <= end_day:
            if spent >= budget:
                self._save(rev, result, self._cursor(through, target, day, shard, key))
                return result
            partitions = self._index_pks(day.isoformat())
            items, key = self._jobs.due_page(
                partitions[shard], last_bound if day == end_day else None, key, self._page_size
            )
            result.pages += 1
            result.items += len(items)
            # A page that found nothing costs a share of a day: a day of empty shards is one page
            # of the budget, as the day was before its key was sharded.
            spent += 1 if items or key is not None else 1 / len(partitions)
            if items:
                handle(items)
            if key is None:
                shard += 1
            if shard == len(partitions) and day >= end_day:
                # The level is reached: everything due up to the target has been read and handled.
                self._save(rev, result, done, target)
                result.finished = True
                return result
            if shard == len(partitions):
                day, shard = day + timedelta(days=1), 0
            if not items:
                # Nothing was handled, so a crash here loses only empty pages to read again: the
                # position is written with the next page that had work, or when the run stops (a day
                # of empty shards would otherwise cost 16 writes besides its 16 reads).
                continue
            rev = self._save(rev, result, self._cursor(through, target, day, shard, key), target)
            if result.yielded:
                return result
        if result.pages == 0:
            self._save(rev, result, done)
        result.finished = not result.yielded
        return result

    @staticmethod
    def _cursor(through: datetime, target: datetime, day: date, shard: int, key: dict[str, Any] | None) -> Progress:
        return Progress(
            through=ts(through),
            target=ts(target),
            cursor_day=day.isoformat(),
            cursor_key=json.dumps(key) if key else "",
            cursor_shard=shard,
        )

    def _save(self, rev: int, result: WalkResult, state: Progress, target: datetime | None = None) -> int:
        """Save, or on a lost race adopt the other run's revision; stop if it already finished our target."""
        while not self._jobs.save_progress(self._job, self._program, replace(state, rev=rev)):
            other = self._jobs.get_progress(self._job, self._program)
            rev = other.rev if other else 0
            if target is not None and other is not None and other.through >= ts(target):
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


class JobContext:
    """What a job needs to walk programs: the ledger, the live configs, and its own items."""

    page_size = JOB_PAGE_SIZE

    def __init__(
        self,
        ledger: Ledger,
        programs: ProgramRepository,
        jobs: JobItems,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self.ledger, self.programs, self.jobs, self.clock = ledger, programs, jobs, clock
        # When each program was first published: it never changes, so it is read once per instance
        # (a warm container), not on every use; a program not found yet is asked again next time.
        self._since: dict[str, datetime] = {}

    def moment(self, request: JobInput) -> datetime:
        """The run's time, checked against this job's clock (see `JobInput.moment`)."""
        return request.moment(self.clock())

    def _program_since(self, program: str) -> datetime | None:
        if program not in self._since:
            since = self.programs.since(program)
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
        return sorted(self.programs.live_programs())
