"""The expiry job against moto: remainders to breakage, reruns, overlapping runs, catch-up, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from functions.expiry.app import handler
from functions.services import services
from shared.errors import ConfigError, InvalidInputError, StaleRunError, UnknownProgramError
from shared.infra import keys
from shared.infra.codec import to_item
from shared.jobs.expiry import ExpiryJob
from shared.jobs.walk import JobInput, parse_job_input
from shared.program.config import parse_program
from tests.support.jobs import World, make_world

if TYPE_CHECKING:
    from functions.services import Services
    from shared.jobs.store import DueItem

D1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)
EARNED = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.fixture
def world(services: Services) -> World:
    return make_world(services)


def job(world: World, page_size: int = 100) -> ExpiryJob:
    runner = ExpiryJob(world.ledger, world.programs, world.jobs)
    runner.page_size = page_size
    return runner


def run(world: World, now: datetime, **extra: Any) -> Any:
    return job(world, extra.pop("page_size", 100)).run(JobInput(now=now, **extra, simulate=True))[0]


def test_expires_exactly_the_unspent_remainder(world: World) -> None:
    # Given a lot of 100 due on D1, of which 30 were spent, and a lot of 50 due on D2
    world.earn("ann", 100, "o-1", EARNED, expires_at=D1)
    world.earn("ann", 50, "o-2", EARNED, expires_at=D2)
    world.spend("ann", 30, "r-1", EARNED + timedelta(days=1))
    # When the job runs an hour after D1
    report = run(world, D1 + timedelta(hours=1))
    # Then 70 points go to breakage with one entry, and the later lot is untouched
    assert (report.lots_expired, report.points_expired, report.finished) == (1, 70, True)
    assert world.breakage() == 70
    assert world.ledger.account("demo", "ann").available == 50
    entry = world.store.get_entry("demo", "expiry:shop:o-1")
    assert entry is not None and "expired on 2026-03-01" in entry.reason


def test_a_lot_due_later_the_same_day_waits_for_its_time(world: World) -> None:
    # Given a lot due at 18:00 on D1
    world.earn("ann", 10, "o-1", EARNED, expires_at=D1.replace(hour=18))
    # When the job runs at 10:00 and again at 18:00
    first = run(world, D1)
    second = run(world, D1.replace(hour=18))
    # Then only the second run expires it
    assert (first.lots_expired, second.lots_expired) == (0, 1)


def test_run_twice_for_the_same_time_expires_nothing_more(world: World) -> None:
    # Given two members with lots due on D1, expired once
    world.earn("ann", 100, "o-1", EARNED, expires_at=D1)
    world.earn("bob", 40, "o-2", EARNED, expires_at=D1)
    run(world, D1)
    writes = len(world.items())
    # When the same scheduled time is run again (a retried schedule)
    again = run(world, D1)
    # Then nothing is read as due and nothing is written
    assert (again.lots_expired, again.items_read) == (0, 0)
    assert world.breakage() == 140
    assert len(world.items()) == writes


def test_two_runs_at_once_interleaved_page_by_page_expire_each_lot_once(world: World) -> None:
    # Given 7 lots due on D1 and two job instances reading one lot per page
    for i in range(7):
        world.earn(f"m{i}", 10 + i, f"o-{i}", EARNED, expires_at=D1)
    first, second = job(world, page_size=1), job(world, page_size=1)

    # When the second instance reads and expires one page each time the first one reads a page,
    # both starting from the same progress (moto is not thread-safe, so "at once" is interleaving)
    def interleaved(program: str, now: datetime, report: Any, ended: Any) -> Any:
        inner = ExpiryJob._expirer(first, program, now, report, ended)

        def handle(items: list[DueItem]) -> None:
            try:
                second.run(JobInput(now=now, page_budget=1, simulate=True))
            except StaleRunError:
                pass  # the other instance finished the level already
            inner(items)

        return handle

    first._expirer = interleaved  # type: ignore[method-assign,assignment]
    report = first.run(JobInput(now=D1, simulate=True))[0]
    # Then every lot expired exactly once, the audit holds, and the progress ends at D1
    assert world.breakage() == sum(10 + i for i in range(7))
    assert report.finished
    progress = world.jobs.get_progress("expiry", "demo")
    assert progress is not None and progress.through == "2026-03-01T10:00:00Z"
    assert run(world, D1 + timedelta(minutes=1)).lots_expired == 0


def test_a_big_day_spreads_over_runs_and_resumes_from_the_cursor(world: World) -> None:
    # Given 5 lots due on D1, a run just before, and a budget of 2 pages of 1 lot per run
    for i in range(5):
        world.earn(f"m{i}", 10, f"o-{i}", EARNED, expires_at=D1)
    run(world, D1 - timedelta(hours=1))
    # When runs follow each other (the schedule runs every 15 minutes)
    reports = [run(world, D1 + timedelta(minutes=15 * n), page_size=1, page_budget=2) for n in range(4)]
    # Then the work is spread over three runs and all 5 are expired once
    assert [r.lots_expired for r in reports] == [2, 2, 1, 0]
    assert [r.finished for r in reports][:2] == [False, False]
    assert reports[-1].finished
    assert world.breakage() == 50


def test_a_skipped_day_is_caught_up_by_the_next_run(world: World) -> None:
    # Given lots due on D1, D2 and D3
    for day, member in ((D1, "ann"), (D2, "bob"), (D3, "cy")):
        world.earn(member, 10, f"o-{member}", EARNED, expires_at=day)
    # When the D1 run happens, the D2 run is skipped, and the D3 run happens
    run(world, D1)
    report = run(world, D3)
    # Then D2's and D3's lots are expired by the D3 run
    assert report.lots_expired == 2
    assert world.breakage() == 30


def test_a_lot_spent_meanwhile_counts_as_done(world: World) -> None:
    # Given a lot spent in full before its expiry
    world.earn("ann", 10, "o-1", EARNED, expires_at=D1)
    world.spend("ann", 10, "r-1", EARNED + timedelta(days=1))
    # When the job runs after D1
    report = run(world, D1)
    # Then nothing is expired (the spent lot is gone from the index) and nothing fails
    assert (report.lots_expired, report.lots_gone) == (0, 0)
    assert world.breakage() == 0


def test_a_now_earlier_than_what_was_processed_is_refused(world: World) -> None:
    # Given a run up to D2
    world.earn("ann", 10, "o-1", EARNED, expires_at=D3)
    run(world, D2)
    before = world.items()
    # When a run for D1 is asked for
    with pytest.raises(StaleRunError) as refused:
        run(world, D1)
    # Then it is refused with the reason, and nothing is written
    assert refused.value.code == "stale_run" and "already processed up to 2026-03-02" in refused.value.detail
    assert world.items() == before


def test_a_job_for_an_unknown_program_is_refused(world: World) -> None:
    before = world.items()
    with pytest.raises(UnknownProgramError):
        run(world, D1, program="nope")
    assert world.items() == before


@pytest.mark.parametrize(
    ("expiry", "reason"),
    [
        ({"kind": "rolling", "months": -3}, "months"),
        ({"kind": "rolling", "months": 0}, "months"),
        ({"kind": "calendar_year", "years": -1}, "years"),
        ({"kind": "calendar_year", "extend_on_activity": True}, "extend_on_activity"),
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(expiry: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_program({"program": "demo", "name": "Demo", "expiry": expiry})
    assert reason in refused.value.detail


def test_an_expiry_before_the_earn_is_refused(world: World) -> None:
    before = world.items()
    with pytest.raises(InvalidInputError):
        world.earn("ann", 10, "o-1", D2, expires_at=D1)
    assert world.items() == before


def test_bad_job_input_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        parse_job_input({"now": "yesterday"})
    with pytest.raises(InvalidInputError):
        parse_job_input({}).at  # noqa: B018


def test_handler_takes_the_schedule_input(world: World) -> None:
    # Given a lot due on D1 and the handler's services on the test table (the world's, installed)
    world.earn("ann", 10, "o-1", EARNED, expires_at=D1)
    assert services() is world.services

    class Context:
        function_name, memory_limit_in_mb, invoked_function_arn, aws_request_id = "expiry", 128, "arn", "req"

    # When ScheduleV2 invokes it with its scheduled time
    reply = handler({"scheduled_time": "2026-03-01T10:15:00Z", "simulate": True}, Context())  # type: ignore[arg-type]
    # Then the lot is expired and the reply says so
    assert reply["reports"][0]["points_expired"] == 10


def test_lots_indexed_before_the_day_keys_were_sharded_still_expire(world: World) -> None:
    # Given lots due on D1 and D2 whose index items carry the unsharded day key (`X#<program>#<day>`,
    # as every lot was written before the index was sharded), and a progress item of that time:
    # a run stopped on D1 with no shard in its cursor
    world.earn("ann", 100, "o-1", EARNED, expires_at=D1)
    world.earn("bob", 40, "o-2", EARNED, expires_at=D2)
    for item in world.items():
        if item.get("type") == "lot":
            day = str(item["GSI1PK"]).split("#")[2]
            world.services.table.update(
                keys.ItemKey(str(item["PK"]), str(item["SK"])),
                "SET GSI1PK = :pk",
                ExpressionAttributeValues=to_item({":pk": f"X#demo#{day}"}),
            )
    assert {i["GSI1PK"] for i in world.items() if i.get("type") == "lot"} == {"X#demo#2026-03-01", "X#demo#2026-03-02"}
    progress = keys.job_progress("expiry", "demo")
    old = {"through": "2026-02-28T00:00:00Z", "target": "2026-03-01T10:00:00Z", "cursor_day": "2026-03-01"}
    world.services.table.put({"PK": progress.pk, "SK": progress.sk, "type": "job_progress", **old, "rev": 1})
    # When the job runs after D2
    report = run(world, D2 + timedelta(hours=1))
    # Then both are expired: the unsharded key is read as the day's shard 0
    assert (report.lots_expired, report.points_expired, report.finished) == (2, 140, True)
    assert world.breakage() == 140
