"""GET /tier and /balance show the tier ingest and the tier job use: the stored tier and the activity tally."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from shared.access.keys import PrincipalKind
from shared.program.config import ProgramConfig, QualifyingBasis, Tier, TierQualification
from tests.integration.ingest_support import EMAIL, Clock, purchase, refund

if TYPE_CHECKING:
    from functions.services import Services
    from shared.earning.ingest import Ingest
    from shared.program.store import ProgramRepository
    from tests.integration.api.conftest import Client

LADDER = (
    Tier(name="member", rank=0),
    Tier(name="silver", rank=1, threshold=Decimal(1500), multiplier=Decimal("1.2")),
    Tier(name="gold", rank=2, threshold=Decimal(5000), multiplier=Decimal("1.5")),
)


@pytest.fixture
def ingest(services: Services, programs: ProgramRepository) -> Ingest:
    """Ingest wired as the function is (tiers move up on the earn), at the API's own time."""
    programs.publish(
        ProgramConfig(
            program="demo",
            version=2,
            name="Demo",
            tier_qualification=TierQualification(basis=QualifyingBasis.POINTS, window_months=12),
            tiers=LADDER,
        )
    )
    services.clock = Clock()  # NOW, for the API and ingest alike
    services.members.claim(EMAIL.key, "m1", provisional=False)
    return services.ingest


def test_an_earn_crossing_a_threshold_shows_the_new_tier_and_the_way_to_the_next(api: Client, ingest: Ingest) -> None:
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    tier_path, balance_path = "/programs/demo/members/m1/tier", "/programs/demo/members/m1/balance"

    # Given m1 earned 1,000 points on a purchase
    ingest.handle(purchase("1001", "1000"))
    before = api.call("GET", tier_path, key=key).body
    assert before == {
        "tier": "member",
        "basis": "points",
        "qualifying": "1000",
        "next_tier": "silver",
        "needed_for_next": "500",
    }

    # When a purchase of 600 takes qualifying activity past silver's 1,500
    assert ingest.handle(purchase("1002", "600")).points == 600  # the crossing earn is at the old rate

    # Then GET /tier and GET /balance show silver, and the way to gold
    after = api.call("GET", tier_path, key=key)
    assert after.status == 200, after.body
    assert after.body == {
        "tier": "silver",
        "basis": "points",
        "qualifying": "1600",
        "next_tier": "gold",
        "needed_for_next": "3400",
    }
    balance = api.call("GET", balance_path, key=key).body
    assert (balance["tier"], balance["available"]) == ("silver", 1600)

    # And the next earn uses silver's multiplier; a refund lowers the activity but not the tier
    # (downgrades wait for the review at the end of the period), as ingest and the tier job see it
    assert ingest.handle(purchase("1003", "100")).points == 120
    ingest.handle(refund("F1", "1002", "600"))
    status = api.call("GET", tier_path, key=key).body
    assert (status["tier"], status["qualifying"], status["needed_for_next"]) == ("silver", "1120", "3880")


def test_no_tier_item_yet_is_the_lowest_tier_with_progress_from_the_tally(api: Client, ingest: Ingest) -> None:
    ingest.handle(purchase("1001", "40"))
    status = api.call("GET", "/programs/demo/members/m1/tier", key=api.key_for(PrincipalKind.MEMBER, "m1")).body
    assert (status["tier"], status["qualifying"], status["needed_for_next"]) == ("member", "40", "1460")
