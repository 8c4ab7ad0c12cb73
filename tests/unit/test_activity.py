"""Qualifying activity's monthly counters: the window, and which months an earn drops."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from shared.members import activity
from shared.program.config import ProgramConfig, TierQualification

CONFIG = ProgramConfig(
    program="demo", name="Demo", timezone="America/New_York", tier_qualification=TierQualification(window_months=2)
)


def test_the_window_is_the_month_of_now_and_the_full_months_before_it_in_the_programs_zone() -> None:
    # 1 March 03:00 UTC is still February in New York
    assert activity.window(CONFIG, datetime(2027, 3, 1, 3, 0, tzinfo=UTC)) == ["2027-02", "2027-01", "2026-12"]
    counters = {"pts#2026-11": 500, "pts#2026-12": 10, "spend#2027-02": 25_000, "pts#2027-02": 2}
    found = activity.in_window(CONFIG, counters, datetime(2027, 3, 1, 3, 0, tzinfo=UTC))
    assert (found.points, found.spend) == (12, Decimal("2.5"))


def test_an_earn_counts_in_its_own_month_and_drops_months_no_window_reaches() -> None:
    change = activity.change(CONFIG, datetime(2027, 6, 1, 2, 0, tzinfo=UTC), 40, Decimal("40.50"))
    assert change == {"pts#2027-05": 40, "spend#2027-05": 405_000}
    held = {"pts#2024-03": 1, "pts#2024-04": 1, "spend#2024-04": 1, "pts#2027-01": 5}
    # The longest window (36 months before May 2027) starts in May 2024; a month to spare, March 2024 goes
    assert activity.tally("demo", "m", change, held).drop == ("pts#2024-03",)
    assert activity.in_window(CONFIG, {"pts#2027-05": -10}, datetime(2027, 5, 2, tzinfo=UTC)).points == 0
