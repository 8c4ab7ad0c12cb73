"""A flagged member's earns are held until an operator decides: released (activated) or voided."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from shared.earning.core import provisional_member
from shared.ledger.models import EntryKind
from shared.members import activity
from shared.members.flags import FlagDecidedError, FlagNotFoundError, decide_flag, open_flags
from shared.projections.watch import Finding
from tests.integration.ingest_support import EMAIL, NOW, Clock, account, audited, program, purchase, refund, wire

if TYPE_CHECKING:
    from functions.services import Services
    from shared.earning.ingest import Ingest
    from shared.ledger.store import DynamoLedgerStore
    from shared.program.config import ProgramConfig

MEMBER = provisional_member(EMAIL)
ORDER = "shopify:acme.myshopify.com:2002"


def flag(services: Services, member: str = MEMBER) -> None:
    services.watch.flag("demo", Finding(member, "card_velocity", "21 earns from card 4000 in an hour"), NOW, "cause-1")


def flagged_member_with_a_held_order(services: Services, config: ProgramConfig, clock: Clock) -> Ingest:
    ingest = wire(services, config, clock)
    ingest.handle(purchase("2001", "30"))  # earned before the flag: not held
    flag(services)
    outcome = ingest.handle(purchase("2002", "50"))
    assert outcome.status == "posted" and "held" in outcome.note
    return ingest


def test_a_flagged_members_earn_is_held_with_its_reason_and_the_job_leaves_it(
    services: Services, store: DynamoLedgerStore
) -> None:
    # Given a program without a return window, and a member flagged after a first order
    clock = Clock()
    ingest = flagged_member_with_a_held_order(services, program(), clock)

    # Then the order after the flag is pending, held, with the flag's reason in the entry
    assert account(store, MEMBER) == (30, 50)
    entry = store.get_entry("demo", ORDER)
    assert entry is not None and entry.kind is EntryKind.EARN_PENDING
    assert entry.details["held"] == "member flagged: 21 earns from card 4000 in an hour"
    assert entry.reason == "online purchase (held for review)"
    audited(store)

    # And the hourly job does not activate it while the flag is open, days later either
    assert ingest.activate_due("demo", NOW + timedelta(hours=1)) == []
    assert ingest.activate_due("demo", NOW + timedelta(days=20)) == []
    assert account(store, MEMBER) == (30, 50)


def test_releasing_the_flag_activates_the_held_earn_and_records_who_and_why(
    services: Services, store: DynamoLedgerStore
) -> None:
    clock = Clock()
    ingest = flagged_member_with_a_held_order(services, program(), clock)
    members = services.members
    assert [f.member for f in open_flags(members, "demo")] == [MEMBER]

    # When an operator releases it
    at = NOW + timedelta(days=20)  # long after the job stopped looking at its day
    assert decide_flag(members, "demo", MEMBER, "release", "ops-1", "family card, checked", at)
    settled = ingest.settle_held("demo", MEMBER, "release", "family card, checked", at)

    # Then the points are available, the decision is on record, and the flag is closed
    assert settled.released == [ORDER] and settled.voided == settled.still_pending == []
    assert account(store, MEMBER) == (80, 0)
    activation = store.get_entry("demo", f"settle:{ORDER}")
    assert activation is not None and activation.reason == "released after review: family card, checked"
    decisions = [(r.decision, r.operator, r.reason) for r in members.flag_log("demo", MEMBER)]
    assert ("released", "ops-1", "family card, checked") in decisions
    assert open_flags(members, "demo") == []
    audited(store)

    # And deciding the same again is a harmless retry; deciding otherwise is refused
    assert not decide_flag(members, "demo", MEMBER, "release", "ops-1", "again", at)
    assert ingest.settle_held("demo", MEMBER, "release", "again", at).released == []
    with pytest.raises(FlagDecidedError):
        decide_flag(members, "demo", MEMBER, "void", "ops-2", "changed my mind", at)
    with pytest.raises(FlagNotFoundError):
        decide_flag(members, "demo", "nobody", "release", "ops-1", "?", at)


def test_a_release_inside_the_return_window_leaves_the_points_pending_until_it_closes(
    services: Services, store: DynamoLedgerStore
) -> None:
    clock = Clock()
    ingest = flagged_member_with_a_held_order(services, program(return_window_days=30), clock)
    members = services.members

    # When the operator releases the flag ten days in
    at = NOW + timedelta(days=10)
    decide_flag(members, "demo", MEMBER, "release", "ops-1", "checked", at)
    settled = ingest.settle_held("demo", MEMBER, "release", "checked", at)

    # Then the held order stays pending until its window closes, and the job activates it then
    assert settled.still_pending == [ORDER] and settled.released == []
    assert account(store, MEMBER) == (0, 80)
    assert sorted(ingest.activate_due("demo", NOW + timedelta(days=31))) == [
        "shopify:acme.myshopify.com:2001",
        ORDER,
    ]
    assert account(store, MEMBER) == (80, 0)
    audited(store)


def test_voiding_the_flag_voids_the_held_earns_and_their_activity(services: Services, store: DynamoLedgerStore) -> None:
    clock = Clock()
    ingest = flagged_member_with_a_held_order(services, program(), clock)
    members = services.members

    # When the operator confirms fraud
    at = NOW + timedelta(hours=3)
    decide_flag(members, "demo", MEMBER, "void", "ops-1", "stolen card", at)
    settled = ingest.settle_held("demo", MEMBER, "void", "stolen card", at)

    # Then the held earn is voided back to issuance; the earn before the flag stays
    assert settled.voided == [ORDER]
    assert account(store, MEMBER) == (30, 0)
    void = store.get_entry("demo", f"settle:{ORDER}")
    assert void is not None and void.kind is EntryKind.VOID and void.reason == "voided after review: stolen card"
    counters = services.members.view("demo", MEMBER, [activity.ACTIVITY]).tally(activity.ACTIVITY).counters
    assert activity.in_window(program(), counters, NOW).points == 30
    assert ingest.activate_due("demo", at + timedelta(hours=1)) == []
    audited(store)


def test_the_job_applies_a_decision_to_held_earns_the_decision_did_not_reach(
    services: Services, store: DynamoLedgerStore
) -> None:
    # Given a held earn, and a void decision recorded but not applied (a crash right after recording it)
    clock = Clock()
    ingest = flagged_member_with_a_held_order(services, program(), clock)
    decide_flag(services.members, "demo", MEMBER, "void", "ops-1", "stolen card", NOW + timedelta(minutes=30))

    # When the hourly job runs
    ingest.activate_due("demo", NOW + timedelta(hours=1))

    # Then it voids the held earn instead of activating it
    void = store.get_entry("demo", f"settle:{ORDER}")
    assert void is not None and void.kind is EntryKind.VOID
    assert account(store, MEMBER) == (30, 0)
    audited(store)


def test_a_refund_of_a_held_order_waits_and_the_void_settles_it(services: Services, store: DynamoLedgerStore) -> None:
    clock = Clock()
    ingest = flagged_member_with_a_held_order(services, program(), clock)
    assert ingest.handle(refund("r-1", "2002", "10")).status == "parked"

    decide_flag(services.members, "demo", MEMBER, "void", "ops-1", "stolen card", NOW)
    ingest.settle_held("demo", MEMBER, "void", "stolen card", NOW)

    assert account(store, MEMBER) == (30, 0)
    assert services.earning_items.waiting_refunds("demo", ORDER) == []
    assert store.get_entry("demo", "shopify:acme.myshopify.com:r-1") is None  # nothing left to claw back
    audited(store)
