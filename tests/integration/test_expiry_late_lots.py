"""Lots written after their expiry (the job's walk is already past their date) expire at the next run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from shared.infra import keys
from shared.jobs.expiry import ExpiryJob
from shared.jobs.walk import JobInput
from shared.ledger.commands import Cause, CauseKind, Earn, Release, Reverse, Send
from shared.ledger.models import Account
from shared.program.config import ExpiryPolicy, ProgramConfig
from tests.support.jobs import World, make_world

OPS = Cause(kind=CauseKind.OPERATOR, ref="ops-1")

if TYPE_CHECKING:
    from functions.services import Services

EARNED = datetime(2026, 1, 10, tzinfo=UTC)
D1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def world(services: Services) -> World:
    return make_world(services)


def expire(world: World, now: datetime) -> Any:
    return ExpiryJob(world.ledger, world.programs, world.jobs).run(JobInput(now=now, simulate=True))[0]


def spendable(world: World, member: str, at: datetime) -> int:
    return world.ledger.spendable_points("demo", member, at)


def test_points_released_from_a_hold_after_their_date_expire_at_the_next_run(world: World) -> None:
    # Given 100 points due on D1, 60 of them held at checkout the day before
    world.earn("ann", 100, "o-1", EARNED, expires_at=D1)
    hold = world.hold("ann", 60, "h-1", at=D1 - timedelta(days=1), lapses_at=D1 + timedelta(days=5))
    # And the job ran after D1 (expiring the 40 not held) and has run since, up to D1 + 3 days
    assert expire(world, D1 + timedelta(hours=1)).points_expired == 40
    expire(world, D1 + timedelta(days=3))
    # When the checkout is abandoned then: the 60 come back with their D1 date
    released = D1 + timedelta(days=3, hours=1)
    world.ledger.release(Release(program="demo", member="ann", hold_id=hold.entry_id), at=released)
    assert world.ledger.account("demo", "ann").available == 60
    assert spendable(world, "ann", released) == 0
    # Then the next run expires them, once, and a rerun for the same time or later finds nothing more
    report = expire(world, released + timedelta(minutes=15))
    assert (report.lots_expired, report.points_expired) == (1, 60)
    assert expire(world, released + timedelta(minutes=15)).lots_expired == 0
    assert expire(world, released + timedelta(hours=1)).lots_expired == 0
    assert world.ledger.account("demo", "ann").available == 0
    assert world.breakage() == 100
    entry = world.store.get_entry("demo", "expiry:settle:web:h-1/0")
    assert entry is not None and entry.reason.endswith("expired on 2026-03-01")


def test_points_given_back_by_reversing_an_old_spend_expire_at_the_next_run(world: World) -> None:
    # Given 100 points due on D1, 30 spent before, the other 70 expired by the job, which has
    # run since, up to a week after D1
    world.earn("ann", 100, "o-1", EARNED, expires_at=D1)
    spend = world.spend("ann", 30, "r-1", EARNED + timedelta(days=1))
    assert expire(world, D1 + timedelta(hours=1)).points_expired == 70
    expire(world, D1 + timedelta(days=7))
    # When the spend is reversed then (the reward was refunded)
    world.ledger.reverse(
        Reverse(program="demo", member="ann", entry_id=spend.entry_id, reason="reward refunded", cause=OPS),
        at=D1 + timedelta(days=7, minutes=5),
    )
    # Then the 30 points that come back (with their D1 date) expire at the next run, once
    report = expire(world, D1 + timedelta(days=7, minutes=15))
    assert (report.lots_expired, report.points_expired) == (1, 30)
    assert expire(world, D1 + timedelta(days=8)).lots_expired == 0
    assert world.breakage() == 100


def test_a_back_dated_earn_already_past_its_expiry_expires_at_the_next_run(services: Services) -> None:
    # Given a program whose points expire after one month, and a job that has run up to June 1
    world = make_world(services, ProgramConfig(program="demo", name="Demo", expiry=ExpiryPolicy(months=1)))
    june = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    expire(world, june)
    # When a partner's file arrives late with a purchase made on March 15 (expiry: end of April 15)
    late = Earn(
        program="demo",
        member="ann",
        points=25,
        source="partner",
        external_id="feed-7",
        reason="purchase at a partner",
        event_time=datetime(2026, 3, 15, 9, 0, tzinfo=UTC),
        counter=Account.PARTNER,
        counter_owner="acme",
    )
    world.ledger.earn(late, at=june + timedelta(minutes=1))
    # Then the points are on the record but not spendable, and the next run expires them
    assert world.ledger.account("demo", "ann").available == 25
    assert spendable(world, "ann", june + timedelta(minutes=2)) == 0
    report = expire(world, june + timedelta(minutes=15))
    assert (report.lots_expired, report.points_expired) == (1, 25)
    entry = world.store.get_entry("demo", "expiry:partner:feed-7")
    assert entry is not None and entry.event_time == datetime(2026, 4, 15, 23, 59, 59, tzinfo=UTC)
    assert expire(world, june + timedelta(minutes=30)).lots_expired == 0
    assert world.breakage() == 25


def test_a_held_gift_released_after_the_senders_date_expires_at_the_next_run(world: World) -> None:
    # Given ann's 100 points due on D1, 40 of which she gifted bob two days before, held 3 days
    world.earn("ann", 100, "o-1", EARNED, expires_at=D1)
    gift = Send(
        program="demo",
        member="ann",
        to_program="demo",
        to_member="bob",
        points=40,
        credited=40,
        source="gift",
        external_id="ann:g-1",
        reason="gift",
        keep_expiry=True,
        hold_until=D1 + timedelta(days=2),
    )
    sent = world.ledger.send(gift, at=D1 - timedelta(days=2))
    assert expire(world, D1 + timedelta(hours=1)).points_expired == 60
    expire(world, D1 + timedelta(days=2))
    # When the hold-lapse job releases bob's gift (late: it runs by level too)
    hold_id = f"{sent.entry_id}/in"
    world.ledger.release(Release(program="demo", member="bob", hold_id=hold_id), at=D1 + timedelta(days=2, hours=1))
    # Then the gifted lot (it kept ann's D1 date) expires at the next run, once
    report = expire(world, D1 + timedelta(days=2, hours=2))
    assert (report.lots_expired, report.points_expired) == (1, 40)
    assert expire(world, D1 + timedelta(days=2, hours=3)).lots_expired == 0
    assert world.breakage() == 100


def test_a_lot_is_indexed_by_its_due_time_and_the_ledger_checks_its_true_date(world: World) -> None:
    # Given a lot restored after its date (as in the release above)
    world.earn("ann", 100, "o-1", EARNED, expires_at=D1)
    spend = world.spend("ann", 30, "r-1", EARNED + timedelta(days=1))
    world.ledger.reverse(
        Reverse(program="demo", member="ann", entry_id=spend.entry_id, reason="refund", cause=OPS),
        at=D1 + timedelta(hours=2),
    )
    # Then its index key is its due time (written + the margin), its own date stays D1
    [item] = [i for i in world.items() if i.get("type") == "lot" and i["lot_id"].startswith("reversal:")]
    assert item["expires_at"] == "2026-03-01T10:00:00Z"
    assert (
        item["GSI1PK"] == keys.expiry_index_pks("demo", "2026-03-01")[keys.index_shard("ann")] == "X#demo#2026-03-01#13"
    )
    assert item["GSI1SK"].startswith("2026-03-01T12:05:00Z#ann#")
    # While an ordinary lot is indexed at its own date
    [earned] = [i for i in world.items() if i.get("type") == "lot" and i["lot_id"] == "shop:o-1"]
    assert earned["GSI1SK"].startswith("2026-03-01T10:00:00Z#ann#")
