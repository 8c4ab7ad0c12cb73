"""Multi-step operations are safe at every step boundary: a crash after any write, then the next
delivery or run, ends exactly as a run without the crash (issue 12, "A crash loses a refund").

Each story enumerates its crash points with `tests.support.crash.crash_points`: a real table over
moto that lets the Nth write commit and then stops the process, for every N the operation writes.
The step boundaries of each operation are listed in docs/ledger.md, "Crash points". The stories
the proof suite also walks (tests/reliability/stories.py) are taken from there, each with this
file's outcome and its own expectations of the write count and the result.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from shared.earning.core import provisional_member
from shared.jobs.audit import audit_table
from shared.ledger.audit import audit
from shared.ledger.models import Account
from shared.members import activity
from shared.members.flags import decide_flag
from shared.projections.watch import Finding
from tests.integration.ingest_support import CARD, EMAIL, NOW, Clock, program, purchase, refund
from tests.reliability.stories import (
    ORDER,
    WINDOW,
    activation_with_parked_refunds,
    expiry_job,
    link_merges_provisional_member,
    refund_voids_order_and_referral,
    transfer_confirm,
)
from tests.support.crash import Crash, CrashingServices, Story, crash_points, fresh_table

if TYPE_CHECKING:
    from collections.abc import Iterator

    from functions.services import Services


@pytest.fixture
def dynamo() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb")


def outcome(services: Services) -> tuple[object, ...]:
    """Balances, the entries (id, kind, member, what they moved), refunds still waiting, the audit."""
    entries, accounts, *_ = services.ledger_store.audit_records()
    report = audit_table(services.table)  # the arithmetic and every class of loss
    return (
        sorted((a.member, a.available, a.pending, a.held, a.merged_into) for a in accounts),
        sorted(
            (e.entry_id, e.kind.value, e.member, e.delta(Account.AVAILABLE), e.delta(Account.PENDING)) for e in entries
        ),
        services.earning_items.waiting_refunds("demo", ORDER),
        report.problems,
    )


def publish(services: Services, config: Any = WINDOW) -> None:
    services.programs.publish(config)


def test_a_crash_right_after_an_activation_loses_no_parked_refund(dynamo: Any) -> None:
    # The story, first on its own: 100 pending, a refund of 30 parked on it, the process
    # stops right after the activation commits; the next run must still apply the refund.
    clock = Clock()
    name = fresh_table(dynamo)
    given = CrashingServices(name, dynamo, clock, crash_after=None)
    publish(given)
    given.ingest.handle(purchase("1001", "100"))
    assert given.ingest.handle(refund("r-1", "1001", "30")).status == "parked"

    clock.now = NOW + timedelta(days=31)
    with pytest.raises(Crash):
        CrashingServices(name, dynamo, clock, crash_after=1).ingest.activate_due("demo")
    restarted = CrashingServices(name, dynamo, clock, crash_after=None)
    restarted.ingest.activate_due("demo")

    state = restarted.ledger_store.get_account("demo", provisional_member(EMAIL))
    assert state is not None and (state.available, state.pending) == (70, 0)
    assert restarted.earning_items.waiting_refunds("demo", ORDER) == []
    assert audit(*restarted.ledger_store.audit_records()).ok


def test_activation_with_parked_refunds_every_crash_point(dynamo: Any) -> None:
    clock = Clock()
    story = replace(activation_with_parked_refunds(clock), outcome=outcome)

    writes, expected = crash_points(dynamo, clock, story)
    # activation (with its follow-up mark), two claw-backs, two drops, the mark cleared, the walk's progress
    assert writes == 7
    assert expected[0] == [(provisional_member(EMAIL), 60, 0, 0, "")]  # type: ignore[index]


def test_an_order_after_its_parked_refund_every_crash_point(dynamo: Any) -> None:
    clock = Clock()

    def setup(services: Services) -> None:
        clock.now = NOW
        publish(services, program())
        services.ingest.handle(refund("r-1", "1001", "25"))

    def deliver(services: Services) -> object:
        return services.ingest.handle(purchase("1001", "100"))

    writes, expected = crash_points(dynamo, clock, Story(setup, deliver, deliver, outcome))
    assert writes == 4  # the new identity claimed, the earn, the claw-back, the refund off the list
    assert expected[0] == [(provisional_member(EMAIL), 75, 0, 0, "")]  # type: ignore[index]


def test_a_full_refund_in_the_window_voids_the_order_and_its_referral_every_crash_point(dynamo: Any) -> None:
    clock = Clock()
    # the recovery runs the activation job a day after the window: a reward left standing would activate
    story = replace(refund_voids_order_and_referral(clock), outcome=outcome)

    writes, expected = crash_points(dynamo, clock, story)
    # park, the void (with its mark), the refund off the list, the reward's void, the referral ended,
    # the mark cleared, the refund off the list again (the handler's own step, idempotent)
    assert writes == 7
    assert [row[:3] for row in expected[0]] == [("m-new", 0, 0), ("m-ref", 0, 0)]  # type: ignore[index]


def test_a_void_decided_on_a_flag_applied_by_the_job_every_crash_point(dynamo: Any) -> None:
    clock = Clock()
    member = provisional_member(EMAIL)

    def setup(services: Services) -> None:
        clock.now = NOW
        publish(services, program())
        services.watch.flag("demo", Finding(member, "card_velocity", "21 earns"), NOW, "cause-1")
        services.ingest.handle(purchase("1001", "50"))
        services.ingest.handle(refund("r-1", "1001", "10"))
        decide_flag(services.members, "demo", member, "void", "ops-1", "stolen card", NOW)

    def run(services: Services) -> object:
        clock.now = NOW + timedelta(hours=1)
        return services.ingest.activate_due("demo")

    writes, expected = crash_points(dynamo, clock, Story(setup, run, run, outcome))
    assert writes == 3  # the void (with its mark), the refund off the list, the mark cleared
    assert expected[0] == [(member, 0, 0, 0, "")] and expected[2] == []  # type: ignore[index]


def test_linking_an_identity_merges_the_provisional_member_every_crash_point(dynamo: Any) -> None:
    clock = Clock()
    card_member = provisional_member(CARD)

    def merged(services: Services) -> tuple[object, ...]:
        counters = services.members.tally_counters("demo", "m-1", activity.ACTIVITY)
        return (
            outcome(services),
            services.ingest.resolve(CARD, "demo"),
            activity.in_window(WINDOW, counters, NOW).spend,
        )

    story = replace(link_merges_provisional_member(clock, till_sales=("64", "6")), outcome=merged)
    writes, expected = crash_points(dynamo, clock, story)
    # the merge pointer, the transfer, the activity, the identity repointed (link and profile together)
    assert writes == 4
    accounts, *_ = expected[0]  # type: ignore[index]
    assert sorted(row[:3] for row in accounts) == sorted([(card_member, 0, 0), ("m-1", 0, 110)])
    assert expected[1:] == ("m-1", 110)  # type: ignore[index]


def test_the_expiry_job_every_crash_point(dynamo: Any) -> None:
    clock = Clock()
    story = replace(expiry_job(clock), outcome=outcome)

    writes, expected = crash_points(dynamo, clock, story)
    assert writes >= 4  # three expiries, and the walk's progress after each page
    assert [row[1] for row in expected[0]] == [0, 0, 0]  # type: ignore[index]


def test_a_partner_confirming_an_outbound_transfer_every_crash_point(dynamo: Any) -> None:
    clock = Clock()
    story = replace(transfer_confirm(clock), outcome=outcome)

    writes, expected = crash_points(dynamo, clock, story)
    assert writes == 1  # one transaction: the partner's retry replays it
    assert expected[0] == [("ann", 40, 0, 0, "")]  # type: ignore[index]
