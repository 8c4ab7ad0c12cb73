"""Expiry extended by activity, against moto: a worked story, then what counts as activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from shared.errors import InsufficientPointsError
from shared.jobs.expiry import ExpiryJob
from shared.jobs.reminders import ReminderJob
from shared.jobs.walk import JobInput
from shared.ledger.audit import audit
from shared.ledger.commands import Earn, Release, Send, Transfer
from shared.ledger.models import Account
from shared.program.config import ExpiryKind, ExpiryPolicy, ProgramConfig
from tests.support.jobs import FakeNotifier, World, make_world

if TYPE_CHECKING:
    from functions.services import Services

EXTENDED = ProgramConfig(
    program="demo",
    name="Demo",
    expiry=ExpiryPolicy(kind=ExpiryKind.ROLLING, months=3, extend_on_activity=True),
)
JAN10 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(services: Services) -> World:
    return make_world(services, EXTENDED)


def expire(world: World, now: datetime) -> Any:
    return ExpiryJob(world.ledger, world.programs, world.jobs).run(JobInput(now=now, program="demo", simulate=True))[0]


def remind(world: World, notifier: FakeNotifier, now: datetime) -> Any:
    return ReminderJob(world.ledger, world.programs, world.jobs, notifier).run(JobInput(now=now, simulate=True))[0]


def notices(notifier: FakeNotifier) -> list[tuple[str, str, int]]:
    return sorted((d["member"], d["date"], d["points"]) for kind, _, d in notifier.sent if kind == "PointsExpiring")


def test_activity_keeps_points_until_n_months_after_the_last_one(world: World) -> None:
    notifier = FakeNotifier()
    # Given a program whose points expire 3 months after the earn, extended by activity, and three
    # members who earn on Jan 10 (their points' own date: the end of Apr 10)
    world.earn("ann", 100, "o-ann", JAN10)
    world.earn("bob", 50, "o-bob", JAN10)
    world.earn("cy", 30, "o-cy", JAN10)
    assert [lot.expires_at for lot in world.ledger.lots("demo", "ann")] == [
        datetime(2026, 4, 10, 23, 59, 59, tzinfo=UTC)
    ]

    # When ann redeems 10 points on Mar 20 (activity), and the reminder job runs that day
    world.spend("ann", 10, "r-1", datetime(2026, 3, 20, 12, 0, tzinfo=UTC))
    first = remind(world, notifier, datetime(2026, 3, 20, 13, 0, tzinfo=UTC))
    # Then bob and cy are told their points go on Apr 10; ann is not (hers now last to Jun 20),
    # and her lot moves in the index so the walks meet it on that date
    assert notices(notifier) == [("bob", "2026-04-10", 50), ("cy", "2026-04-10", 30)]
    assert first.lots_extended == 1

    # When cy earns again on Apr 1 (after the notice), and the expiry job runs just after Apr 10
    world.earn("cy", 20, "o-cy-2", datetime(2026, 4, 1, 15, 0, tzinfo=UTC))
    after_apr10 = expire(world, datetime(2026, 4, 11, 0, 0, tzinfo=UTC))
    # Then only bob, inactive since his earn, loses his points; cy's are kept and moved in the index
    assert (after_apr10.lots_expired, after_apr10.points_expired, after_apr10.lots_extended) == (1, 50, 1)
    assert world.ledger.account("demo", "bob").available == 0

    # When ann spends right after her points' own date, before and after the job ran
    world.spend("ann", 5, "r-2", datetime(2026, 4, 11, 0, 0, 30, tzinfo=UTC))
    # Then it works, from the lot earned on Jan 10 (and counts as activity again)
    assert [lot.remaining for lot in world.ledger.lots("demo", "ann")] == [85]

    # When the reminder job runs in June
    remind(world, notifier, datetime(2026, 6, 15, 0, 0, tzinfo=UTC))
    # Then the notices name the effective dates: 3 months after each member's last activity
    assert ("ann", "2026-07-11", 85) in notices(notifier)
    assert ("cy", "2026-07-01", 50) in notices(notifier)
    assert ("ann", "2026-04-10", 100) not in notices(notifier) and len(notices(notifier)) == 4

    # When the expiry job passes Jun 20 (the date ann's lot was moved to) and Jul 1
    june = expire(world, datetime(2026, 6, 21, 0, 0, tzinfo=UTC))
    july = expire(world, datetime(2026, 7, 2, 0, 0, tzinfo=UTC))
    # Then ann's lot is moved on again (her Apr 11 activity), and cy's points expire, both lots
    assert (june.lots_expired, june.lots_extended) == (0, 1)
    assert (july.lots_expired, july.points_expired) == (2, 50)
    cy = world.store.get_entry("demo", "expiry:shop:o-cy")
    assert cy is not None
    assert (
        cy.reason == "points earned by shop:o-cy expired on 2026-07-01, 3 months after the last activity on 2026-04-01"
    )

    # When ann stays inactive: her points last to the end of Jul 11, not a second longer
    last_second = datetime(2026, 7, 11, 23, 59, 58, tzinfo=UTC)
    assert world.ledger.spendable_points("demo", "ann", last_second) == 85
    assert expire(world, last_second).lots_expired == 0
    gone = last_second + timedelta(seconds=1)
    assert world.ledger.spendable_points("demo", "ann", gone) == 0
    with pytest.raises(InsufficientPointsError):
        world.spend("ann", 1, "r-3", gone)  # even before the job has run
    final = expire(world, gone)
    # Then the job expires them exactly then, with the reason, and only once
    assert (final.lots_expired, final.points_expired) == (1, 85)
    ann = world.store.get_entry("demo", "expiry:shop:o-ann")
    assert ann is not None and ann.event_time == datetime(2026, 7, 11, 23, 59, 59, tzinfo=UTC)
    assert ann.reason.endswith("expired on 2026-07-11, 3 months after the last activity on 2026-04-11")
    assert expire(world, gone + timedelta(hours=1)).lots_expired == 0
    assert world.breakage() == 50 + 50 + 85  # the audit holds too (breakage() checks it)


def test_without_the_extension_activity_changes_nothing(services: Services) -> None:
    # Given the same rolling policy without extend_on_activity
    world = make_world(
        services, EXTENDED.model_copy(update={"expiry": ExpiryPolicy(kind=ExpiryKind.ROLLING, months=3)})
    )
    world.earn("ann", 100, "o-ann", JAN10)
    world.spend("ann", 10, "r-1", datetime(2026, 3, 20, 12, 0, tzinfo=UTC))
    # When the job runs after the lot's own date
    report = expire(world, datetime(2026, 4, 11, 0, 0, tzinfo=UTC))
    # Then the points expire on their own date, activity or not
    assert (report.lots_expired, report.points_expired, report.lots_extended) == (1, 90, 0)


def test_gifts_do_not_count_as_activity_but_exchanges_and_pending_earns_do(services: Services) -> None:
    # Given two programs that extend expiry by activity, and members with points from Jan 10
    world = make_world(services, EXTENDED)
    world.programs.publish(EXTENDED.model_copy(update={"program": "air", "name": "Air"}))
    for member in ("ann", "bob", "cy", "dee"):
        world.earn(member, 100, f"o-{member}", JAN10)
    march = datetime(2026, 3, 1, tzinfo=UTC)

    def send(member: str, to_program: str, to_member: str, ext: str, counter: Account) -> None:
        cmd = Send(
            program="demo",
            member=member,
            to_program=to_program,
            to_member=to_member,
            points=10,
            credited=10,
            source="app",
            external_id=ext,
            reason="move",
            counter=counter,
            keep_expiry=counter is Account.TRANSFER,
        )
        world.ledger.send(cmd, at=march)

    # When ann gifts bob 10 points, cy exchanges 10 points into the air program, and dee buys
    # something whose points are still pending (the return window)
    send("ann", "demo", "bob", "g-1", Account.TRANSFER)
    send("cy", "air", "cy", "x-1", Account.PARTNER)
    purchase = Earn(
        program="demo",
        member="dee",
        points=20,
        source="shop",
        external_id="o-dee-2",
        reason="order",
        event_time=march,
        pending=True,
    )
    assert world.ledger.earn(purchase, at=march).kind == "earn_pending"
    # Then neither side of the gift was active; the exchange and the purchase were
    active = {m: world.ledger.account("demo", m).active_at for m in ("ann", "bob", "cy", "dee")}
    assert active == {"ann": JAN10, "bob": JAN10, "cy": march, "dee": march}
    assert world.ledger.account("air", "cy").active_at == march
    # And the expiry job after Apr 10 takes ann's and bob's points (the gift kept its Apr 10 date)
    report = expire(world, datetime(2026, 4, 11, tzinfo=UTC))
    assert report.points_expired == 90 + 110
    assert world.ledger.account("demo", "cy").available == 90
    assert world.ledger.account("demo", "dee").available == 100


def test_a_merge_carries_the_merged_accounts_activity_and_dates(world: World) -> None:
    # Given a provisional account (a till card) active on Mar 1 and the member's own account,
    # inactive since its earn on Jan 10
    march = datetime(2026, 3, 1, tzinfo=UTC)
    world.earn("card-1", 40, "o-card", JAN10)
    world.spend("card-1", 5, "r-card", march)
    world.earn("ann", 100, "o-ann", JAN10)
    # When the card is merged into ann's account
    world.ledger.transfer(
        Transfer(program="demo", member="card-1", to_member="ann", external_id="m-1", reason="card linked"), at=march
    )
    # Then ann is as active as the card was (the same person), so all her points last to Jun 1,
    # and the moved points keep the date they had on the card
    assert world.ledger.account("demo", "ann").active_at == march
    june1 = datetime(2026, 6, 1, 23, 59, 59, tzinfo=UTC)
    assert {lot.expires_at for lot in world.ledger.lots("demo", "ann")} == {
        datetime(2026, 4, 10, 23, 59, 59, tzinfo=UTC),
        june1,
    }
    assert expire(world, datetime(2026, 4, 11, tzinfo=UTC)).lots_expired == 0
    assert expire(world, june1).points_expired == 135
    assert audit(*world.store.ledger_records()).ok


def test_points_held_at_checkout_come_back_under_the_extension(world: World) -> None:
    # Given ann's points held at checkout on Apr 5, released on Apr 20 (after their own date), and
    # a redemption on Apr 6 (activity: all her points last to Jul 6)
    world.earn("ann", 100, "o-ann", JAN10)
    hold = world.hold(
        "ann", 60, "h-1", at=datetime(2026, 4, 5, tzinfo=UTC), lapses_at=datetime(2026, 4, 30, tzinfo=UTC)
    )
    world.spend("ann", 5, "r-1", datetime(2026, 4, 6, tzinfo=UTC))
    world.ledger.release(
        Release(program="demo", member="ann", hold_id=hold.entry_id), at=datetime(2026, 4, 20, tzinfo=UTC)
    )
    # When the expiry job runs
    report = expire(world, datetime(2026, 4, 21, tzinfo=UTC))
    # Then nothing expires: the restored lot is as alive as the rest of ann's points
    assert report.lots_expired == 0
    assert world.ledger.spendable_points("demo", "ann", datetime(2026, 4, 21, tzinfo=UTC)) == 95


def test_the_audit_catches_a_last_activity_its_entries_do_not_show(world: World) -> None:
    # Given a member whose last activity is a redemption on Mar 20
    world.earn("ann", 100, "o-ann", JAN10)
    world.spend("ann", 10, "r-1", datetime(2026, 3, 20, 12, 0, tzinfo=UTC))
    assert audit(*world.store.ledger_records()).ok
    # When someone moves the balance item's last activity later (to keep points alive)
    world.services.table.client.update_item(
        TableName=world.services.table.name,
        Key={"PK": {"S": "M#ann"}, "SK": {"S": "P#demo#BAL"}},
        UpdateExpression="SET active_at = :t",
        ExpressionAttributeValues={":t": {"S": "2026-06-01T00:00:00Z"}},
    )
    # Then the audit names it
    report = audit(*world.store.ledger_records())
    assert report.problems == [
        "demo/ann: last activity recorded 2026-06-01 00:00:00+00:00, its entries show 2026-03-20 12:00:00+00:00"
    ]
