"""Reminders before expiry and the end of a program, against moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from shared.errors import StaleRunError, SunsetError
from shared.jobs.expiry import ExpiryJob
from shared.jobs.notify import EventBridgeNotifier
from shared.jobs.reminders import ReminderJob
from shared.jobs.walk import JobInput
from shared.ledger.commands import Release
from shared.program.config import ExpiryKind, ExpiryPolicy, ProgramConfig, Tier
from shared.program.sunset import announce_sunset, earning_open, redemption_open
from tests.support.jobs import FakeNotifier, World, make_world
from tests.support.outbound import check

if TYPE_CHECKING:
    from functions.services import Services
    from shared.jobs.store import DueItem

EARNED = datetime(2026, 1, 10, tzinfo=UTC)
NOW = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
DUE = NOW + timedelta(days=20)  # inside the 30-day reminder window


@pytest.fixture
def world(services: Services) -> World:
    return make_world(services)


def remind(world: World, notifier: Any, now: datetime = NOW, **extra: Any) -> Any:
    job = ReminderJob(world.ledger, world.programs, world.jobs, notifier)
    job.page_size = extra.pop("page_size", 100)
    return job.run(JobInput(now=now, **extra, simulate=True))[0]


def test_one_notice_per_member_and_date_with_the_whole_amount(world: World) -> None:
    # Given ann has two lots due the same day, bob one, and cy one due after the window
    world.earn("ann", 10, "o-1", EARNED, expires_at=DUE)
    world.earn("ann", 20, "o-2", EARNED, expires_at=DUE + timedelta(hours=2))
    world.earn("bob", 5, "o-3", EARNED, expires_at=DUE)
    world.earn("cy", 7, "o-4", EARNED, expires_at=NOW + timedelta(days=45))
    notifier = FakeNotifier()
    # When the reminder job runs, with pages of one lot
    report = remind(world, notifier, page_size=1)
    # Then ann and bob get one notice each, with the amount and the date
    sent = sorted((d["member"], d["points"], d["date"]) for _, _, d in notifier.sent)
    assert sent == [("ann", 30, "2026-02-21"), ("bob", 5, "2026-02-21")]
    assert {kind for kind, _, _ in notifier.sent} == {"PointsExpiring"}
    assert report.notices_sent == 2
    marker = world.jobs.reminder("demo", "ann", "2026-02-21")
    assert marker is not None and marker.status == "sent"


def test_reruns_and_overlapping_runs_never_send_twice(world: World) -> None:
    # Given three members with points due in the window
    for member in ("ann", "bob", "cy"):
        world.earn(member, 10, f"o-{member}", EARNED, expires_at=DUE)
    notifier = FakeNotifier()
    first = ReminderJob(world.ledger, world.programs, world.jobs, notifier)
    second = ReminderJob(world.ledger, world.programs, world.jobs, notifier)
    first.page_size = second.page_size = 1
    # When the second instance runs a page each time the first reads one, then both rerun
    inner = first._reminder

    def interleaved(program: str, config: Any, now: datetime, target: datetime, report: Any) -> Any:
        handle = inner(program, config, now, target, report)

        def step(items: list[DueItem]) -> None:
            try:
                second.run(JobInput(now=now, page_budget=1, simulate=True))
            except StaleRunError:
                pass
            handle(items)

        return step

    first._reminder = interleaved  # type: ignore[method-assign]
    first.run(JobInput(now=NOW, simulate=True))
    remind(world, notifier)
    remind(world, notifier, now=NOW + timedelta(hours=1))
    # Then each member was told once
    assert sorted(d["member"] for _, _, d in notifier.sent) == ["ann", "bob", "cy"]


def test_a_claim_left_by_a_crash_is_retaken_after_the_lease(world: World) -> None:
    # Given a run that crashed after claiming ann's notice but before publishing it
    world.earn("ann", 10, "o-1", EARNED, expires_at=DUE)
    world.jobs.claim_reminder("demo", "ann", "2026-02-21", NOW - timedelta(hours=1), lease_seconds=900)
    notifier = FakeNotifier()
    # When the next run comes after the lease
    remind(world, notifier)
    # Then the notice goes out (at-least-once in that window) and is marked sent
    assert [d["member"] for _, _, d in notifier.sent] == ["ann"]


def test_notices_reach_the_eventbridge_bus(world: World) -> None:
    # Given the notifications bus and a rule that copies its events to a queue
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name="notices")
    queue = sqs.create_queue(QueueName="seen")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="notices", EventPattern=json.dumps({"source": ["pointbridge.jobs"]}))
    events.put_targets(Rule="all", EventBusName="notices", Targets=[{"Id": "q", "Arn": arn}])
    world.earn("ann", 10, "o-1", EARNED, expires_at=DUE)
    # When the reminder job publishes
    remind(world, EventBridgeNotifier(bus="notices", client=events))
    # Then the event arrives with a stable id, the amount and the date
    body = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])
    assert body["detail-type"] == "PointsExpiring"
    check(body)  # the committed schema (docs/events/PointsExpiring.json)
    assert body["detail"] == {
        "id": "reminder:demo:ann:2026-02-21",
        "program": "demo",
        "member": "ann",
        "points": 10,
        "date": "2026-02-21",
        # In the statement's words: which earn, how many points, when
        "earns": [
            {"points": 10, "earned": {"en": "from Points added on 2026-01-10", "zh-CN": "来自 2026-01-10 的积分入账"}}
        ],
        "words": {
            "en": "10 points expire on 2026-02-21 unless you spend them: 10 from Points added on 2026-01-10",
            "zh-CN": "您有 10 积分将于 2026-02-21 到期，请及时使用：10 积分来自 2026-01-10 的积分入账",
        },
    }


def test_reminders_can_be_switched_off(services: Services) -> None:
    world = make_world(services, ProgramConfig(program="demo", name="Demo", reminder_days=0))
    world.earn("ann", 10, "o-1", EARNED, expires_at=DUE)
    notifier = FakeNotifier()
    remind(world, notifier)
    assert notifier.sent == []


# --- Sunset -----------------------------------------------------------------------------------

TOP = Tier(name="top", rank=1, threshold=1000, expiry=ExpiryPolicy(kind=ExpiryKind.NONE))


def test_a_sunset_needs_a_real_notice_period(world: World) -> None:
    with pytest.raises(SunsetError) as refused:
        announce_sunset(world.programs, "demo", NOW, notice_days=7, redemption_days=30)
    assert refused.value.code == "invalid_sunset"
    with pytest.raises(SunsetError):
        announce_sunset(world.programs, "demo", NOW, notice_days=30, redemption_days=-1)
    assert world.programs.get("demo").sunset is None


def test_a_program_ends_with_notice_then_every_point_expires_with_a_record(services: Services) -> None:
    # Given a program with a tier whose points never expire, and three members holding points
    world = make_world(services, ProgramConfig(program="demo", name="Demo", tiers=(Tier(name="member", rank=0), TOP)))
    world.earn("ann", 100, "o-1", EARNED)  # default policy: 12 months
    world.earn("bob", 50, "o-2", EARNED, expires_at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    world.earn("cy", 30, "o-3", EARNED, expires_at=NOW + timedelta(days=10))
    world.spend("ann", 40, "r-1", EARNED + timedelta(days=1))

    # When the operator announces the end with 30 days' notice and 30 more days to redeem
    config = announce_sunset(world.programs, "demo", NOW, notice_days=30, redemption_days=30)
    assert config.sunset is not None and config.version == 2
    ends = config.sunset.ends_at
    # Then earning stops on the announced date, redemption stays open until the end
    assert earning_open(config, NOW + timedelta(days=29)) and not earning_open(config, NOW + timedelta(days=30))
    assert redemption_open(config, ends - timedelta(seconds=1)) and not redemption_open(config, ends)

    # And members who hold points are told, once
    notifier = FakeNotifier()
    remind(world, notifier, now=NOW + timedelta(hours=1))
    remind(world, notifier, now=NOW + timedelta(hours=2))
    ending = sorted((d["member"], d["points"]) for kind, _, d in notifier.sent if kind == "ProgramEnding")
    assert ending == [("ann", 60), ("bob", 50), ("cy", 30)]

    # And after the end, the expiry job expires every remaining point with a recorded reason
    # (walking a year of day partitions takes a few scheduled runs at the default page budget)
    job = ExpiryJob(world.ledger, world.programs, world.jobs)
    runs = [job.run(JobInput(now=ends + timedelta(minutes=15 * n), simulate=True))[0] for n in range(1, 5)]
    assert runs[-1].finished and runs[-1].details["program_ended"] == "2026-04-02T09:00:00Z"
    assert world.breakage() == 60 + 50 + 30
    for member in ("ann", "bob", "cy"):
        assert world.ledger.account("demo", member).available == 0
    bob = world.store.get_entry("demo", "expiry:shop:o-2")
    assert bob is not None and bob.reason.startswith("program ended on")
    cy = world.store.get_entry("demo", "expiry:shop:o-3")
    assert cy is not None and "expired on" in cy.reason  # due before the end: an ordinary expiry


def test_points_given_back_after_the_end_expire_at_the_next_run(services: Services) -> None:
    # Given a program ending with notice, and a checkout hold taken just before redemption closed
    world = make_world(services)
    world.earn("ann", 100, "o-1", EARNED)
    config = announce_sunset(world.programs, "demo", NOW, notice_days=30, redemption_days=30)
    assert config.sunset is not None
    ends = config.sunset.ends_at
    hold = world.hold("ann", 40, "checkout-1", at=ends - timedelta(hours=1), lapses_at=ends + timedelta(days=2))
    # And the expiry job's end-of-program pass has expired what was left
    job = ExpiryJob(world.ledger, world.programs, world.jobs)
    runs = [job.run(JobInput(now=ends + timedelta(minutes=15 * n), simulate=True))[0] for n in range(1, 5)]
    assert runs[-1].finished and world.breakage() == 60

    # When the hold is released after the end (its lot comes back with its own, later expiry date)
    released_at = ends + timedelta(hours=3)
    world.ledger.release(Release(program="demo", member="ann", hold_id=hold.entry_id), at=released_at)
    assert world.ledger.account("demo", "ann").available == 40

    # Then the next scheduled run expires it with the program's end as the reason, once
    later = job.run(JobInput(now=released_at + timedelta(minutes=15), simulate=True))[0]
    again = job.run(JobInput(now=released_at + timedelta(minutes=30), simulate=True))[0]
    assert (later.lots_expired, later.points_expired, again.lots_expired) == (1, 40, 0)
    assert world.ledger.account("demo", "ann").available == 0
    assert world.breakage() == 100
    expired = world.store.get_entry("demo", f"expiry:settle:{hold.entry_id}/0")
    assert expired is not None and expired.reason.startswith("program ended on")
