"""A refund after the points were spent: written off visibly, or recovered as a debt; over-refunds refused.

Issue 12, "A refund after spending is silently written off": the member kept 300 points of value
and the shortfall sat only in `details.shortfall`; refunds adding up to more than their order
(752 of 470) passed unnoticed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from shared.earning.core import provisional_member
from shared.errors import RefundExceedsOrderError
from shared.ledger.commands import Spend
from shared.ledger.models import EntryKind
from shared.program.config import RefundRules, ShortfallPolicy
from shared.projections.figures import program_figures, record_entry
from tests.integration.ingest_support import EMAIL, NOW, Clock, account, audited, program, purchase, refund, wire

if TYPE_CHECKING:
    from functions.services import Services
    from shared.earning.ingest import Ingest
    from shared.ledger.store import DynamoLedgerStore

MEMBER = provisional_member(EMAIL)
ORDER = "shopify:acme.myshopify.com:1001"


def spend_everything(services: Services, points: int, ref: str = "s-1") -> None:
    cmd = Spend(program="demo", member=MEMBER, points=points, source="redemption", external_id=ref, reason="gift card")
    services.ledger.spend(cmd, at=NOW)


def figures(services: Services) -> dict[str, int]:
    """Every entry projected into the program figures (as the stream watcher does), program to date."""
    entries, *_ = services.ledger_store.audit_records()
    for entry in entries:
        record_entry(services.figure_items, services.programs, entry, sleep=lambda _: None)
    config = services.programs.get("demo")
    day = NOW.date()
    return dict(program_figures(services.figure_items, config, day, day, day).to_date.counters)


def bought_and_spent(services: Services, config_changes: dict[str, object]) -> Ingest:
    ingest = wire(services, program(**config_changes), Clock())
    ingest.handle(purchase("1001", "300"))
    spend_everything(services, 300)
    return ingest


def test_a_refund_after_spending_is_written_off_visibly(services: Services, store: DynamoLedgerStore) -> None:
    # Given the default policy, a member who earned 300 on an order and spent them all
    ingest = bought_and_spent(services, {})

    # When the order is refunded in full
    outcome = ingest.handle(refund("r-1", "1001", "300"))

    # Then nothing could be taken back, and the entry says what was written off, in words too
    assert outcome.status == "posted" and account(store, MEMBER) == (0, 0)
    clawback = store.get_entry("demo", "shopify:acme.myshopify.com:r-1")
    assert clawback is not None and clawback.kind is EntryKind.CLAWBACK
    assert clawback.details["shortfall"] == "300" and clawback.details["shortfall_policy"] == "write_off"
    assert "300 already spent: written off" in clawback.details["explanation"]

    # And the program figures count what was written off
    counted = figures(services)
    assert counted["shortfall_written_off"] == 300
    assert counted.get("shortfall_owed", 0) == 0
    audited(store)


def test_a_refund_after_spending_is_recovered_from_later_earns_as_a_debt(
    services: Services, store: DynamoLedgerStore
) -> None:
    # Given a program that recovers shortfalls, and a member who spent the 300 an order earned
    ingest = bought_and_spent(services, {"refunds": RefundRules(shortfall=ShortfallPolicy.RECOVER)})

    # When the order is refunded in full
    ingest.handle(refund("r-1", "1001", "300"))

    # Then the member owes the 300 points, on the balance and in the statement
    state = store.get_account("demo", MEMBER)
    assert state is not None and (state.available, state.debt) == (0, 300)
    clawback = store.get_entry("demo", "shopify:acme.myshopify.com:r-1")
    assert clawback is not None and clawback.details["shortfall_policy"] == "recover"
    assert "300 already spent: owed, repaid from the next points earned" in clawback.details["explanation"]
    audited(store)

    # When the member earns again: the debt is repaid first, and the entry says so
    ingest.handle(purchase("1002", "100"))
    state = store.get_account("demo", MEMBER)
    assert state is not None and (state.available, state.debt) == (0, 200)
    repaying = store.get_entry("demo", "shopify:acme.myshopify.com:1002")
    assert repaying is not None and repaying.details["debt_repaid"] == "100"
    assert repaying.reason.endswith("(100 points repaid what was owed)")
    ingest.handle(purchase("1003", "250"))
    state = store.get_account("demo", MEMBER)
    assert state is not None and (state.available, state.debt) == (50, 0)
    audited(store)

    # And the figures count the debt made and repaid; the liability still reconciles
    counted = figures(services)
    assert (counted["shortfall_owed"], counted["debt_repaid"]) == (300, 300)
    assert counted.get("shortfall_written_off", 0) == 0


def test_pending_points_repay_a_debt_when_they_activate(services: Services, store: DynamoLedgerStore) -> None:
    rules = {"refunds": RefundRules(shortfall=ShortfallPolicy.RECOVER), "return_window_days": 30}
    ingest = wire(services, program(**rules), Clock())
    ingest.handle(purchase("1001", "300"))
    ingest.activate_due("demo", NOW + timedelta(days=31))
    spend_everything(services, 300)
    ingest.handle(refund("r-1", "1001", "120"))
    ingest.handle(purchase("1002", "100"))  # pending: repays nothing until it activates
    state = store.get_account("demo", MEMBER)
    assert state is not None and (state.available, state.pending, state.debt) == (0, 100, 120)
    ingest.activate_due("demo", NOW + timedelta(days=31))  # the second window closes too
    state = store.get_account("demo", MEMBER)
    assert state is not None and (state.available, state.pending, state.debt) == (0, 0, 20)
    audited(store)


def test_a_debt_moves_with_a_merge(services: Services, store: DynamoLedgerStore) -> None:
    from tests.integration.ingest_support import CARD

    ingest = wire(services, program(refunds=RefundRules(shortfall=ShortfallPolicy.RECOVER)), Clock())
    card_member = provisional_member(CARD)
    ingest.handle(purchase("T1:R1", "80", identity=CARD, source="till:store-1"))
    services.ledger.spend(
        Spend(program="demo", member=card_member, points=80, source="redemption", external_id="s-9", reason="x"),
        at=NOW,
    )
    ingest.handle(refund("r-9", "T1:R1", "80", source="till:store-1"))
    services.members.claim(EMAIL.key, "m-1", provisional=False)
    ingest.link("demo", CARD, EMAIL)
    survivor = store.get_account("demo", "m-1")
    assert survivor is not None and survivor.debt == 80
    closed = store.get_account("demo", card_member)
    assert closed is not None and closed.debt == 0
    audited(store)


def test_refunds_adding_up_to_more_than_the_order_are_refused_with_the_reason(
    services: Services, store: DynamoLedgerStore
) -> None:
    # Given an order of 470 and a first refund of 400
    ingest = wire(services, program(), Clock())
    ingest.handle(purchase("1001", "470"))
    ingest.handle(refund("r-1", "1001", "400"))
    assert account(store, MEMBER) == (70, 0)

    # When a second refund of 352 arrives (752 of 470 in all)
    with pytest.raises(RefundExceedsOrderError) as refused:
        ingest.handle(refund("r-2", "1001", "352"))

    # Then it is refused with the numbers (the ingest function dead-letters it with this reason), nothing taken
    assert refused.value.code == "refund_exceeds_order"
    assert refused.value.detail == (
        f"refund shopify:acme.myshopify.com:r-2 of 352 would bring the refunds of {ORDER} to 752, more than its 470"
    )
    assert account(store, MEMBER) == (70, 0)
    assert store.get_entry("demo", "shopify:acme.myshopify.com:r-2") is None
    audited(store)


def test_an_over_refund_waiting_for_its_order_is_refused_without_losing_the_order(
    services: Services, store: DynamoLedgerStore
) -> None:
    # Given two refunds that arrived before their order, adding up to more than it
    ingest = wire(services, program(), Clock())
    ingest.handle(refund("r-1", "1001", "400"))
    ingest.handle(refund("r-2", "1001", "352"))

    # When the order arrives
    outcome = ingest.handle(purchase("1001", "470"))

    # Then the order posts, the first refund claws back, the second is refused and kept with its reason
    assert outcome.status == "posted"
    assert account(store, MEMBER) == (70, 0)
    assert store.get_entry("demo", "shopify:acme.myshopify.com:r-2") is None
    assert services.earning_items.waiting_refunds("demo", ORDER) == []
    refused = services.earning_items.refused_refunds("demo", ORDER)
    assert list(refused) == ["shopify:acme.myshopify.com:r-2"]
    assert "752, more than its 470" in refused["shopify:acme.myshopify.com:r-2"]
    audited(store)
