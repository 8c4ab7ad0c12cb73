"""Multi-step operations are safe at every step boundary: a crash after any write, then the next
delivery or run, ends exactly as a run without the crash (issue 12, "A crash loses a refund").

Each story enumerates its crash points with `tests.support.crash.crash_points`: a real table over
moto that lets the Nth write commit and then stops the process, for every N the operation writes.
The step boundaries of each operation are listed in docs/ledger.md, "Crash points".
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from shared.earning.core import provisional_member
from shared.events.model import BehaviourAction
from shared.jobs.audit import audit_table
from shared.jobs.walk import JobInput
from shared.ledger.audit import audit
from shared.ledger.commands import Authorise, Capture, Earn
from shared.ledger.models import Account
from shared.members import activity
from shared.members.flags import decide_flag
from shared.projections.watch import Finding
from tests.integration.ingest_support import CARD, EMAIL, NOW, Clock, behaviour, program, purchase, refund
from tests.support.crash import Crash, CrashingServices, Story, crash_points, fresh_table

if TYPE_CHECKING:
    from collections.abc import Iterator

    from functions.services import Services

WINDOW = program(return_window_days=30, behaviour={"referral": 200})
ORDER = "shopify:acme.myshopify.com:1001"


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

    def setup(services: Services) -> None:
        clock.now = NOW
        publish(services)
        services.ingest.handle(purchase("1001", "100"))
        services.ingest.handle(refund("r-1", "1001", "30"))
        services.ingest.handle(refund("r-2", "1001", "10"))

    def activate(services: Services) -> object:
        clock.now = NOW + timedelta(days=31)
        return services.ingest.activate_due("demo")

    writes, expected = crash_points(dynamo, clock, Story(setup, activate, activate, outcome))
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

    def setup(services: Services) -> None:
        clock.now = NOW
        publish(services)
        services.members.claim(EMAIL.key, "m-new", provisional=False)
        services.ingest.handle(behaviour(BehaviourAction.REFERRAL, "ref-1", "m-ref", subject="m-new"))
        services.ingest.handle(purchase("1001", "100"))

    def refund_in_full(services: Services) -> object:
        clock.now = NOW
        return services.ingest.handle(refund("r-1", "1001", "100"))

    def next_delivery_and_run(services: Services) -> object:
        refund_in_full(services)
        clock.now = NOW + timedelta(days=31)  # had the referral reward been left, it would activate now
        return services.ingest.activate_due("demo")

    writes, expected = crash_points(dynamo, clock, Story(setup, refund_in_full, next_delivery_and_run, outcome))
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

    def setup(services: Services) -> None:
        clock.now = NOW
        publish(services)
        services.members.claim(EMAIL.key, "m-1", provisional=False)
        services.ingest.handle(purchase("1001", "40", identity=EMAIL))
        services.ingest.handle(purchase("T1:R9", "64", identity=CARD, source="till:store-1"))
        services.ingest.handle(purchase("T1:R10", "6", identity=CARD, source="till:store-1"))

    def link(services: Services) -> object:
        return services.ingest.link("demo", CARD, EMAIL)

    def merged(services: Services) -> tuple[object, ...]:
        counters = services.members.tally_counters("demo", "m-1", activity.ACTIVITY)
        return (
            outcome(services),
            services.ingest.resolve(CARD, "demo"),
            activity.in_window(WINDOW, counters, NOW).spend,
        )

    writes, expected = crash_points(dynamo, clock, Story(setup, link, link, merged))
    # the merge pointer, the transfer, the activity, the identity repointed (link and profile together)
    assert writes == 4
    accounts, *_ = expected[0]  # type: ignore[index]
    assert sorted(row[:3] for row in accounts) == sorted([(card_member, 0, 0), ("m-1", 0, 110)])
    assert expected[1:] == ("m-1", 110)  # type: ignore[index]


def test_the_expiry_job_every_crash_point(dynamo: Any) -> None:
    clock = Clock()

    def setup(services: Services) -> None:
        clock.now = NOW - timedelta(days=5)  # the program started before the lots were earned
        publish(services, program())
        clock.now = NOW
        for n, member in enumerate(("ann", "bob", "cy")):
            cmd = Earn(
                program="demo",
                member=member,
                points=10 + n,
                source="shop",
                external_id=f"o-{n}",
                reason="purchase",
                event_time=NOW - timedelta(days=4),
                expires_at=NOW - timedelta(days=n + 1),
            )
            services.ledger.earn(cmd, at=NOW - timedelta(days=4))

    def run(services: Services) -> object:
        return services.expiry_job.run(JobInput(now=NOW))

    writes, expected = crash_points(dynamo, clock, Story(setup, run, run, outcome))
    assert writes >= 4  # three expiries, and the walk's progress after each page
    assert [row[1] for row in expected[0]] == [0, 0, 0]  # type: ignore[index]


def test_a_partner_confirming_an_outbound_transfer_every_crash_point(dynamo: Any) -> None:
    clock = Clock()

    def setup(services: Services) -> None:
        clock.now = NOW
        publish(services, program())
        earn = Earn(
            program="demo", member="ann", points=100, source="shop", external_id="o-1", reason="x", event_time=NOW
        )
        services.ledger.earn(earn)
        hold = Authorise(
            program="demo",
            member="ann",
            points=60,
            source="partner-out:acme",
            external_id="t-1",
            reason="transfer to acme",
            lapses_at=NOW + timedelta(days=1),
        )
        services.ledger.authorise(hold)

    def confirm(services: Services) -> object:
        cmd = Capture(
            program="demo",
            member="ann",
            hold_id="partner-out:acme:t-1",
            reason="transfer to acme confirmed",
            counter=Account.PARTNER,
            counter_owner="acme",
        )
        return services.ledger.capture(cmd).entry_id

    writes, expected = crash_points(dynamo, clock, Story(setup, confirm, confirm, outcome))
    assert writes == 1  # one transaction: the partner's retry replays it
    assert expected[0] == [("ann", 40, 0, 0, "")]  # type: ignore[index]
