"""Ingest and the program's life: nothing earns after its sunset; tiers move up on the earn itself."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from shared.earning.core import provisional_member
from shared.errors import EarningClosedError
from shared.ledger.contract import Tally
from shared.members import activity
from shared.program.config import Caps, QualifyingBasis, Sunset, Tier, TierQualification
from tests.integration.ingest_support import EMAIL, NOW, Clock, account, audited, program, purchase, refund, wire

if TYPE_CHECKING:
    from functions.services import Services
    from shared.earning.ingest import Ingest
    from shared.ledger.store import DynamoLedgerStore
    from shared.members.tiers import Tiers
    from shared.program.config import ProgramConfig

MEMBER = provisional_member(EMAIL)
EARNING_ENDS = NOW - timedelta(days=2)
SUNSET = Sunset(announced_at=NOW - timedelta(days=40), earning_ends_at=EARNING_ENDS, ends_at=NOW + timedelta(days=60))


def test_an_event_from_before_the_stop_still_earns_one_from_after_is_refused(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest = wire(services, program(sunset=SUNSET))

    # Given an order placed a minute before earning stopped, arriving two days late
    late = ingest.handle(purchase("1", "10", at=EARNING_ENDS - timedelta(minutes=1)))
    # Then it earns: event time decides
    assert late.status == "posted" and account(store, MEMBER) == (10, 0)

    # When an order placed at the very moment earning stopped arrives
    with pytest.raises(EarningClosedError) as refused:
        ingest.handle(purchase("2", "10", at=EARNING_ENDS))
    # Then it is refused with a typed reason and nothing is written
    assert refused.value.code == "earning_closed"
    assert "stopped earning" in refused.value.detail
    assert store.get_entry("demo", "shopify:acme.myshopify.com:2") is None
    with pytest.raises(EarningClosedError):
        ingest.dry_run(purchase("3", "10", at=EARNING_ENDS + timedelta(hours=1)))
    # And a redelivery of the order that did earn is still a replay, not a refusal
    assert ingest.handle(purchase("1", "10", at=EARNING_ENDS - timedelta(minutes=1))).status == "replayed"
    audited(store)


def test_nothing_earns_once_the_program_has_ended_even_from_before_the_stop(
    services: Services, store: DynamoLedgerStore
) -> None:
    clock = Clock()
    ingest = wire(services, program(sunset=SUNSET), clock)
    clock.now = SUNSET.ends_at  # the very end
    with pytest.raises(EarningClosedError) as refused:
        ingest.handle(purchase("1", "10", at=EARNING_ENDS - timedelta(days=1)))
    assert "nothing earns after its end" in refused.value.detail
    assert account(store, MEMBER) == (0, 0)


TIERED = program(
    tier_qualification=TierQualification(basis=QualifyingBasis.SPEND, window_months=12),
    tiers=(
        Tier(name="member", rank=0),
        Tier(name="silver", rank=1, threshold=Decimal(500), multiplier=Decimal("1.2")),
        Tier(name="gold", rank=2, threshold=Decimal(2000), multiplier=Decimal("1.5")),
    ),
    caps=Caps(per_member_per_day=100_000),
)


def tiered(services: Services, config: ProgramConfig = TIERED) -> tuple[Ingest, Tiers]:
    """The services' ingest with tiers (upgrades on earning), the clock at NOW."""
    return wire(services, config, tiers=True), services.tiers


def test_an_earn_crossing_gold_upgrades_at_once_and_the_next_earn_gets_its_multiplier(services: Services) -> None:
    ingest, tiers = tiered(services)
    # Given a member with 1,990 of qualifying spend (silver since that order)
    ingest.handle(purchase("A", "1990"))
    assert tiers.current("demo", MEMBER).tier == "silver"

    # When an order of 20 takes the year's spend to 2,010
    crossing = ingest.handle(purchase("B", "20"))

    # Then that order earned at silver's rate, and the member is gold at once, the move recorded
    assert crossing.points == 24
    assert tiers.current("demo", MEMBER).tier == "gold"
    moves = [(r.from_tier, r.to_tier) for r in tiers.changes("demo", MEMBER)]
    assert sorted(moves) == [("member", "silver"), ("silver", "gold")]
    assert any(r.reason.startswith("upgrade: 2010") for r in tiers.changes("demo", MEMBER))

    # And the next order earns 1.5x
    assert ingest.handle(purchase("C", "100")).points == 150


def test_a_refund_reduces_qualifying_activity_but_not_the_tier_until_the_review(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest, tiers = tiered(services)
    ingest.handle(purchase("A", "1990"))
    ingest.handle(purchase("B", "20"))
    assert tiers.activity(TIERED, MEMBER, NOW).spend == Decimal("2010")

    # When 500 of the first order is refunded
    ingest.handle(refund("r-1", "A", "500"))

    # Then the refunded money no longer qualifies (nor do the points clawed back)
    assert tiers.activity(TIERED, MEMBER, NOW).spend == Decimal("1510")
    assert tiers.activity(TIERED, MEMBER, NOW).points == 1990 + 24 - 500
    # And the member keeps gold until the period ends (a downgrade waits for the review)
    assert tiers.current("demo", MEMBER).tier == "gold"
    audited(store)


def test_activity_is_counted_in_the_month_of_the_purchase_and_leaves_the_window(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest, tiers = tiered(services)
    # Given a counter from years ago on the member's activity
    directory = services.members
    directory.bump(Tally("demo", MEMBER, activity.ACTIVITY, counters=(("pts#2021-01", 7),)), once_for="old")

    ingest.handle(purchase("A", "300", at=NOW - timedelta(days=1)))

    # Then the earn counted in its month, and dropped the month no window can reach
    counters = directory.view("demo", MEMBER, [activity.ACTIVITY]).tally(activity.ACTIVITY).counters
    assert counters == {"pts#2026-06": 300, "spend#2026-06": 3_000_000}
    # Thirteen months on, June 2026 is outside the window (the month of "now" and the 12 before)
    assert tiers.activity(TIERED, MEMBER, NOW + timedelta(days=365)).spend == Decimal(300)
    assert tiers.activity(TIERED, MEMBER, NOW + timedelta(days=400)).spend == Decimal(0)


def test_a_flagged_member_is_not_moved_up_while_the_flag_is_open(services: Services) -> None:
    from shared.projections.watch import Finding

    ingest, tiers = tiered(services)
    services.watch.flag("demo", Finding(MEMBER, "card_velocity", "burst"), NOW, "c")
    ingest.handle(purchase("A", "2500"))
    assert tiers.current("demo", MEMBER).tier == "member"
