"""Referrals: recorded when the app reports them, paid by the platform when the referred member first buys."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from shared.earning.store import EarningItems
from shared.events.model import BehaviourAction
from shared.ledger.models import Account, EntryKind
from shared.ledger.store import DynamoLedgerStore
from shared.members.flags import decide_flag
from shared.members.view import REFERRAL_AWAITING, REFERRAL_NOT_ELIGIBLE, REFERRAL_PAID, Referral
from shared.program.config import BehaviourRules, Caps
from shared.projections.watch import Finding
from tests.integration.ingest_support import (
    CARD,
    EMAIL,
    NOW,
    Clock,
    account,
    audited,
    behaviour,
    program,
    purchase,
    refund,
    wire,
)
from tests.support.services import table_services

if TYPE_CHECKING:
    from collections.abc import Callable

    from functions.services import Services
    from shared.earning.core import Outcome
    from shared.earning.ingest import Ingest
    from shared.infra.table import Table
    from shared.ledger.contract import Change

REFERRAL = BehaviourAction.REFERRAL
RULES = BehaviourRules(referral=500, sign_in=5)


def refer(ingest: Ingest, referrer: str, referred: str, event_id: str = "r-1") -> Outcome:
    return ingest.handle(behaviour(REFERRAL, event_id, referrer, subject=referred))


def referral_of(services: Services, member: str) -> Referral | None:
    return services.members.view("demo", member, full=False, referral=True).referral


def new_member(services: Services, member: str = "m-new") -> str:
    """A registered member who signed up with an e-mail and has nothing posted yet."""
    services.members.claim(EMAIL.key, member, provisional=False)
    return member


def test_the_referrer_is_paid_once_when_the_referred_member_first_buys(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest = wire(services, program(behaviour=RULES))
    referred = new_member(services)

    # When m-ref refers the new member (the app sends it twice)
    recorded = ingest.handle(behaviour(REFERRAL, "r-1", "m-ref", subject=referred))
    replayed = ingest.handle(behaviour(REFERRAL, "r-1", "m-ref", subject=referred))

    # Then the referral is recorded and nothing is paid yet
    assert (recorded.status, replayed.status) == ("recorded", "recorded")
    assert recorded.note == "referral of m-new: paid when m-new first buys"
    assert store.get_account("demo", "m-ref") is None
    found = referral_of(services, referred)
    assert found is not None and (found.referrer, found.status) == ("m-ref", REFERRAL_AWAITING)

    # When the referred member buys online, then again
    first = ingest.handle(purchase("1001", "40", identity=EMAIL))
    ingest.handle(purchase("1002", "10", identity=EMAIL))

    # Then the referrer got the referral points once, explained, and the referral is closed
    assert (first.status, first.member) == ("posted", referred)
    assert account(store, referred) == (50, 0)
    assert account(store, "m-ref") == (500, 0)
    reward = store.get_entry("demo", "referral:m-new")
    assert reward is not None and reward.member == "m-ref" and reward.kind is EntryKind.EARN
    assert reward.reason == "referral: m-new made a first purchase"
    assert reward.details["purchase"] == "shopify:acme.myshopify.com:1001"
    assert reward.details["referral_event"] == "app:app:r-1"
    paid = referral_of(services, referred)
    assert paid is not None and (paid.status, paid.reward, paid.purchase) == (
        REFERRAL_PAID,
        "referral:m-new",
        "shopify:acme.myshopify.com:1001",
    )
    # And a redelivered first purchase pays nothing more
    assert ingest.handle(purchase("1001", "40", identity=EMAIL)).status == "replayed"
    assert account(store, "m-ref") == (500, 0)
    audited(store)


def test_one_referrer_per_member_nobody_refers_themself_and_only_new_members(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest = wire(services, program(behaviour=RULES))
    referred = new_member(services)
    ingest.handle(behaviour(BehaviourAction.SIGN_IN, "s-1", "m-old"))  # m-old has points

    outcomes = [
        refer(ingest, "m-ref", referred, "r-1"),
        refer(ingest, "m-other", referred, "r-2"),  # the first referral wins
        refer(ingest, "m-ref", referred, "r-3"),  # the same referral sent under a new id
        refer(ingest, referred, referred, "r-4"),
        refer(ingest, "m-ref", "m-old", "r-5"),  # not new to the program
        refer(ingest, "m-other", "m-old", "r-6"),
    ]

    assert [o.status for o in outcomes] == ["recorded", "skipped", "skipped", "skipped", "skipped", "skipped"]
    assert outcomes[1].note == "m-new was already referred by m-ref; the first referral wins"
    assert outcomes[2].note == "m-new was already referred by m-ref"
    assert outcomes[3].note == "a member cannot refer themself"
    assert outcomes[4].note == "referral not eligible: m-old is not new to demo: it has points already"
    # The refusal is recorded with its reason, and it is the one answer for that member
    old = referral_of(services, "m-old")
    assert old is not None and (old.referrer, old.status) == ("m-ref", REFERRAL_NOT_ELIGIBLE)
    assert outcomes[5].note == "m-old was already referred by m-ref; the first referral wins"
    # When the old member buys, nobody is paid
    ingest.handle(purchase("2001", "10", identity=CARD))
    assert store.get_account("demo", "m-ref") is None


def test_a_first_purchase_through_a_linked_card_pays_after_the_merge(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest = wire(services, program(behaviour=RULES))
    referred = new_member(services)
    refer(ingest, "m-ref", referred)

    # When the referred member links its loyalty card, and buys in store with it
    ingest.link("demo", EMAIL, CARD)
    outcome = ingest.handle(purchase("T1:R1", "30", identity=CARD, source="till:store-1"))

    # Then the purchase lands on the member, and the referrer is paid
    assert (outcome.status, outcome.member) == ("posted", referred)
    assert account(store, "m-ref") == (500, 0)
    audited(store)


def test_the_reward_waits_for_the_purchase_and_goes_if_the_purchase_is_returned(
    services: Services, store: DynamoLedgerStore
) -> None:
    clock = Clock()
    ingest = wire(services, program(behaviour=RULES, return_window_days=30), clock)
    alice, bob = new_member(services, "alice"), "bob"
    services.members.claim(CARD.key, bob, provisional=False)
    refer(ingest, "m-ref", alice, "r-1")
    refer(ingest, "m-ref", bob, "r-2")

    # When both buy (points pending for 30 days): alice returns everything, bob keeps it
    ingest.handle(purchase("1001", "40", identity=EMAIL))
    ingest.handle(purchase("T1:R1", "20", identity=CARD, source="till:store-1"))
    assert account(store, "m-ref") == (0, 1000)
    ingest.handle(refund("F1", "1001", "40"))

    # Then alice's reward is voided with her purchase, and her referral is closed with the reason
    assert account(store, "m-ref") == (0, 500)
    voided = store.get_entry("demo", "settle:referral:alice")
    assert voided is not None and voided.kind is EntryKind.VOID
    ended = referral_of(services, alice)
    assert ended is not None and ended.status == REFERRAL_NOT_ELIGIBLE
    assert "refunded in full within its return window" in ended.reason

    # When the window closes, bob's reward activates with his purchase
    clock.now = NOW + timedelta(days=31)
    assert "referral:bob" in ingest.activate_due("demo", clock.now)
    assert account(store, "m-ref") == (500, 0)
    audited(store)


def test_the_reward_counts_against_the_referrers_daily_cap(services: Services, store: DynamoLedgerStore) -> None:
    ingest = wire(services, program(behaviour=RULES, caps=Caps(per_member_per_day=300)))
    referred = new_member(services)
    refer(ingest, "m-ref", referred)

    ingest.handle(purchase("1001", "40", identity=EMAIL))

    reward = store.get_entry("demo", "referral:m-new")
    assert reward is not None and reward.delta(Account.AVAILABLE) == 300
    assert reward.details["capped_points"] == "200"
    assert account(store, "m-ref") == (300, 0)


# --- Races: the referral and the referred member's first earn cannot cross -----------------------


def other_container(services: Services) -> Services:
    """Another container's services on the same table: the other side of a race."""
    return table_services(services.table.name, services.table.client)


