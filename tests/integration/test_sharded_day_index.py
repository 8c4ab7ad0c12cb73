"""The due-day index spread over shards by member (`shared.infra.keys.INDEX_DAY_SHARDS`, docs/jobs.md).

Every walk of a day must read all of that day's shards, a walk stopped anywhere (a crash after any
write, a page budget spent inside a day) must be finished by the next run, and an item or a saved
position written before the keys were sharded (the day key without a suffix) is read as shard 0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from shared.earning.core import CATCH_UP_DAYS, provisional_member
from shared.events.model import Identity, IdentityKind
from shared.infra import keys
from shared.infra.codec import to_item
from shared.jobs.audit import audit_table
from shared.jobs.holds import HoldLapseJob
from shared.jobs.walk import JobInput
from shared.ledger.commands import Earn
from tests.integration.ingest_support import NOW, Clock, program, purchase, wire
from tests.support.crash import CrashingServices, Story, crash_points, fresh_table
from tests.support.jobs import World, make_world

if TYPE_CHECKING:
    from collections.abc import Iterator

    from functions.services import Services

WINDOW = program(return_window_days=14)
# Shoppers whose provisional members fall in shards 0, 1, 15 and 10 of every day's index.
SHOPPERS = tuple(Identity(kind=IdentityKind.EMAIL, value=c * 64) for c in "ic1a")
MEMBERS = tuple(provisional_member(identity) for identity in SHOPPERS)


@pytest.fixture
def dynamo() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb")


def test_the_shoppers_and_members_cover_several_shards_of_a_day() -> None:
    assert keys.INDEX_DAY_SHARDS == 16
    assert [keys.index_shard(member) for member in MEMBERS] == [0, 1, 15, 10]
    assert [keys.index_shard(member) for member in ("lou", "cy", "eve", "ann")] == [0, 5, 15, 13]
    # shard 0 keeps the spelling every day key had before sharding
    assert keys.pending_index_pks("demo", "2026-06-10")[:2] == ["N#demo#2026-06-10", "N#demo#2026-06-10#1"]


def balances(services: Services, members: tuple[str, ...]) -> list[tuple[str, int, int]]:
    found = []
    for member in members:
        state = services.ledger_store.get_account("demo", member)
        assert state is not None
        found.append((member, state.available, state.pending))
    return found


@pytest.mark.parametrize(
    ("back", "writes_expected"),
    [
        # beyond the look-back: four activations, the progress after each of the two catch-up days, the run's
        (timedelta(days=CATCH_UP_DAYS + 26), 4 + 2 + 1),
        # inside the look-back: four activations and the run's progress
        (timedelta(days=18), 4 + 1),
    ],
)
def test_an_activation_walk_over_a_days_shards_stopped_after_any_write_is_finished_by_the_next(
    dynamo: Any, back: timedelta, writes_expected: int
) -> None:
    # Four shoppers in four shards earn on two days (two a day); the job ran on the first day, then
    # runs again after both windows closed and stops after each of its writes in turn.
    clock = Clock()

    def setup(services: Services) -> None:
        clock.now = NOW
        services.programs.publish(WINDOW)
        for n, identity in enumerate(SHOPPERS):
            at = NOW - timedelta(hours=1) + timedelta(days=3 * (n % 2))
            clock.now = at + timedelta(minutes=1)
            services.ingest.handle(purchase(f"100{n}", str(10 * (n + 1)), identity=identity, at=at))
        services.ingest.activate_due("demo", NOW)

    def activate(services: Services) -> object:
        clock.now = NOW + back
        return services.ingest.activate_due("demo")

    def outcome(services: Services) -> object:
        left = [i for i in services.table.scan() if str(i.get("GSI1PK", "")).startswith("N#")]
        return balances(services, MEMBERS), len(left), audit_table(services.table).problems

    writes, expected = crash_points(dynamo, clock, Story(setup, activate, activate, outcome))
    assert writes == writes_expected
    assert expected == ([(m, 10 * (n + 1), 0) for n, m in enumerate(MEMBERS)], 0, [])


def expiring_lots(services: Services, clock: Clock) -> None:
    """Six lots of four members (shards 0, 5, 15, 13) due on two days; two of eve's on the first day."""
    clock.now = NOW - timedelta(days=5)  # the program started before the lots were earned
    services.programs.publish(program())
    clock.now = NOW
    lots = [("lou", 2), ("eve", 2), ("eve", 2), ("ann", 2), ("cy", 1), ("eve", 1)]
    for n, (member, days_ago) in enumerate(lots):
        cmd = Earn(
            program="demo",
            member=member,
            points=10 + n,
            source="shop",
            external_id=f"o-{n}",
            reason="purchase",
            event_time=NOW - timedelta(days=4),
            expires_at=NOW - timedelta(days=days_ago, hours=n),
        )
        services.ledger.earn(cmd, at=NOW - timedelta(days=4))


def expiry_outcome(services: Services) -> object:
    accounts = balances(services, ("lou", "cy", "eve", "ann"))
    still_indexed = sum(1 for item in services.table.scan() if str(item.get("GSI1PK", "")).startswith("X#"))
    return accounts, still_indexed, audit_table(services.table).problems


