"""Merging members moves pending points too: a worked story, balances and audit after every step."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from shared.earning.core import provisional_member
from shared.events.model import Identity, IdentityKind
from shared.ledger.models import Account, EntryKind
from shared.members import activity
from tests.integration.ingest_support import (
    CARD,
    EMAIL,
    NOW,
    Clock,
    account,
    audited,
    program,
    purchase,
    refund,
    wire,
)

if TYPE_CHECKING:
    from functions.services import Services
    from shared.earning.ingest import Ingest
    from shared.ledger.store import DynamoLedgerStore

TILL = "till:store-1"
WINDOW = program(return_window_days=30)


def registered_member_with_an_online_order(services: Services, ingest: Ingest) -> None:
    services.members.claim(EMAIL.key, "m-1", provisional=False)
    ingest.handle(purchase("1001", "40", identity=EMAIL))


def test_a_store_purchase_pending_on_a_provisional_member_follows_the_merge_to_the_end(
    services: Services, store: DynamoLedgerStore
) -> None:
    clock = Clock()
    ingest = wire(services, WINDOW, clock)
    card_member = provisional_member(CARD)

    # Given m-1 bought online (40 pending) and someone bought in store with a card nobody has claimed
    registered_member_with_an_online_order(services, ingest)
    ingest.handle(purchase("T1:R9", "64", identity=CARD, source=TILL))
    assert account(store, "m-1") == (0, 40)
    assert account(store, card_member) == (0, 64)
    audited(store)

    # When the card is linked to m-1
    result = ingest.link("demo", CARD, EMAIL)

    # Then m-1's balance shows everything at once, the store's pending points included
    assert (result.survivor, result.merged) == ("m-1", card_member)
    assert account(store, "m-1") == (0, 104)
    assert account(store, card_member) == (0, 0)
    moved_in = [e for e in store.entries("demo", "m-1") if e.kind is EntryKind.TRANSFER]
    assert [e.delta(Account.PENDING) for e in moved_in] == [64]
    audited(store)

    # And a redelivery of the old store event changes nothing
    assert ingest.handle(purchase("T1:R9", "64", identity=CARD, source=TILL)).status == "replayed"
    assert account(store, "m-1") == (0, 104)
    audited(store)

    # When the return windows close and the hourly job runs
    done = ingest.activate_due("demo", NOW + timedelta(days=31))

    # Then both activate on m-1, who now holds the store purchase's lot
    assert sorted(done) == ["shopify:acme.myshopify.com:1001", f"{TILL}:T1:R9"]
    assert account(store, "m-1") == (104, 0)
    activation = store.get_entry("demo", f"settle:{TILL}:T1:R9")
    assert activation is not None and activation.member == "m-1"
    assert ingest.activate_due("demo", NOW + timedelta(days=31)) == []
    audited(store)

    # When a quarter of the store order is refunded after the merge
    ingest.handle(refund("r-9", "T1:R9", "16", source=TILL))

    # Then the points are clawed back from m-1, in proportion
    assert account(store, "m-1") == (88, 0)
    clawback = store.get_entry("demo", f"{TILL}:r-9")
    assert clawback is not None and clawback.member == "m-1" and clawback.delta(Account.AVAILABLE) == -16
    audited(store)


def test_an_order_refunded_in_full_in_its_window_after_the_merge_is_voided_on_the_survivor(
    services: Services,
    store: DynamoLedgerStore,
) -> None:
    ingest = wire(services, WINDOW)
    registered_member_with_an_online_order(services, ingest)
    ingest.handle(purchase("T1:R9", "64", identity=CARD, source=TILL))
    ingest.link("demo", CARD, EMAIL)

    # When the store order is refunded in full before its window closes
    outcome = ingest.handle(refund("r-9", "T1:R9", "64", source=TILL))

    # Then its pending earn is voided on m-1, which now holds it, and its activity goes with it
    assert outcome.status == "skipped"
    assert account(store, "m-1") == (0, 40)
    void = store.get_entry("demo", f"settle:{TILL}:T1:R9")
    assert void is not None and (void.kind, void.member) == (EntryKind.VOID, "m-1")
    counters = services.members.view("demo", "m-1", [activity.ACTIVITY]).tally(activity.ACTIVITY).counters
    assert activity.in_window(WINDOW, counters, NOW).spend == 40
    assert ingest.activate_due("demo", NOW + timedelta(days=31)) == ["shopify:acme.myshopify.com:1001"]
    assert account(store, "m-1") == (40, 0)
    audited(store)


def test_a_refund_parked_before_the_merge_claws_back_from_the_survivor_at_activation(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest = wire(services, WINDOW)
    registered_member_with_an_online_order(services, ingest)
    ingest.handle(purchase("T1:R9", "64", identity=CARD, source=TILL))
    # Given a partial refund while the store order is still pending (it waits for the activation)
    assert ingest.handle(refund("r-9", "T1:R9", "32", source=TILL)).status == "parked"

    # When the card is linked, then the window closes
    ingest.link("demo", CARD, EMAIL)
    audited(store)
    ingest.activate_due("demo", NOW + timedelta(days=31))

    # Then the waiting refund took half of the store's points back from m-1
    assert account(store, "m-1") == (40 + 64 - 32, 0)
    assert services.earning_items.waiting_refunds("demo", f"{TILL}:T1:R9") == []
    audited(store)


def test_pending_points_follow_two_merges_in_a_row(services: Services, store: DynamoLedgerStore) -> None:
    ingest = wire(services, WINDOW)
    # Given two strangers' pending earns (a card, an e-mail), merged into one provisional member
    ingest.handle(purchase("T1:R9", "64", identity=CARD, source=TILL))
    ingest.handle(purchase("1001", "40", identity=EMAIL))
    first = ingest.link("demo", EMAIL, CARD)
    assert account(store, first.survivor) == (0, 104)
    audited(store)

    # When that member is linked to a registered member's account
    member = Identity(kind=IdentityKind.MEMBER, value="m-7")
    services.members.claim(Identity(kind=IdentityKind.PHONE, value="b" * 64).key, "m-7", provisional=False)
    second = ingest.link("demo", member, EMAIL)

    # Then m-7 holds both pending earns, and they activate there
    assert (second.survivor, second.merged) == ("m-7", first.survivor)
    assert account(store, "m-7") == (0, 104)
    audited(store)
    assert len(ingest.activate_due("demo", NOW + timedelta(days=31))) == 2
    assert account(store, "m-7") == (104, 0)
    audited(store)


def test_an_earn_after_the_link_lands_on_the_survivor_and_activity_follows_the_merge(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest = wire(services, WINDOW)
    registered_member_with_an_online_order(services, ingest)
    ingest.handle(purchase("T1:R9", "64", identity=CARD, source=TILL))
    ingest.link("demo", CARD, EMAIL)
    ingest.link("demo", CARD, EMAIL)  # linking again changes nothing

    outcome = ingest.handle(purchase("T1:R10", "10", identity=CARD, source=TILL))

    assert outcome.member == "m-1"
    assert account(store, "m-1") == (0, 114)
    counters = services.members.view("demo", "m-1", [activity.ACTIVITY]).tally(activity.ACTIVITY).counters
    assert activity.in_window(WINDOW, counters, NOW).spend == 114
    audited(store)


def test_the_audit_notices_a_pending_earn_left_behind_or_lost(services: Services, store: DynamoLedgerStore) -> None:
    from shared.infra import keys
    from shared.ledger.audit import audit
    from shared.ledger.store import pending_item

    ingest = wire(services, WINDOW)
    registered_member_with_an_online_order(services, ingest)
    ingest.handle(purchase("T1:R9", "64", identity=CARD, source=TILL))
    ingest.link("demo", CARD, EMAIL)
    [moved] = [p for p in store.get_pending_earns("demo", "m-1") if p.entry_id == f"{TILL}:T1:R9"]
    # When the moved pending earn turns up under a member its entries never gave it to
    services.table.client.delete_item(
        TableName=services.table.name,
        Key=services.table.key(keys.pending("demo", "m-1", moved.entry_id)),
    )
    services.table.client.put_item(
        TableName=services.table.name, Item=pending_item(moved.model_copy(update={"member": "someone"}))
    )

    # Then the audit says where the entries put it, and that the balances disagree with the items
    problems = audit(*store.audit_records()).problems
    assert any(f"pending earn {moved.entry_id}" in p and "held by m-1" in p for p in problems), problems
    assert any("m-1: open pending earns total" in p for p in problems), problems