class RacingStore(DynamoLedgerStore):
    def __init__(self, table: Table, entry_id: str, action: Callable[[], object]) -> None:
        super().__init__(table)
        self._entry_id, self._action = entry_id, action

    def commit(self, change: Change) -> None:
        if any(e.entry_id == self._entry_id for e in change.entries) and self._entry_id:
            self._entry_id = ""
            self._action()
        super().commit(change)


class RacingItems(EarningItems):
    def __init__(self, table: Table, action: Callable[[], object]) -> None:
        super().__init__(table)
        self._action: Callable[[], object] | None = action

    def record_referral(self, program: str, referred: str, referral: Referral, balance_seq: int = 0) -> bool:
        if self._action is not None:
            action, self._action = self._action, None
            action()
        return super().record_referral(program, referred, referral, balance_seq)


def test_a_referral_recorded_while_the_first_purchase_is_in_flight_is_paid_by_it(
    services: Services, store: DynamoLedgerStore
) -> None:
    referred = new_member(services)
    plain = wire(services, program(behaviour=RULES))
    racing = other_container(services)
    racing.ledger_store = RacingStore(
        racing.table, "shopify:acme.myshopify.com:1001", lambda: refer(plain, "m-ref", referred)
    )
    ingest = wire(racing, program(behaviour=RULES))

    # When the referral is recorded after the first purchase read the member, before it commits
    outcome = ingest.handle(purchase("1001", "40", identity=EMAIL))

    # Then the purchase's transaction saw it (its check failed), read again, and paid the referrer
    assert (outcome.status, outcome.member) == ("posted", referred)
    assert account(store, "m-ref") == (500, 0)
    paid = referral_of(services, referred)
    assert paid is not None and paid.status == REFERRAL_PAID
    audited(store)


