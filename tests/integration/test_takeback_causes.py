"""A take-back (void, claw-back, reversal, expiry) happens only for a cause that exists, and names it.

Issue 12, "Redelivery voids held points": a pending earn with no purchase amount behind it (partner
points, or any earn of a flagged member) was treated as "refunded in full" when the same event
arrived again, because the check compared no refunds at all with a basis of 0.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from shared.earning.core import provisional_member
from shared.ledger.commands import Earn, Reverse, Void
from shared.ledger.models import EntryKind
from shared.members.flags import decide_flag
from shared.projections.watch import Finding
from tests.integration.ingest_support import (
    EMAIL,
    NOW,
    PARTNER,
    Clock,
    account,
    audited,
    behaviour,
    partner_points,
    program,
    purchase,
    refund,
    wire,
)

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.store import DynamoLedgerStore

from shared.events.model import BehaviourAction

PARTNER_MEMBER = provisional_member(PARTNER)


def flag(services: Services, member: str) -> None:
    services.watch.flag("demo", Finding(member, "exchange_burst", "11 partner credits in the hour"), NOW, "cause-1")


def test_a_redelivered_partner_file_keeps_a_flagged_members_held_points(
    services: Services, store: DynamoLedgerStore
) -> None:
    # Given a member flagged after a burst of partner credits, whose next partner credit is held
    ingest = wire(services, program(), Clock())
    ingest.handle(partner_points("p-1", 100))
    flag(services, PARTNER_MEMBER)
    held = ingest.handle(partner_points("p-2", 300))
    assert held.status == "posted" and "held" in held.note
    assert account(store, PARTNER_MEMBER) == (100, 300)

    # When the partner re-sends its file (the same events again)
    assert ingest.handle(partner_points("p-1", 100)).status == "replayed"
    assert ingest.handle(partner_points("p-2", 300)).status == "replayed"

    # Then nothing was voided: there is no refund, so there is no cause to take the points back
    assert account(store, PARTNER_MEMBER) == (100, 300)
    assert store.get_entry("demo", "settle:partner:airline:p-2") is None
    audited(store)

    # And the operator's later release finds the held points and releases them
    decide_flag(services.members, "demo", PARTNER_MEMBER, "release", "ops-1", "a partner promotion", NOW)
    settled = ingest.settle_held("demo", PARTNER_MEMBER, "release", "a partner promotion", NOW)
    assert settled.released == ["partner:airline:p-2"]
    assert account(store, PARTNER_MEMBER) == (400, 0)
    audited(store)


def test_a_redelivered_behaviour_event_keeps_a_flagged_members_held_points(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest = wire(services, program(behaviour={"review": 20}), Clock())
    flag(services, "m-1")
    event = behaviour(BehaviourAction.REVIEW, "ev-1", "m-1", subject="sku-1")
    assert ingest.handle(event).status == "posted"
    assert ingest.handle(event).status == "replayed"
    assert account(store, "m-1") == (0, 20)
    audited(store)


def test_a_void_for_a_refund_names_the_refunds_that_justify_it(services: Services, store: DynamoLedgerStore) -> None:
    # Given a pending order refunded in full within its window, in two parts
    ingest = wire(services, program(return_window_days=30), Clock())
    ingest.handle(purchase("2001", "50"))
    ingest.handle(refund("r-1", "2001", "20"))
    ingest.handle(refund("r-2", "2001", "30"))

    # Then the void names its cause: the refunds, what they add up to, and the order's amount
    void = store.get_entry("demo", "settle:shopify:acme.myshopify.com:2001")
    assert void is not None and void.kind is EntryKind.VOID
    assert void.details["cause_kind"] == "refund"
    assert void.details["cause"] == "shopify:acme.myshopify.com:r-1 shopify:acme.myshopify.com:r-2"
    assert void.details["refunded"] == "50" and void.details["basis_amount"] == "50"
    assert account(store, provisional_member(EMAIL)) == (0, 0)
    audited(store)


def test_a_void_after_review_names_the_flag_decision(services: Services, store: DynamoLedgerStore) -> None:
    ingest = wire(services, program(), Clock())
    member = provisional_member(EMAIL)
    flag(services, member)
    ingest.handle(purchase("3001", "40"))
    decide_flag(services.members, "demo", member, "void", "ops-1", "stolen card", NOW)
    ingest.settle_held("demo", member, "void", "stolen card", NOW)
    void = store.get_entry("demo", "settle:shopify:acme.myshopify.com:3001")
    assert void is not None and void.kind is EntryKind.VOID
    assert (void.details["cause_kind"], void.details["cause"]) == ("flag", f"{member}:voided")
    audited(store)


def test_the_ledger_refuses_a_void_or_reversal_that_names_no_cause(
    services: Services, store: DynamoLedgerStore
) -> None:
    wire(services, program(), Clock())
    earn = Earn(program="demo", member="m-1", points=10, source="shop", external_id="o-1", reason="x", event_time=NOW)
    services.ledger.earn(earn.model_copy(update={"pending": True}), at=NOW + timedelta(minutes=1))
    with pytest.raises(ValidationError):
        Void(program="demo", member="m-1", entry_id="shop:o-1")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Reverse(program="demo", member="m-1", entry_id="shop:o-1", reason="x")  # type: ignore[call-arg]
    assert account(store, "m-1") == (0, 10)
