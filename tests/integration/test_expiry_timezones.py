"""Expiry dates follow the program's time zone: points last to the end of their local day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from shared.errors import InsufficientPointsError
from shared.jobs.expiry import ExpiryJob
from shared.jobs.reminders import ReminderJob
from shared.jobs.walk import JobInput
from shared.members.membership import Expiring, expiring
from shared.program.config import ExpiryKind, ExpiryPolicy, ProgramConfig
from tests.support.jobs import FakeNotifier, World, make_world

if TYPE_CHECKING:
    from functions.services import Services

SYDNEY = ZoneInfo("Australia/Sydney")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def expire(world: World, now: datetime) -> Any:
    return ExpiryJob(world.ledger, world.programs, world.jobs).run(JobInput(now=now, simulate=True))[0]


def remind(world: World, now: datetime) -> FakeNotifier:
    notifier = FakeNotifier()
    ReminderJob(world.ledger, world.programs, world.jobs, notifier).run(JobInput(now=now, simulate=True))
    return notifier


def test_calendar_year_points_in_sydney_last_to_the_end_of_dec_31_sydney_time(services: Services) -> None:
    # Given a Sydney program whose points expire at the end of the year they were earned in
    config = ProgramConfig(
        program="demo",
        name="Demo",
        timezone="Australia/Sydney",
        expiry=ExpiryPolicy(kind=ExpiryKind.CALENDAR_YEAR, years=0),
    )
    world = make_world(services, config)
    world.earn("ann", 100, "o-1", datetime(2026, 6, 1, 12, 0, tzinfo=SYDNEY))
    end_of_year = datetime(2026, 12, 31, 23, 59, 59, tzinfo=SYDNEY)
    assert [lot.expires_at for lot in world.ledger.lots("demo", "ann")] == [end_of_year]

    # When it is 11:00 on Dec 31 in Sydney (00:00 UTC), the job runs and ann redeems
    dec31_11am = datetime(2026, 12, 31, 11, 0, tzinfo=SYDNEY)
    assert expire(world, dec31_11am).lots_expired == 0
    world.spend("ann", 10, "r-1", dec31_11am)
    # Then her points were all still there; the rest go at midnight Sydney time, not UTC's
    new_year = datetime(2027, 1, 1, 0, 0, tzinfo=SYDNEY)  # 13:00 UTC on Dec 31
    with pytest.raises(InsufficientPointsError):
        world.spend("ann", 1, "r-2", new_year)
    report = expire(world, new_year)
    assert (report.lots_expired, report.points_expired) == (1, 90)
    entry = world.store.get_entry("demo", "expiry:shop:o-1")
    assert entry is not None and entry.reason.endswith("expired on 2026-12-31")


def test_rolling_points_in_los_angeles_expire_at_the_end_of_the_local_day(services: Services) -> None:
    # Given a Los Angeles program with one-month rolling expiry, and an earn at 23:00 on Mar 9
    # local time (06:00 UTC on Mar 10)
    config = ProgramConfig(program="demo", name="Demo", timezone="America/Los_Angeles", expiry=ExpiryPolicy(months=1))
    world = make_world(services, config)
    world.earn("ann", 40, "o-1", datetime(2026, 3, 9, 23, 0, tzinfo=LOS_ANGELES))
    # Then the points last to the end of Apr 9 in Los Angeles (06:59:59 UTC on Apr 10)
    end_of_apr9 = datetime(2026, 4, 9, 23, 59, 59, tzinfo=LOS_ANGELES)
    [lot] = world.ledger.lots("demo", "ann")
    assert lot.expires_at == end_of_apr9

    # When the reminder job runs three weeks before
    notifier = remind(world, datetime(2026, 3, 20, tzinfo=UTC))
    # Then the notice names the local date, as does the member's "expiring soon"
    assert [(d["date"], d["points"]) for _, _, d in notifier.sent] == [("2026-04-09", 40)]
    soon = expiring([lot], datetime(2026, 3, 20, tzinfo=UTC), config.tz)
    assert soon == [Expiring(date=datetime(2026, 4, 9).date(), points=40)]
    assert world.jobs.reminder("demo", "ann", "2026-04-09") is not None

    # And the job expires them at that moment, not a second before
    assert expire(world, end_of_apr9 - timedelta(seconds=1)).lots_expired == 0
    assert expire(world, end_of_apr9).points_expired == 40


def test_a_sydney_member_active_late_in_the_evening_keeps_points_to_that_local_date(services: Services) -> None:
    # Given a Sydney program extended by activity (3 months), and points earned in January
    config = ProgramConfig(
        program="demo",
        name="Demo",
        timezone="Australia/Sydney",
        expiry=ExpiryPolicy(months=3, extend_on_activity=True),
    )
    world = make_world(services, config)
    world.earn("ann", 100, "o-1", datetime(2026, 1, 10, 9, 0, tzinfo=SYDNEY))
    # When ann redeems at 22:30 on Mar 20 in Sydney (still Mar 20 in UTC too: 11:30)
    world.spend("ann", 10, "r-1", datetime(2026, 3, 20, 22, 30, tzinfo=SYDNEY))
    # Then her points last to the end of Jun 20 in Sydney
    kept = config.kept_until(world.ledger.account("demo", "ann").active_at)
    assert kept == datetime(2026, 6, 20, 23, 59, 59, tzinfo=SYDNEY)
    assert expire(world, datetime(2026, 6, 20, 23, 59, 58, tzinfo=SYDNEY)).lots_expired == 0
    assert expire(world, datetime(2026, 6, 21, 0, 0, tzinfo=SYDNEY)).points_expired == 90