@pytest.mark.parametrize("first_earn", ["purchase", "sign_in"])
def test_a_first_earn_landing_while_the_referral_is_in_flight_makes_it_not_eligible(
    services: Services, store: DynamoLedgerStore, first_earn: str
) -> None:
    referred = new_member(services)
    plain = wire(services, program(behaviour=RULES))
    event = (
        purchase("1001", "40", identity=EMAIL)
        if first_earn == "purchase"
        else behaviour(BehaviourAction.SIGN_IN, "s-1", referred)
    )
    racing = other_container(services)
    racing.earning_items = RacingItems(racing.table, lambda: plain.handle(event))
    ingest = wire(racing, program(behaviour=RULES))

    # When the member's first earn posts after the referral read the member, before it is recorded
    outcome = refer(ingest, "m-ref", referred)

    # Then the referral's own check failed, it read again and recorded the referral as not eligible
    assert outcome.status == "skipped"
    found = referral_of(services, referred)
    assert found is not None and found.status == REFERRAL_NOT_ELIGIBLE
    assert store.get_account("demo", "m-ref") is None


def test_the_reward_for_a_flagged_buyer_waits_for_the_buyers_flag_and_goes_if_fraud_is_confirmed(
    services: Services,
    store: DynamoLedgerStore,
) -> None:
    clock = Clock()
    ingest = wire(services, program(behaviour=RULES), clock)
    referred = new_member(services)
    refer(ingest, "m-ref", referred)
    # Given the referred member is flagged by the anomaly watch before its first purchase
    services.watch.flag("demo", Finding(referred, "card_velocity", "21 earns from one card in an hour"), NOW, "cause-1")

    # When it buys: its purchase is held, and so is the referrer's reward, for the buyer's flag
    ingest.handle(purchase("1001", "40", identity=EMAIL))
    assert account(store, "m-ref") == (0, 500)
    reward = store.get_entry("demo", "referral:m-new")
    assert reward is not None and reward.details["held"] == "m-new is flagged: paid once its flag is decided"
    assert ingest.activate_due("demo", NOW + timedelta(hours=2)) == []

    # When an operator confirms the fraud, the next run voids the reward
    assert decide_flag(services.members, "demo", referred, "void", "ops-1", "fake account", NOW + timedelta(hours=3))
    ingest.settle_held("demo", referred, "void", "fake account", NOW + timedelta(hours=3))
    ingest.activate_due("demo", NOW + timedelta(hours=4))
    assert account(store, "m-ref") == (0, 0)
    assert account(store, referred) == (0, 0)
    voided = store.get_entry("demo", "settle:referral:m-new")
    assert voided is not None and voided.kind is EntryKind.VOID
    audited(store)
