"""DynamoDB requests per kind of event, as docs/channels.md tabulates them: a regression here costs money."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from functions.services import Services
from shared.earning.ingest import Ingest
from shared.events.model import BehaviourAction, BehaviourEvent, Channel, Identity, IdentityKind
from shared.program.config import BehaviourRules, Caps, QualifyingBasis, Tier, TierQualification
from tests.integration.ingest_support import CARD, EMAIL, NOW, Clock, partner_points, program, purchase, refund

if TYPE_CHECKING:
    from shared.earning.core import Event
    from shared.ledger.store import DynamoLedgerStore
    from shared.program.config import ProgramConfig


def warm(services: Services, config: ProgramConfig, with_tiers: bool = False) -> Ingest:
    """Wired as the function is (its own services, on the test's table), the program's config cached
    as a warm container has it."""
    function = Services(table_name=services.table.name, clock=Clock(), config_cache_seconds=3600)
    function.table = services.table  # the test's table: its requests are the ones counted
    function.programs.publish(config)
    function.programs.get(config.program)
    if with_tiers:
        return function.ingest
    return Ingest(
        function.ledger,
        function.ledger_store,
        function.members,
        function.earning_items,
        function.programs,
        clock=function.now,
    )


def requests(services: Services, ingest: Ingest, event: Event) -> Counter[str]:
    services.table.stats.reset()
    ingest.handle(event)
    return Counter(services.table.stats.requests)


def test_a_purchase_by_a_known_member_costs_three_requests_pending_or_not(services: Services) -> None:
    # Given a capped program with a return window and a member who bought before
    ingest = warm(services, program(return_window_days=30, caps=Caps(per_member_per_day=5000)))
    ingest.handle(purchase("1", "10"))

    # Then the next purchase is: the identity, one batch read of the member, one transaction
    assert requests(services, ingest, purchase("2", "10")) == {"GetItem": 1, "BatchGetItem": 1, "TransactWriteItems": 1}


def test_a_stranger_costs_one_more_an_app_member_one_less(services: Services) -> None:
    ingest = warm(services, program(caps=Caps(per_member_per_day=5000), behaviour=BehaviourRules(review=20)))
    # A new identity is claimed (one transaction) before the usual three
    assert requests(services, ingest, purchase("1", "10", identity=CARD)) == {
        "GetItem": 1,
        "TransactWriteItems": 2,
        "BatchGetItem": 1,
    }
    # An app event names the member itself: no identity lookup
    review = BehaviourEvent(
        program="demo",
        channel=Channel.APP,
        source="app:app",
        external_id="ev-1",
        identity=Identity(kind=IdentityKind.MEMBER, value="m-1"),
        occurred_at=NOW - timedelta(minutes=1),
        action=BehaviourAction.REVIEW,
        subject="sku:1",
    )
    assert requests(services, ingest, review) == {"BatchGetItem": 1, "TransactWriteItems": 1}
    # The same review under a new event id: the transaction fails on the entry, which is read (by the
    # ledger, then by ingest to tell a duplicate from a conflict) to answer "skipped"
    duplicate = review.model_copy(update={"external_id": "ev-2"})
    assert requests(services, ingest, duplicate) == {"BatchGetItem": 1, "TransactWriteItems": 1, "GetItem": 2}
    # Partner points for a known partner member: the same three as a purchase
    ingest.handle(partner_points("f-1", 100))
    assert sum(requests(services, ingest, partner_points("f-2", 100)).values()) == 3


def test_refunds_and_redeliveries(services: Services) -> None:
    ingest = warm(services, program())
    ingest.handle(purchase("1", "100", identity=EMAIL))
    # A refund after its order: the order, one batch read of its tallies, and the ledger's clawback
    assert requests(services, ingest, refund("r-1", "1", "10")) == {
        "GetItem": 2,
        "BatchGetItem": 1,
        "Query": 1,
        "TransactWriteItems": 1,
    }
    # A redelivered purchase: found by its transaction, then read back once, plus its refund list
    assert requests(services, ingest, purchase("1", "100", identity=EMAIL)) == {
        "GetItem": 3,
        "BatchGetItem": 1,
        "TransactWriteItems": 1,
    }
    # A refund before its order: parked, after looking for the order twice (before and after parking)
    assert requests(services, ingest, refund("r-2", "2", "10")) == {"GetItem": 3, "UpdateItem": 1}


def test_a_referral_costs_two_and_the_first_purchase_that_pays_it_three_more(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest = warm(services, program(caps=Caps(per_member_per_day=5000), behaviour=BehaviourRules(referral=500)))
    services.members.claim(EMAIL.key, "m-new", provisional=False)
    referral = BehaviourEvent(
        program="demo",
        channel=Channel.APP,
        source="app:app",
        external_id="ev-9",
        identity=Identity(kind=IdentityKind.MEMBER, value="m-ref"),
        occurred_at=NOW - timedelta(minutes=1),
        action=BehaviourAction.REFERRAL,
        subject="m-new",
    )
    # Recording a referral: one batch read of the referred member, one transaction (the record, and
    # a check that the member has nothing posted yet)
    assert requests(services, ingest, referral) == {"BatchGetItem": 1, "TransactWriteItems": 1}
    # The referred member's first purchase: its usual three, then the referrer's batch read, the
    # reward's transaction and closing the referral
    assert requests(services, ingest, purchase("1", "10")) == {
        "GetItem": 1,
        "BatchGetItem": 2,
        "TransactWriteItems": 2,
        "UpdateItem": 1,
    }
    # Later purchases: the usual three (the referral is read in the same batch)
    assert requests(services, ingest, purchase("2", "10")) == {"GetItem": 1, "BatchGetItem": 1, "TransactWriteItems": 1}


def test_an_earn_that_moves_the_member_up_a_tier_costs_four_more(services: Services) -> None:
    # Given a warm function with tiers on qualifying spend, and a member who reached silver
    config = program(
        tier_qualification=TierQualification(basis=QualifyingBasis.SPEND, window_months=12),
        tiers=(
            Tier(name="member", rank=0),
            Tier(name="silver", rank=1, threshold=Decimal(500), multiplier=Decimal("1.2")),
            Tier(name="gold", rank=2, threshold=Decimal(2000), multiplier=Decimal("1.5")),
        ),
    )
    ingest = warm(services, config, with_tiers=True)
    ingest.handle(purchase("1", "1990"))

    # When an order takes the year's spend past gold's threshold
    # Then it costs the purchase's three, plus the tier item, the activity tally and the move
    assert requests(services, ingest, purchase("2", "20")) == {"GetItem": 3, "BatchGetItem": 1, "TransactWriteItems": 2}
    # And an order that crosses nothing costs three again
    assert requests(services, ingest, purchase("3", "20")) == {"GetItem": 1, "BatchGetItem": 1, "TransactWriteItems": 1}


def test_a_debit_reads_the_balance_and_lots_not_the_members_history(
    services: Services, store: DynamoLedgerStore
) -> None:
    # Given a capped program and a member who bought on six different days (a daily tally each)
    ingest = warm(services, program(caps=Caps(per_member_per_day=5000)))
    for day in range(6):
        ingest.handle(purchase(f"d{day}", "10", at=NOW - timedelta(days=day, hours=1)))
    member = ingest.resolve(EMAIL, "demo")
    # When the ledger reads what a debit needs
    services.table.stats.reset()
    state, lots = store.get_account_and_lots("demo", member)
    # Then one Query returns the balance and the six lots, and none of the tallies
    assert state is not None and len(lots) == 6
    assert (dict(services.table.stats.requests), services.table.stats.items_read) == ({"Query": 1}, 1 + 6)
