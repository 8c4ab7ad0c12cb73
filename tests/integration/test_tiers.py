"""Tiers on rolling activity: upgrade at once, downgrade after the period and grace, every move recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from shared.jobs.walk import JobInput
from shared.ledger.commands import Earn
from shared.members import activity
from shared.program.config import ProgramConfig, QualifyingBasis, Tier, TierQualification
from tests.support.jobs import World, make_world

if TYPE_CHECKING:
    from functions.services import Services
    from shared.jobs.tiers import TierReviewJob
    from shared.members.tiers import Tiers

T1 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
CONFIG = ProgramConfig(
    program="demo",
    name="Demo",
    tier_qualification=TierQualification(basis=QualifyingBasis.POINTS, window_months=12, grace_days=30),
    tiers=(
        Tier(name="member", rank=0),
        Tier(name="silver", rank=1, threshold=Decimal(100), multiplier=Decimal("1.25")),
        Tier(name="gold", rank=2, threshold=Decimal(500), multiplier=Decimal(2)),
    ),
)


def earn(world: World, member: str, points: int, ext: str, at: datetime, expires_at: datetime) -> None:
    """An earn as the ingest path posts it: the points and, in the same transaction, their activity."""
    cmd = Earn(
        program="demo",
        member=member,
        points=points,
        source="shop",
        external_id=ext,
        reason="order",
        event_time=at,
        expires_at=expires_at,
    )
    counters = activity.change(CONFIG, at, points)
    world.ledger.earn(cmd, at=at, tallies=[activity.tally("demo", member, counters)])


@pytest.fixture
def world(services: Services) -> World:
    return make_world(services, CONFIG)


@pytest.fixture
def tiers(world: World) -> Tiers:
    return world.services.tiers


@pytest.fixture
def review(world: World) -> TierReviewJob:
    """The scheduled tier review, on the same services."""
    return world.services.tier_review_job


def test_upgrade_at_once_on_earned_points_not_on_balance(world: World, tiers: Tiers) -> None:
    # Given ann earns 150 points
    earn(world, "ann", 150, "o-1", T1, expires_at=T1 + timedelta(days=400))
    # When the ingest path asks for an upgrade after the earn
    move = tiers.on_earn("demo", "ann", T1)
    # Then she is silver at once, with the reason recorded, and silver's multiplier applies from now
    assert move is not None and (move.from_tier, move.to_tier) == ("member", "silver")
    assert tiers.current_tier("demo", "ann").multiplier == Decimal("1.25")
    [record] = tiers.changes("demo", "ann")
    assert record.reason.startswith("upgrade: 150 points earned in 12 months reaches silver")
    # And spending every point does not cost her the tier (activity, not balance)
    world.spend("ann", 150, "r-1", T1 + timedelta(days=1))
    assert tiers.on_earn("demo", "ann", T1 + timedelta(days=1)) is None
    assert tiers.current("demo", "ann").tier == "silver"


def test_downgrade_only_after_the_period_and_the_grace(world: World, tiers: Tiers, review: TierReviewJob) -> None:
    # Given ann reached silver on T1 and earned nothing since
    earn(world, "ann", 150, "o-1", T1, expires_at=T1 + timedelta(days=800))
    tiers.on_earn("demo", "ann", T1)
    period_end = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
    # When the tier job runs at the period's end and within the grace
    for at in (period_end, period_end + timedelta(days=29)):
        review.run(JobInput(now=at, simulate=True))
        # Then she keeps silver
        assert tiers.current("demo", "ann").tier == "silver"
    # When it runs after the grace
    report = review.run(JobInput(now=period_end + timedelta(days=31), simulate=True))[0]
    # Then she moves down, with the reason recorded
    assert report.details["moves"] == ["ann: silver -> member"]
    assert tiers.current("demo", "ann").tier == "member"
    reasons = [r.reason for r in tiers.changes("demo", "ann")]
    assert any(r.startswith("downgrade at the end of the period and 30 days' grace") for r in reasons)


def test_a_member_who_still_qualifies_keeps_the_tier_for_another_period(
    world: World, tiers: Tiers, review: TierReviewJob
) -> None:
    # Given bob reached gold and kept earning in the last months of the period
    earn(world, "bob", 600, "o-1", T1, expires_at=T1 + timedelta(days=900))
    assert tiers.on_earn("demo", "bob", T1) is not None
    earn(world, "bob", 550, "o-2", T1 + timedelta(days=300), expires_at=T1 + timedelta(days=900))
    # When the review comes after the period and grace
    review.run(JobInput(now=T1 + timedelta(days=400), simulate=True))
    # Then he stays gold, and the next period runs from the review
    state = tiers.current("demo", "bob")
    assert state.tier == "gold" and state.period_ends is not None and state.period_ends.year == 2028


def test_upgrade_skips_straight_to_the_highest_tier_reached(world: World, tiers: Tiers) -> None:
    earn(world, "cy", 700, "o-1", T1, expires_at=T1 + timedelta(days=400))
    move = tiers.on_earn("demo", "cy", T1)
    assert move is not None and move.to_tier == "gold"
