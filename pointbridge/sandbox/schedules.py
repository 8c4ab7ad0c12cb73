"""EventBridge Scheduler (`ScheduleV2`) and EventBridge rule (`Schedule`) events on a local clock."""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pointbridge.sandbox.runtime import InvocationError
from pointbridge.sandbox.template import ACCOUNT_ID

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("pointbridge.sandbox")

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class ScheduleSpec:
    function: str  # logical id
    event_id: str
    kind: str  # "ScheduleV2" or "Schedule"
    name: str
    arn: str
    expression: str
    timezone: str
    input: str | None
    enabled: bool


def _aws_dow_to_cron(field: str) -> str:
    # AWS numbers days 1-7 from Sunday, croniter 0-6; the number after '#' is a week, not a day.
    def shift(match: re.Match[str]) -> str:
        return str(int(match.group(0)) - 1)

    day, sep, week = field.partition("#")
    return re.sub(r"\d+", shift, day) + sep + week


def aws_cron_to_croniter(expression: str) -> tuple[str, str]:
    """`min hour dom month dow year` (AWS, with `?`) -> (5-field croniter expression, year field)."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(f"AWS cron needs 6 fields: {expression!r}")
    minute, hour, dom, month, dow, year = fields
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else _aws_dow_to_cron(dow)
    return f"{minute} {hour} {dom} {month} {dow}", year


def _year_matches(year_field: str, year: int) -> bool:
    if year_field in ("*", "?"):
        return True
    for part in year_field.split(","):
        low, _, high = part.partition("-")
        if int(low) <= year <= int(high or low):
            return True
    return False


def next_fire(expression: str, timezone: str, after: datetime) -> datetime | None:
    """The first time strictly after `after` (aware) that the expression fires, in UTC."""
    rate = _RATE.match(expression.strip())
    if rate:
        unit = rate.group(2).rstrip("s")
        return after + timedelta(seconds=int(rate.group(1)) * _UNITS[unit])
    cron = _CRON.match(expression.strip())
    if not cron:
        return None  # at(...) one-off schedules are not run by the local clock
    from croniter import croniter  # type: ignore[import-untyped]

    five, year = aws_cron_to_croniter(cron.group(1))
    it = croniter(five, after.astimezone(ZoneInfo(timezone or "UTC")))
    for _ in range(10_000):
        candidate: datetime = it.get_next(datetime)
        if _year_matches(year, candidate.year):
            return candidate.astimezone(UTC)
    return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_event(spec: ScheduleSpec | None, function_arn: str, region: str, now: datetime) -> Any:
    """What the function receives for one run at scheduled time `now`."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if spec is not None and spec.input is not None:
        text = spec.input
        if spec.kind == "ScheduleV2":
            for placeholder, value in {
                "<aws.scheduler.scheduled-time>": _iso(now),
                "<aws.scheduler.schedule-arn>": spec.arn,
                "<aws.scheduler.execution-id>": str(uuid.uuid4()),
                "<aws.scheduler.attempt-number>": "1",
            }.items():
                text = text.replace(placeholder, value)
        return json.loads(text)
    scheduler = spec is None or spec.kind == "ScheduleV2"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler" if scheduler else "aws.events",
        "account": ACCOUNT_ID,
        "time": _iso(now),
        "region": region,
        "resources": [spec.arn if spec is not None else function_arn],
        "detail": {},
    }


class ScheduleRunner:
    """One thread runs every enabled schedule when its next time comes."""

    def __init__(
        self,
        specs: list[ScheduleSpec],
        run: Callable[[ScheduleSpec, datetime], Any],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.specs = [s for s in specs if s.enabled]
        self.run = run
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="schedules", daemon=True)

    def start(self) -> None:
        if self.specs:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        now = self.clock()
        due = {s: next_fire(s.expression, s.timezone, now) for s in self.specs}
        while not self._stop.is_set():
            pending = {s: t for s, t in due.items() if t is not None}
            if not pending:
                return
            spec, when = min(pending.items(), key=lambda item: item[1])
            if self._stop.wait(max(0.0, (when - self.clock()).total_seconds())):
                return
            try:
                self.run(spec, when)
            except InvocationError as exc:
                log.warning("sandbox: scheduled run of %s failed: %s", spec.function, exc)
            due[spec] = next_fire(spec.expression, spec.timezone, when)