def test_an_expiry_walk_over_a_days_shards_stopped_after_any_write_is_finished_by_the_next(dynamo: Any) -> None:
    clock = Clock()

    def run(services: Services) -> object:
        job = services.expiry_job
        job.page_size = 1  # a page per lot: the cursor sits inside a shard as well as between them
        return job.run(JobInput(now=NOW))

    writes, expected = crash_points(dynamo, clock, Story(lambda s: expiring_lots(s, clock), run, run, expiry_outcome))
    # six expiries, the position after each page that found a lot, and the level at the end
    assert writes == 6 + 6 + 1
    assert expected == ([("lou", 0, 0), ("cy", 0, 0), ("eve", 0, 0), ("ann", 0, 0)], 0, [])


def test_an_expiry_walk_stopped_by_its_budget_inside_a_day_resumes_at_its_shard(dynamo: Any) -> None:
    # Given the six lots and a job allowed one page a run
    clock = Clock()
    stack = CrashingServices(fresh_table(dynamo), dynamo, clock, crash_after=None)
    expiring_lots(stack, clock)
    job = stack.expiry_job
    job.page_size = 1
    # When it runs again and again at the same time
    cursors: list[tuple[str, int]] = []
    reports = []
    for _ in range(100):
        [report] = job.run(JobInput(now=NOW, page_budget=1))
        reports.append(report)
        progress = stack.job_items.get_progress("expiry", "demo")
        assert progress is not None
        if progress.cursor_day:
            cursors.append((progress.cursor_day, progress.cursor_shard))
        if report.finished:
            break
    # Then each run went on from the shard it stopped in, and the last one reached the level
    assert reports[-1].finished and len(reports) > 6
    assert {shard for _, shard in cursors} > {0}, "no run stopped past a day's first shard"
    assert sum(r.lots_expired for r in reports) == 6
    assert expiry_outcome(stack) == ([("lou", 0, 0), ("cy", 0, 0), ("eve", 0, 0), ("ann", 0, 0)], 0, [])


def unshard(services: Services, item: dict[str, Any]) -> str:
    """Give an index item the day key it had before sharding (`<kind>#<program>#<day>`)."""
    kind, program_id, day = str(item["GSI1PK"]).split("#")[:3]
    old = f"{kind}#{program_id}#{day}"
    services.table.update(
        keys.ItemKey(str(item["PK"]), str(item["SK"])),
        "SET GSI1PK = :pk",
        ExpressionAttributeValues=to_item({":pk": old}),
    )
    return old


def test_a_pending_earn_indexed_before_the_sharding_still_activates(services: Services) -> None:
    # Given a pending earn of a member in shard 10 whose index item has the unsharded day key
    clock = Clock()
    ingest = wire(services, WINDOW, clock)
    ingest.handle(purchase("1001", "100", identity=SHOPPERS[3]))
    [item] = [i for i in services.table.scan() if str(i.get("GSI1PK", "")).startswith("N#")]
    assert str(item["GSI1PK"]).endswith("#10")
    old = unshard(services, item)
    assert "#" not in old.removeprefix("N#demo#")
    # When the job runs after the return window
    activated = ingest.activate_due("demo", NOW + timedelta(days=15))
    # Then it is found in the day's shard 0 and activated
    assert activated == ["shopify:acme.myshopify.com:1001"]
    assert balances(services, (MEMBERS[3],)) == [(MEMBERS[3], 100, 0)]
    assert audit_table(services.table).problems == []


T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(services: Services) -> World:
    made = make_world(services)
    made.clock.now = T
    return made


def test_holds_and_a_cursor_saved_before_the_sharding_are_read_as_shard_0(world: World) -> None:
    # Given two holds lapsing on T (members in shards 13 and 8) whose index items have the unsharded
    # day key, and the lapse job's last run just before T
    for member in ("ann", "bob"):
        world.earn(member, 100, f"o-{member}", T - timedelta(days=30))
        world.hold(member, 40, f"cart-{member}", T - timedelta(minutes=20), lapses_at=T)
    holds = [i for i in world.items() if str(i.get("GSI1PK", "")).startswith("H#")]
    assert sorted(str(i["GSI1PK"]) for i in holds) == ["H#demo#2026-03-10#13", "H#demo#2026-03-10#8"]
    for item in holds:
        unshard(world.services, item)
    world.programs.register_holds("demo")
    job = HoldLapseJob(world.ledger, world.programs, world.jobs, clock=world.clock)
    job.page_size = 1
    world.clock.now = T - timedelta(minutes=1)
    job.run(JobInput(now=world.clock.now))
    # and a run stopped by its budget after the first of them, its position saved as before the
    # sharding (a page key in the unsharded day key, no shard)
    world.clock.now = T + timedelta(hours=1)
    [first] = job.run(JobInput(now=world.clock.now, page_budget=1))
    assert (first.details["released"], first.finished) == (1, False)
    progress = keys.job_progress("holds", "demo")
    saved = world.services.table.get(progress)
    assert saved is not None and saved["cursor_key"] and int(saved["cursor_shard"]) == 0
    world.services.table.update(progress, "REMOVE cursor_shard")
    # When the job runs again
    [second] = job.run(JobInput(now=world.clock.now))
    # Then it goes on from the saved page in shard 0 and releases the other hold, once
    assert (second.details["released"], second.finished) == (1, True)
    assert (world.ledger.account("demo", "ann").held, world.ledger.account("demo", "bob").held) == (0, 0)
    assert world.breakage() == 0  # the audit is clean
