"""Jobs and clocks (issue 12, "Clocks"): every job catches up from its last progress however long it
was down, and none runs at a time ahead of the wall clock unless the caller says it simulates time."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from functions.expiry.app import handler as expiry_handler
from functions.holds.app import handler as holds_handler
from functions.services import use
from functions.settlement.app import handler as settlement_handler
from shared.errors import FutureRunError, StaleRunError
from shared.exchange.settlement import record_partner_postings
from shared.jobs.expiry import ExpiryJob
from shared.jobs.holds import HoldLapseJob
from shared.jobs.walk import FUTURE_MARGIN, JobInput
from shared.ledger.commands import Earn, Send
from shared.ledger.models import Account
from shared.ledger.store import LATE_LOT_MARGIN
from tests.support.jobs import World, make_world

if TYPE_CHECKING:
    from functions.services import Services

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EARNED = datetime(2026, 1, 10, tzinfo=UTC)


class Context:
    function_name = "job"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:job"
    aws_request_id = "req-1"


@pytest.fixture
def world(services: Services) -> World:
    made = make_world(services)
    made.clock.now = T
    use(services)
    return made


def holds_job(world: World) -> HoldLapseJob:
    world.programs.register_holds("demo")
    return HoldLapseJob(world.ledger, world.programs, world.jobs, clock=world.clock)


def test_the_future_margin_stays_below_the_late_lot_margin() -> None:
    # A lot written while a run walks is due at least LATE_LOT_MARGIN after it was written, so a run
    # whose "now" is at most FUTURE_MARGIN ahead of the clock never walks past it.
    assert timedelta(0) < FUTURE_MARGIN < LATE_LOT_MARGIN


def test_holds_that_lapsed_during_a_three_day_outage_are_released(world: World) -> None:
    # Given a checkout hold and a held gift, both lapsing on T, and the lapse job's last run before that
    world.earn("ann", 500, "o-1", EARNED)
    world.hold("ann", 70, "cart-1", T - timedelta(minutes=20), lapses_at=T)
    gift = Send(
        program="demo",
        member="ann",
        to_program="demo",
        to_member="bob",
        points=30,
        credited=30,
        source="gift",
        external_id="g-1",
        reason="gift",
        keep_expiry=True,
        hold_until=T,
    )
    world.ledger.send(gift, at=T - timedelta(days=2))
    job = holds_job(world)
    world.clock.now = T - timedelta(minutes=1)
    [before] = job.run(JobInput(now=world.clock.now))
    assert before.details["released"] == 0
    # When the job is down for three days and then runs again
    world.clock.now = T + timedelta(days=3, minutes=5)
    [after] = job.run(JobInput(now=world.clock.now))
    # Then both holds are released: nothing stays held for good
    assert (after.details["released"], after.finished) == (2, True)
    assert (world.ledger.account("demo", "ann").held, world.ledger.account("demo", "bob").held) == (0, 0)
    assert world.ledger.account("demo", "bob").available == 30
    # And a rerun releases nothing twice, and an earlier time is refused as stale
    [again] = job.run(JobInput(now=world.clock.now))
    assert again.details["released"] == 0
    with pytest.raises(StaleRunError):
        job.run(JobInput(now=T))
    assert world.breakage() == 0  # the audit is clean


def test_a_hold_lapsing_a_year_after_the_last_run_is_still_released(world: World) -> None:
    # Given a hold lapsing on T and a job that last ran long before it (its walk starts at its progress)
    world.earn("ann", 100, "o-1", EARNED)
    world.hold("ann", 40, "cart-1", T - timedelta(minutes=5), lapses_at=T)
    job = holds_job(world)
    world.clock.now = T + timedelta(days=400)
    # When it runs with a small page budget, it goes on from its cursor run after run
    reports = []
    for _ in range(10):
        [report] = job.run(JobInput(now=world.clock.now, page_budget=200))
        reports.append(report)
        if report.finished:
            break
    assert reports[-1].finished and len(reports) > 1
    assert sum(r.details["released"] for r in reports) == 1
    assert world.ledger.account("demo", "ann").held == 0


def test_a_run_ahead_of_the_clock_is_refused_and_writes_nothing(world: World) -> None:
    # Given a lot due on T + 30 days, and the wall clock at T
    world.earn("ann", 100, "o-1", EARNED, expires_at=T + timedelta(days=30))
    job = ExpiryJob(world.ledger, world.programs, world.jobs, clock=world.clock)
    items_before = len(world.items())
    # When an operator runs expiry three months ahead without saying it is a simulation
    with pytest.raises(FutureRunError) as refused:
        job.run(JobInput(now=T + timedelta(days=90)))
    # Then it is refused with both times named, nothing expired and no progress moved
    assert refused.value.code == "future_run"
    assert refused.value.context["clock"] == "2026-03-10T12:00:00Z"
    assert world.ledger.account("demo", "ann").available == 100
    assert len(world.items()) == items_before
    # And runs at the real time still work, as often as the schedule fires
    [report] = job.run(JobInput(now=T))
    world.clock.now = T + timedelta(minutes=15)
    [later] = job.run(JobInput(now=world.clock.now))
    assert (report.finished, later.finished) == (True, True)
    # And a time within the margin (the scheduler's clock a little ahead of the function's) is accepted
    [near] = job.run(JobInput(now=world.clock.now + FUTURE_MARGIN))
    assert near.finished


def test_a_simulation_says_so_and_may_run_ahead(world: World) -> None:
    world.earn("ann", 100, "o-1", EARNED, expires_at=T + timedelta(days=30))
    job = ExpiryJob(world.ledger, world.programs, world.jobs, clock=world.clock)
    [report] = job.run(JobInput(now=T + timedelta(days=90), simulate=True))
    assert (report.lots_expired, report.points_expired) == (1, 100)


@pytest.mark.parametrize(
    "handler", [expiry_handler, holds_handler, settlement_handler], ids=["expiry", "holds", "settlement"]
)
def test_every_scheduled_handler_refuses_a_future_now(world: World, handler: Any) -> None:
    # The schedule's own input never is ahead; an operator's may be.
    future = {"now": (T + timedelta(days=90)).isoformat()}
    world.programs.register_holds("demo")
    with pytest.raises(FutureRunError):
        handler(future, Context())


def test_the_activation_handler_refuses_a_future_now(world: World) -> None:
    from functions.activation.app import handler

    with pytest.raises(FutureRunError):
        handler({"now": (T + timedelta(days=31)).isoformat()}, Context())
    assert handler({"now": (T + timedelta(days=31)).isoformat(), "simulate": True}, Context()) == {"demo": 0}


def partner_earn(world: World, ext: str, points: int, at: datetime) -> None:
    cmd = Earn(
        program="demo",
        member="ann",
        points=points,
        source="partner",
        external_id=ext,
        reason="partner earn",
        event_time=at,
        counter=Account.PARTNER,
        counter_owner="acme",
    )
    entry = world.ledger.earn(cmd, at=at)
    record_partner_postings(world.services.exchange_items, entry)


def test_settlement_files_for_the_days_the_job_was_down_are_written(world: World) -> None:
    # Given partner earns on four consecutive days, and the settlement job ran for the first only
    s3 = boto3.client("s3")
    bucket = world.services.settings.statements_bucket
    s3.create_bucket(Bucket=bucket)
    days = [T + timedelta(days=n) for n in range(4)]
    for n, at in enumerate(days):
        partner_earn(world, f"a-{n}", 10 * (n + 1), at)
    job = world.services.settlement_job
    world.clock.now = days[1].replace(hour=0, minute=45)
    first = job.run(JobInput(now=world.clock.now, program="demo"))
    # When it was then down for three days and runs once
    world.clock.now = days[3] + timedelta(days=1, hours=-11, minutes=-15)  # 00:45 the day after the last
    [caught_up] = job.run(JobInput(now=world.clock.now))
    # Then every missed day has its statement, each with its own day's net
    written = [d["day"] for r in first for d in r.details["days"]] + [d["day"] for d in caught_up.details["days"]]
    start = world.programs.since("demo")
    assert start is not None
    expected = [(start.date() + timedelta(days=n)).isoformat() for n in range((days[3].date() - start.date()).days + 1)]
    assert written == expected and caught_up.finished
    for n, at in enumerate(days):
        body = s3.get_object(Bucket=bucket, Key=f"statements/demo/{at.date().isoformat()}/settlement.json")["Body"]
        assert json.loads(body.read())["positions"][0]["net"] == -10 * (n + 1)
    # And a rerun writes nothing new; one day can be rewritten on purpose
    [rerun] = job.run(JobInput(now=world.clock.now))
    assert rerun.details["days"] == []
    [rewrite] = job.run(JobInput(now=world.clock.now, day=date(2026, 3, 11)))
    assert [d["day"] for d in rewrite.details["days"]] == ["2026-03-11"]
