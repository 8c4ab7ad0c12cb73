"""The activation job catches up however long it was down (issue 12, "Clocks").

Each run walks the last `CATCH_UP_DAYS` days of the pending index again; beyond that it starts from
its saved progress (or, never run, from the program's first publication), so an outage longer than
the look-back leaves no earn pending for good, and a catch-up run that fails part-way is resumed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from shared.earning.core import CATCH_UP_DAYS, provisional_member
from shared.jobs.audit import audit_table
from tests.integration.ingest_support import EMAIL, NOW, Clock, program, purchase, wire
from tests.support.crash import Story, crash_points

if TYPE_CHECKING:
    from collections.abc import Iterator

    from functions.services import Services

WINDOW = program(return_window_days=14)
MEMBER = provisional_member(EMAIL)
OUTAGE = timedelta(days=CATCH_UP_DAYS + 26)


def balance(services: Services) -> tuple[int, int]:
    state = services.ledger_store.get_account("demo", MEMBER)
    assert state is not None
    return state.available, state.pending


def test_earns_due_during_an_outage_longer_than_the_look_back_activate_on_the_next_run(services: Services) -> None:
    # Given two orders a week apart, and the hourly job's last run on the day of the first
    clock = Clock()
    ingest = wire(services, WINDOW, clock)
    ingest.handle(purchase("1001", "100"))
    assert ingest.activate_due("demo", NOW) == []
    ingest.handle(purchase("1002", "40", at=NOW + timedelta(days=7)))
    # When the job is down for 40 days (both windows closed more than two weeks before it is back)
    back = NOW + OUTAGE
    activated = ingest.activate_due("demo", back)
    # Then its next run activates both, and its progress says how far it got
    assert sorted(activated) == ["shopify:acme.myshopify.com:1001", "shopify:acme.myshopify.com:1002"]
    assert balance(services) == (140, 0)
    assert services.earning_items.activated_through("demo") == back
    # And a late invocation for an earlier time neither activates twice nor moves the progress back
    assert ingest.activate_due("demo", NOW + timedelta(days=20)) == []
    assert services.earning_items.activated_through("demo") == back
    assert audit_table(services.table).problems == []


def test_a_program_whose_job_never_ran_is_walked_from_its_first_publication(services: Services) -> None:
    clock = Clock()
    ingest = wire(services, WINDOW, clock)
    ingest.handle(purchase("1001", "100"))
    assert services.earning_items.activated_through("demo") is None
    assert ingest.activate_due("demo", NOW + OUTAGE) == ["shopify:acme.myshopify.com:1001"]
    assert balance(services) == (100, 0)


def test_a_run_inside_the_look_back_writes_its_progress_once_a_day(services: Services) -> None:
    clock = Clock()
    ingest = wire(services, WINDOW, clock)
    ingest.activate_due("demo", NOW)
    first = services.earning_items.activated_through("demo")
    ingest.activate_due("demo", NOW + timedelta(hours=1))
    assert services.earning_items.activated_through("demo") == first == NOW  # the same day: not written again
    ingest.activate_due("demo", NOW + timedelta(days=1))
    assert services.earning_items.activated_through("demo") == NOW + timedelta(days=1)


@pytest.fixture
def dynamo() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb")


def test_a_catch_up_run_stopped_after_any_write_is_finished_by_the_next(dynamo: Any) -> None:
    # Three orders due on three different days of a long outage; the first run back stops after each
    # of its writes in turn; the next run must end where an uninterrupted run does.
    clock = Clock()

    def setup(services: Services) -> None:
        clock.now = NOW
        services.programs.publish(WINDOW)
        for day, order in enumerate(("1001", "1002", "1003")):
            services.ingest.handle(purchase(order, "10", at=NOW + timedelta(days=3 * day)))
        services.ingest.activate_due("demo", NOW)

    def catch_up(services: Services) -> object:
        clock.now = NOW + OUTAGE
        return services.ingest.activate_due("demo")

    def outcome(services: Services) -> object:
        return balance(services), audit_table(services.table).problems

    writes, expected = crash_points(dynamo, clock, Story(setup, catch_up, catch_up, outcome))
    # three activations, each day's progress after it, the run's own progress
    assert writes == 3 + 3 + 1
    assert expected == ((30, 0), [])
