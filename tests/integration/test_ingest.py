"""Ingest use case against moto: earning, caps, pending points, refunds, identities, dry runs."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from shared.earning.core import MergeConflictError, provisional_member
from shared.errors import IdempotencyConflictError
from shared.ledger.audit import audit
from shared.ledger.commands import Spend
from shared.ledger.models import Account, EntryKind
from shared.program.config import Caps
from tests.integration.ingest_support import (
    CARD,
    EMAIL,
    NOW,
    PARTNER,
    Clock,
    available,
    partner_points,
    program,
    purchase,
    refund,
    sign_in,
    wire,
)

if TYPE_CHECKING:
    from functions.services import Services
    from shared.earning.core import Event
    from shared.ledger.store import DynamoLedgerStore


def test_purchase_posts_once_with_its_explanation_and_rule_version(
    services: Services, store: DynamoLedgerStore
) -> None:
    # Given a program paying 1 point per dollar
    ingest = wire(services, program())
    event = purchase("1001", "42.50")

    # When the order is delivered twice
    first = ingest.handle(event)
    second = ingest.handle(event)

    # Then it earned once, on a provisional member, with the why and the rule version
    member = provisional_member(EMAIL)
    assert (first.status, second.status) == ("posted", "replayed")
    assert available(store, member) == 42
    entry = store.get_entry("demo", "shopify:acme.myshopify.com:1001")
    assert entry is not None
    assert entry.config_version == 1
    assert entry.reason == "online purchase"
    assert entry.details["explanation"] == "42 = 42.5 base - 0.5 rounding (floor)"
    assert audit(*store.ledger_records()).ok


def test_same_id_with_a_different_event_is_a_conflict(services: Services) -> None:
    ingest = wire(services, program())
    ingest.handle(purchase("1001", "10"))
    with pytest.raises(IdempotencyConflictError):
        ingest.handle(purchase("1001", "99"))


def test_dry_run_equals_the_recorded_breakdown(services: Services, store: DynamoLedgerStore) -> None:
    # Given a capped program and a member who already earned today
    ingest = wire(services, program(caps=Caps(per_member_per_day=100)))
    ingest.handle(purchase("1", "70"))
    event = purchase("2", "55.25")

    # When we dry-run and then ingest the same event
    decision = ingest.dry_run(event)
    ingest.handle(event)

    # Then the entry records exactly that breakdown, including the capped excess
    entry = store.get_entry("demo", "shopify:acme.myshopify.com:2")
    assert entry is not None
    assert json.loads(entry.details["breakdown"]) == [step.model_dump(mode="json") for step in decision.breakdown]
    assert entry.details["explanation"] == decision.explanation
    assert decision.points == 30 and decision.capped_points == 25
    assert entry.details["capped_points"] == "25"


def test_daily_cap_counts_the_event_day_not_the_arrival_day(services: Services, store: DynamoLedgerStore) -> None:
    ingest = wire(services, program(caps=Caps(per_member_per_day=100)))
    ingest.handle(purchase("1", "90", at=NOW - timedelta(days=3)))
    ingest.handle(purchase("2", "90", at=NOW - timedelta(hours=1)))
    ingest.handle(purchase("3", "90", at=NOW - timedelta(days=3, hours=1)))
    assert available(store, provisional_member(EMAIL)) == 90 + 90 + 10


def test_partial_refunds_claw_back_in_proportion(services: Services, store: DynamoLedgerStore) -> None:
    ingest = wire(services, program())
    ingest.handle(purchase("1001", "100"))
    member = provisional_member(EMAIL)

    ingest.handle(refund("r1", "1001", "25"))
    assert available(store, member) == 75
    ingest.handle(refund("r1", "1001", "25"))  # redelivered
    assert available(store, member) == 75
    ingest.handle(refund("r2", "1001", "75"))
    assert available(store, member) == 0
    assert audit(*store.ledger_records()).ok


@pytest.mark.parametrize("refund_first", [True, False])
def test_refund_before_its_order_converges(services: Services, store: DynamoLedgerStore, refund_first: bool) -> None:
    ingest = wire(services, program())
    events: list[Event] = [purchase("1001", "80"), refund("r1", "1001", "20")]
    if refund_first:
        events.reverse()
    outcomes = [ingest.handle(event).status for event in events]
    assert outcomes == (["parked", "posted"] if refund_first else ["posted", "posted"])
    assert available(store, provisional_member(EMAIL)) == 60
    assert services.earning_items.waiting_refunds("demo", "shopify:acme.myshopify.com:1001") == []


def test_refund_after_spending_never_goes_negative_and_records_the_shortfall(
    services: Services, store: DynamoLedgerStore
) -> None:
    clock = Clock()
    ingest = wire(services, program(), clock)
    ingest.handle(purchase("1001", "100"))
    member = provisional_member(EMAIL)
    ingest._ledger.spend(
        Spend(program="demo", member=member, points=90, source="api", external_id="s1", reason="reward")
    )

    ingest.handle(refund("r1", "1001", "50"))

    assert available(store, member) == 0
    entry = store.get_entry("demo", "shopify:acme.myshopify.com:r1")
    assert entry is not None and entry.kind is EntryKind.CLAWBACK
    assert (entry.details["requested"], entry.details["shortfall"]) == ("50", "40")
    assert audit(*store.ledger_records()).ok


def test_pending_points_activate_when_the_window_closes_and_parked_refunds_follow(
    services: Services, store: DynamoLedgerStore
) -> None:
    clock = Clock()
    ingest = wire(services, program(return_window_days=30), clock)
    ingest.handle(purchase("1001", "100"))
    member = provisional_member(EMAIL)
    assert store.get_account("demo", member).pending == 100  # type: ignore[union-attr]
    assert ingest.handle(refund("r1", "1001", "10")).status == "parked"

    assert ingest.activate_due("demo", NOW + timedelta(days=29)) == []
    done = ingest.activate_due("demo", NOW + timedelta(days=31))
    assert done == ["shopify:acme.myshopify.com:1001"]
    assert ingest.activate_due("demo", NOW + timedelta(days=31)) == []  # re-run is harmless

    state = store.get_account("demo", member)
    assert state is not None and (state.available, state.pending) == (90, 0)
    assert audit(*store.ledger_records()).ok


def test_sign_ins_earn_once_a_day_and_streaks_count_event_days(services: Services, store: DynamoLedgerStore) -> None:
    from shared.program.config import BehaviourRules, StreakBonus

    rules = BehaviourRules(sign_in=5, streak_bonuses=(StreakBonus(day=3, points=100),))
    ingest = wire(services, program(behaviour=rules))
    # Given sign-ins on three consecutive days, arriving out of order, one of them twice
    for day in (2, 0, 1, 1):
        ingest.handle(sign_in(f"ev-{day}-{NOW.isoformat()}", "m1", NOW - timedelta(days=day)))
    # Then each day paid once; no arrival saw a 3-day streak ending on its own day, so no bonus
    assert available(store, "m1") == 3 * 5
    # When the next day's sign-in arrives, the streak (by event day) is 4: not a milestone
    ingest.handle(sign_in("ev-3", "m1", NOW + timedelta(days=1)))
    assert available(store, "m1") == 4 * 5


def test_linking_identities_merges_balances_through_the_ledger(services: Services, store: DynamoLedgerStore) -> None:
    # Given one person who bought online (e-mail), in store (card) and at a partner
    ingest = wire(services, program())
    ingest.handle(purchase("1001", "40", identity=EMAIL))
    ingest.handle(purchase("T1:R9", "25", identity=CARD, source="till:store-1"))
    ingest.handle(partner_points("f-1", 300))

    # When the operator links the identities
    first = ingest.link("demo", CARD, EMAIL)
    second = ingest.link("demo", CARD, PARTNER)

    # Then one member holds the sum, every identity resolves to it, and the audit passes
    survivor = first.survivor
    assert second.survivor == survivor
    assert available(store, survivor) == 365
    assert {ingest.resolve(i, "demo") for i in (EMAIL, CARD, PARTNER)} == {survivor}
    merged = [m for m in (provisional_member(EMAIL), provisional_member(PARTNER)) if m != survivor]
    assert all(available(store, m) == 0 for m in merged)
    kinds = [e.kind for e in store.entries("demo", survivor)]
    assert kinds.count(EntryKind.TRANSFER) == 2
    # And replays of old events still hit their original entries; later refunds find the points
    assert ingest.handle(purchase("1001", "40", identity=EMAIL)).status == "replayed"
    ingest.handle(refund("r1", "1001", "40"))
    assert available(store, survivor) == 325
    report = audit(*store.ledger_records())
    assert report.ok, report.problems
    assert report.totals["demo"].get(Account.TRANSFER.value, 0) == 0


def test_two_registered_members_are_not_merged_silently(services: Services) -> None:
    from shared.events.model import Identity, IdentityKind

    ingest = wire(services, program())
    services.members.claim(CARD.key, "m-1", provisional=False)
    services.members.claim(EMAIL.key, "m-2", provisional=False)
    with pytest.raises(MergeConflictError):
        ingest.link("demo", CARD, Identity(kind=IdentityKind.EMAIL, value=EMAIL.value))


def test_an_order_refunded_in_full_within_its_window_is_voided(services: Services, store: DynamoLedgerStore) -> None:
    # Given a pending earn of 100 and a first partial refund, parked until the window closes
    ingest = wire(services, program(return_window_days=30))
    ingest.handle(purchase("1001", "100"))
    assert ingest.handle(refund("r1", "1001", "40")).status == "parked"

    # When the rest is refunded before the window closes
    outcome = ingest.handle(refund("r2", "1001", "60"))

    # Then the pending earn is voided, nothing waits, and the activation job finds nothing to do
    assert outcome.status == "skipped"
    member = provisional_member(EMAIL)
    state = store.get_account("demo", member)
    assert state is not None and (state.available, state.pending) == (0, 0)
    assert services.earning_items.waiting_refunds("demo", "shopify:acme.myshopify.com:1001") == []
    assert ingest.activate_due("demo", NOW + timedelta(days=31)) == []
    assert audit(*store.ledger_records()).ok


def test_partner_points_are_owed_by_the_partner(services: Services, store: DynamoLedgerStore) -> None:
    ingest = wire(services, program())
    ingest.handle(partner_points("f-1", 300))
    entry = store.get_entry("demo", "partner:airline:f-1")
    assert entry is not None
    assert {(p.account, p.owner, p.amount) for p in entry.postings} == {
        (Account.PARTNER, "airline", -300),
        (Account.AVAILABLE, "", 300),
    }


def test_a_cap_decided_on_a_stale_tally_is_decided_again(
    services: Services, store: DynamoLedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.ledger.contract import Change, Tally

    # Given a daily cap of 100, and another earn of 80 that lands between our read and our write
    ingest = wire(services, program(caps=Caps(per_member_per_day=100)))
    member = provisional_member(EMAIL)
    ingest.handle(purchase("0", "1"))  # the member exists, 1 point used today
    real_commit = store.commit
    raced: list[bool] = []

    def commit_after_a_rival(change: Change) -> None:
        if not raced and change.tallies:
            raced.append(True)
            day = NOW.date().isoformat()
            services.members.bump(Tally("demo", member, f"earned#{day}", 80), once_for="rival")
        real_commit(change)

    monkeypatch.setattr(store, "commit", commit_after_a_rival)

    # When an order worth 90 is ingested
    ingest.handle(purchase("1", "90"))

    # Then it was re-evaluated on the fresh tally: 100 - 1 - 80 = 19 points, the rest recorded as capped
    entry = store.get_entry("demo", "shopify:acme.myshopify.com:1")
    assert entry is not None and entry.delta(Account.AVAILABLE) == 19
    assert entry.details["capped_points"] == "71"
