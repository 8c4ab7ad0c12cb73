"""The tier a member sees: the stored tier item, progress from the activity tally's counters."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from shared.members.membership import held_tier, tier_status
from shared.members.records import TierRecord
from shared.program.config import ProgramConfig, QualifyingBasis, Tier, TierQualification

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
LADDER = (
    Tier(name="member", rank=0),
    Tier(name="silver", rank=1, threshold=Decimal(500)),
    Tier(name="gold", rank=2, threshold=Decimal(2000)),
)


def held(tier: str) -> TierRecord:
    """A stored tier record; only its tier matters to what the member sees."""
    return TierRecord(
        tier=tier, since="2026-01-01T00:00:00Z", period_ends="2027-01-01T00:00:00Z", due_at="2027-01-01T00:00:00Z"
    )


def config(basis: QualifyingBasis = QualifyingBasis.POINTS) -> ProgramConfig:
    qualification = TierQualification(basis=basis, window_months=12)
    return ProgramConfig(program="demo", name="Demo", tiers=LADDER, tier_qualification=qualification)


def test_no_tier_item_is_the_lowest_tier_with_progress_from_the_months_in_the_window() -> None:
    # Given 300 points this month, 100 eleven months ago, and 900 that fell out of the window
    counters = {"pts#2026-06": 300, "pts#2025-07": 100, "pts#2025-05": 900}
    # When the member has no tier item yet
    status = tier_status(config(), None, counters, NOW)
    # Then it holds the lowest tier and needs 100 more for silver
    assert (status.tier, status.qualifying, status.next_tier, status.needed_for_next) == (
        "member",
        Decimal(400),
        "silver",
        Decimal(100),
    )


def test_the_stored_tier_wins_over_what_the_activity_would_give() -> None:
    # A silver member whose activity dropped keeps silver until the review; one whose activity
    # reached gold but was not moved yet (a flagged member) needs nothing more
    assert tier_status(config(), held("silver"), {}, NOW).tier == "silver"
    reached = tier_status(config(), held("silver"), {"pts#2026-06": 2500}, NOW)
    assert (reached.tier, reached.next_tier, reached.needed_for_next) == ("silver", "gold", Decimal(0))
    top = tier_status(config(), held("gold"), {"pts#2026-06": 2500}, NOW)
    assert (top.next_tier, top.needed_for_next) == (None, None)


def test_a_tier_the_config_no_longer_has_reads_as_the_lowest() -> None:
    assert held_tier(config(), held("platinum")).name == "member"


def test_spend_based_programs_count_money_in_ten_thousandths() -> None:
    status = tier_status(config(QualifyingBasis.SPEND), None, {"spend#2026-06": 3_455_000, "pts#2026-06": 900}, NOW)
    assert (status.basis, status.qualifying, status.needed_for_next) == (
        QualifyingBasis.SPEND,
        Decimal("345.5"),
        Decimal("154.5"),
    )
