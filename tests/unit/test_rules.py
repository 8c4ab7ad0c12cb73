"""Worked examples of the earn rules on the demo program (seeds/demo-program.json)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from shared.errors import InvalidInputError
from shared.events.model import BehaviourAction, Channel
from shared.program.config import NEVER, QualifyingActivity
from shared.program.rules import (
    EarnDecision,
    StepKind,
    earn_day,
    evaluate_behaviour,
    evaluate_points,
    evaluate_purchase,
    qualifying_tier,
    refund_clawback,
)
from tests.unit.rules_factories import (
    NEW_YORK,
    ORDINARY,
    behaviour,
    demo,
    demo_with,
    line,
    partner_points,
    purchase,
)

HOLIDAY = datetime(2026, 12, 25, 10, 0, tzinfo=NEW_YORK)
HOLIDAY_PROMO = {
    "id": "holiday",
    "label": "holiday promo",
    "multiplier": "2",
    "starts_at": "2026-12-24T00:00:00",
    "ends_at": "2026-12-27T00:00:00",
}


@pytest.mark.parametrize(
    ("tier", "points", "explanation"),
    [
        ("member", 60, "60 = 60 base"),
        ("silver", 72, "72 = 60 base x1.2 silver tier"),
        ("gold", 90, "90 = 60 base x1.5 gold tier"),
        ("diamond", 120, "120 = 60 base x2 diamond tier"),
    ],
)
def test_each_tier_earns_its_multiple_of_a_60_usd_order(tier: str, points: int, explanation: str) -> None:
    # Given the demo program and a 60 USD order on an ordinary day
    config, order = demo(), purchase("60")

    # When a member of each tier earns on it
    decision = evaluate_purchase(config, order, tier, used_today=0)

    # Then the points follow the tier multiplier and say why
    assert decision.points == points
    assert decision.uncapped_points == points
    assert decision.capped_points == 0
    assert decision.explanation == explanation
    assert decision.config_version == 1
    assert decision.tier == tier


def test_holiday_promo_doubles_the_earn() -> None:
    # Given a 60 USD order on Christmas day, inside the holiday window
    order = purchase("60", at=HOLIDAY)

    # When a member earns on it
    decision = evaluate_purchase(demo(), order, "member", used_today=0)

    # Then the promotion doubles the base and the explanation shows it
    assert decision.points == 120
    assert decision.explanation == "120 = 60 base x2 holiday promo"
    assert [step.kind for step in decision.breakdown] == [StepKind.BASE, StepKind.PROMO]


def test_promo_multiplies_the_tier_earn() -> None:
    # Given a gold member buying for 60 USD in the holiday window
    # When the rules run
    decision = evaluate_purchase(demo(), purchase("60", at=HOLIDAY), "gold", used_today=0)

    # Then tier and promotion multiply: 60 x 1.5 x 2
    assert decision.points == 180
    assert decision.explanation == "180 = 60 base x1.5 gold tier x2 holiday promo"


def test_promo_window_is_half_open_in_program_time() -> None:
    # Given orders just before, at the start of, and at the end of the holiday window (New York time)
    config = demo()
    before = purchase("60", at=datetime(2026, 12, 23, 23, 59, 59, tzinfo=NEW_YORK))
    start = purchase("60", at=datetime(2026, 12, 24, 0, 0, tzinfo=NEW_YORK))
    end = purchase("60", at=datetime(2026, 12, 27, 0, 0, tzinfo=NEW_YORK))

    # When each earns
    points = [evaluate_purchase(config, order, "member", 0).points for order in (before, start, end)]

    # Then only the one inside [start, end) is doubled
    assert points == [60, 120, 60]


def test_late_event_lands_in_its_own_days_window_and_cap() -> None:
    # Given a till purchase made at 23:30 New York time on Dec 26 (04:30 UTC on Dec 27), which
    # reaches us days later, and 4,950 points already earned on Dec 26
    late = purchase("60", at=datetime(2026, 12, 27, 4, 30, tzinfo=UTC), channel=Channel.POS)

    # When it is evaluated
    decision = evaluate_purchase(demo(), late, "member", used_today=4_950)

    # Then the promotion of Dec 26 applies, the cap counts Dec 26, and expiry runs from the event's
    # local day: the end of Dec 26, 2027 in New York
    assert decision.earn_day == date(2026, 12, 26)
    assert earn_day(demo(), late.occurred_at) == date(2026, 12, 26)
    assert decision.uncapped_points == 120
    assert decision.points == 50
    assert decision.capped_points == 70
    assert decision.expires_at == datetime(2027, 12, 26, 23, 59, 59, tzinfo=NEW_YORK)


def test_cap_excess_is_recorded_not_dropped() -> None:
    # Given a member who already earned 4,900 of the 5,000 daily points
    order = purchase("300")

    # When they earn 300 more
    decision = evaluate_purchase(demo(), order, "member", used_today=4_900)

    # Then they get the 100 left and the other 200 are recorded as capped
    assert (decision.points, decision.uncapped_points, decision.capped_points) == (100, 300, 200)
    assert decision.breakdown[-1].kind is StepKind.CAP
    assert decision.explanation == "100 = 300 base - 200 daily cap"


def test_cap_already_reached_gives_zero_points() -> None:
    decision = evaluate_purchase(demo(), purchase("10"), "member", used_today=6_000)
    assert (decision.points, decision.capped_points) == (0, 10)


def test_per_event_cap_applies_before_the_daily_cap() -> None:
    # Given a program capping each event at 500 and each day at 5,000
    config = demo_with(caps={"per_event": 500, "per_member_per_day": 5_000})

    # When a 900 USD order earns with 4,800 already earned today
    decision = evaluate_purchase(config, purchase("900"), "member", used_today=4_800)

    # Then the event cap cuts 400 and the daily cap a further 300
    assert decision.points == 200
    assert decision.capped_points == 700
    assert [step.label for step in decision.breakdown if step.kind is StepKind.CAP] == [
        "per-event cap",
        "daily cap",
    ]


def test_purchase_points_are_pending_through_the_return_window() -> None:
    # Given the demo's 30-day return window
    # When a purchase is made on June 10 at noon in New York
    decision = evaluate_purchase(demo(), purchase("60"), "member", 0)

    # Then its points are pending until July 10 at noon in New York
    assert decision.pending_until == datetime(2026, 7, 10, 12, 0, tzinfo=NEW_YORK)


def test_return_window_keeps_local_time_across_a_dst_change() -> None:
    # Given a purchase on Oct 20 at noon New York time (EDT), whose window ends after the switch to EST
    decision = evaluate_purchase(demo(), purchase("60", at=datetime(2026, 10, 20, 12, tzinfo=NEW_YORK)), "member", 0)

    # Then the window closes at noon local time, 17:00 UTC, not 16:00
    assert decision.pending_until == datetime(2026, 11, 19, 17, 0, tzinfo=UTC)


def test_no_return_window_means_no_pending() -> None:
    decision = evaluate_purchase(demo_with(return_window_days=0), purchase("60"), "member", 0)
    assert decision.pending_until is None


def test_top_tier_points_never_expire_others_roll_12_months() -> None:
    config, order = demo(), purchase("60")
    assert evaluate_purchase(config, order, "diamond", 0).expires_at == NEVER
    # 12 months on, to the end of that local day in New York
    assert evaluate_purchase(config, order, "gold", 0).expires_at == datetime(2027, 6, 10, 23, 59, 59, tzinfo=NEW_YORK)


@pytest.mark.parametrize(
    ("rounding", "amount", "points"),
    [
        ("floor", "10.50", 10),
        ("half_up", "10.50", 11),
        ("half_even", "10.50", 10),
        ("half_even", "11.50", 12),
        ("floor", "10.99", 10),
        ("half_up", "10.49", 10),
    ],
)
def test_rounding_mode_is_applied_once_at_the_end(rounding: str, amount: str, points: int) -> None:
    # Given a program with the rounding mode under test
    config = demo_with(rounding=rounding)

    # When an order with a fractional amount earns
    decision = evaluate_purchase(config, purchase(amount), "member", 0)

    # Then the rounding step turns the exact total into the expected int, and the steps add up
    assert decision.points == points
    assert sum(step.points for step in decision.breakdown) == points


def test_rounding_happens_once_not_per_step() -> None:
    # Given silver (x1.2) on 10.50 USD and a x1.5 promo: 10.5 x 1.2 x 1.5 = 18.9
    promo = HOLIDAY_PROMO | {"multiplier": "1.5"}
    config = demo_with(promotions=[promo], rounding="half_up")

    # When it earns in the window
    decision = evaluate_purchase(config, purchase("10.50", at=HOLIDAY), "silver", 0)

    # Then it rounds 18.9 to 19 (rounding each step would floor 12.6 to 12 or 13 first)
    assert decision.points == 19


def test_shipping_and_tax_earn_only_when_the_program_says_so() -> None:
    order = purchase("60", shipping="5", tax="4.80")
    assert evaluate_purchase(demo(), order, "member", 0).points == 60
    with_both = demo_with(earn_on={"shipping": True, "tax": True}, rounding="half_up")
    decision = evaluate_purchase(with_both, order, "member", 0)
    assert decision.points == 70
    assert decision.basis_amount == Decimal("69.80")


def test_new_product_bonus_is_per_unit_and_not_tier_multiplied() -> None:
    # Given an order with two units of a new product and one ordinary line
    order = purchase("60", lines=(line("new-1", "40", quantity=2, new_product=True), line("old-1", "20")))

    # When a gold member earns
    decision = evaluate_purchase(demo(), order, "gold", 0)

    # Then the 25-per-unit bonus is added after the tier multiple
    assert decision.points == 90 + 50
    assert decision.explanation == "140 = 60 base x1.5 gold tier + 50 new product bonus"


def test_category_multiplier_bonus_uses_the_discounted_line_share() -> None:
    # Given a x3 bonus on shoes, and an order whose 100 USD of lines carry a 50% order-level discount
    bonus = {"id": "shoes", "label": "shoes bonus", "categories": ["shoes"], "multiplier": "3"}
    config = demo_with(product_bonuses=[bonus])
    order = purchase("50", lines=(line("s1", "60", category="shoes"), line("t1", "40", category="tops")))

    # When a member earns
    decision = evaluate_purchase(config, order, "member", 0)

    # Then the shoes line counts for 30 USD, earning 2 x 30 extra
    assert decision.points == 50 + 60


def test_line_filtered_promo_only_boosts_matching_lines() -> None:
    # Given a x2 promo on one category in the window
    promo = HOLIDAY_PROMO | {"categories": ["toys"]}
    config = demo_with(promotions=[promo])
    order = purchase("60", at=HOLIDAY, lines=(line("t1", "20", category="toys"), line("b1", "40", category="books")))

    # When a member earns
    decision = evaluate_purchase(config, order, "member", 0)

    # Then only the toys' 20 USD is doubled, and the explanation does not claim x2 on everything
    assert decision.points == 80
    assert decision.explanation == "80 = 60 base + 20 holiday promo"


def test_channel_filter_limits_a_promo_to_its_channels() -> None:
    config = demo_with(promotions=[HOLIDAY_PROMO | {"channels": ["pos"]}])
    assert evaluate_purchase(config, purchase("60", at=HOLIDAY, channel=Channel.POS), "member", 0).points == 120
    assert evaluate_purchase(config, purchase("60", at=HOLIDAY, channel=Channel.ONLINE), "member", 0).points == 60


def test_best_stacking_applies_only_the_richest_multiplier() -> None:
    # Given x2 and x3 promotions running at once, and the default "best" stacking
    flash = HOLIDAY_PROMO | {"id": "flash", "label": "flash sale", "multiplier": "3"}
    config = demo_with(promotions=[HOLIDAY_PROMO, flash])

    # When a member earns 60 USD
    decision = evaluate_purchase(config, purchase("60", at=HOLIDAY), "member", 0)

    # Then only x3 applies
    assert decision.points == 180
    assert decision.explanation == "180 = 60 base x3 flash sale"


def test_additive_stacking_adds_the_extras() -> None:
    flash = HOLIDAY_PROMO | {"id": "flash", "label": "flash sale", "multiplier": "3"}
    config = demo_with(promotions=[HOLIDAY_PROMO, flash], promo_stacking="additive")
    decision = evaluate_purchase(config, purchase("60", at=HOLIDAY), "member", 0)
    # x2 adds 60, x3 adds 120: 60 x (1 + 1 + 2) = 240, not 60 x 6
    assert decision.points == 240
    assert decision.explanation == "240 = 60 base x2 holiday promo + 120 flash sale"


def test_fixed_bonus_promo_needs_its_minimum_spend() -> None:
    bonus = HOLIDAY_PROMO | {"id": "gift", "label": "holiday bonus", "multiplier": None, "bonus_points": 100}
    config = demo_with(promotions=[bonus | {"min_amount": "50"}])
    assert evaluate_purchase(config, purchase("60", at=HOLIDAY), "member", 0).points == 160
    assert evaluate_purchase(config, purchase("40", at=HOLIDAY), "member", 0).points == 40


def test_sign_in_pays_its_points_and_the_30th_day_streak_bonus() -> None:
    config, event = demo(), behaviour(BehaviourAction.SIGN_IN)
    assert evaluate_behaviour(config, event, "member", 0, streak_days=29).points == 5
    thirtieth = evaluate_behaviour(config, event, "member", 0, streak_days=30)
    assert thirtieth.points == 105
    assert thirtieth.explanation == "105 = 5 sign in + 100 30-day streak bonus"
    # The demo's streak bonus repeats every 30 days
    assert evaluate_behaviour(config, event, "member", 0, streak_days=60).points == 105


@pytest.mark.parametrize(
    ("action", "points"),
    [
        (BehaviourAction.REVIEW, 20),
        (BehaviourAction.REFERRAL, 200),
        (BehaviourAction.BIRTHDAY, 100),
        (BehaviourAction.MEMBER_DAY, 50),
    ],
)
def test_behaviour_points_are_flat_and_not_pending(action: BehaviourAction, points: int) -> None:
    decision = evaluate_behaviour(demo(), behaviour(action), "diamond", 0)
    assert decision.points == points
    assert decision.pending_until is None
    assert decision.expires_at == NEVER


def test_behaviour_points_count_against_the_daily_cap() -> None:
    decision = evaluate_behaviour(demo(), behaviour(BehaviourAction.BIRTHDAY), "member", used_today=4_950)
    assert (decision.points, decision.capped_points) == (50, 50)


def test_producer_points_pass_through_uncapped_by_default() -> None:
    # Given partner points that would break the daily cap
    event = partner_points(8_000)

    # When evaluated with the demo config (which does not cap points events)
    decision = evaluate_points(demo(), event, "gold", used_today=4_000)

    # Then they are credited unchanged, with no tier multiple or pending period
    assert decision.points == 8_000
    assert decision.pending_until is None
    assert decision.explanation == "8000 = 8000 airline miles"


def test_producer_points_are_capped_when_the_program_opts_in() -> None:
    config = demo_with(caps={"per_member_per_day": 5_000, "include_points_events": True})
    decision = evaluate_points(config, partner_points(8_000), "gold", used_today=4_000)
    assert (decision.points, decision.capped_points) == (1_000, 7_000)


def test_refund_in_parts_claws_back_exactly_what_was_earned() -> None:
    # Given a 100-point earn on a 90 USD order, refunded in three 30 USD parts
    config, earned, order_amount = demo(), 100, Decimal("90")
    clawed, refunded = 0, Decimal(0)

    # When each part is clawed back with the running totals
    parts = []
    for _ in range(3):
        part = refund_clawback(config, earned, order_amount, Decimal("30"), clawed, previously_refunded=refunded)
        parts.append(part)
        clawed += part
        refunded += Decimal("30")

    # Then the parts add up to the whole earn, no more
    assert parts == [33, 33, 34]
    assert clawed == 100


def test_refund_without_running_total_never_claws_more_than_earned() -> None:
    # Given a refund larger than what remains unclawed
    config = demo_with(rounding="half_up")

    # When a second 'full' refund arrives for the same order
    first = refund_clawback(config, 90, Decimal("60"), Decimal("60"), already_clawed=0)
    second = refund_clawback(config, 90, Decimal("60"), Decimal("60"), already_clawed=first)

    # Then the first claws everything and the second nothing
    assert (first, second) == (90, 0)


def test_refund_claws_back_the_capped_earn_not_the_uncapped() -> None:
    decision = evaluate_purchase(demo(), purchase("300"), "member", used_today=4_900)
    assert isinstance(decision, EarnDecision)
    assert refund_clawback(demo(), decision, Decimal("300"), Decimal("150"), 0) == 50


def test_qualifying_tier_follows_rolling_spend() -> None:
    config = demo()
    assert qualifying_tier(config, QualifyingActivity(spend=Decimal("0"))).name == "member"
    assert qualifying_tier(config, QualifyingActivity(spend=Decimal("499.99"))).name == "member"
    assert qualifying_tier(config, QualifyingActivity(spend=Decimal("500"))).name == "silver"
    assert qualifying_tier(config, QualifyingActivity(spend=Decimal("4999"))).name == "gold"
    assert qualifying_tier(config, QualifyingActivity(spend=Decimal("1000000"))).name == "diamond"


def test_qualifying_tier_can_follow_points() -> None:
    config = demo_with(tier_qualification={"basis": "points", "window_months": 12})
    activity = QualifyingActivity(spend=Decimal("0"), points=2_500)
    assert qualifying_tier(config, activity).name == "gold"


def test_unknown_tier_wrong_program_or_currency_is_invalid_input() -> None:
    config = demo()
    with pytest.raises(InvalidInputError, match="unknown tier 'platinum'"):
        evaluate_purchase(config, purchase("60"), "platinum", 0)
    with pytest.raises(InvalidInputError, match="program"):
        evaluate_purchase(config, purchase("60").model_copy(update={"program": "other"}), "member", 0)
    with pytest.raises(InvalidInputError, match="EUR"):
        evaluate_purchase(config, purchase("60").model_copy(update={"currency": "EUR"}), "member", 0)
    with pytest.raises(InvalidInputError, match="used_today"):
        evaluate_purchase(config, purchase("60"), "member", -1)


def test_decision_is_frozen_and_serialisable() -> None:
    decision = evaluate_purchase(demo(), purchase("60", at=ORDINARY), "member", 0)
    dumped = decision.model_dump(mode="json")
    assert dumped["explanation"] == "60 = 60 base"
    with pytest.raises(ValueError, match="frozen"):
        decision.points = 1  # type: ignore[misc]


def test_calendar_year_expiry_counts_the_program_local_year() -> None:
    # Given calendar-year expiry (end of the next year) and a purchase at 20:00 on Dec 31 in New
    # York, which is already Jan 1 in UTC
    config = demo_with(expiry={"kind": "calendar_year", "years": 1})
    order = purchase("60", at=datetime(2026, 12, 31, 20, 0, tzinfo=NEW_YORK))

    # When it earns
    decision = evaluate_purchase(config, order, "member", 0)

    # Then the points belong to 2026 and expire at the end of 2027 in New York
    assert decision.expires_at == datetime(2027, 12, 31, 23, 59, 59, tzinfo=NEW_YORK)
    assert decision.earn_day == date(2026, 12, 31)


def test_explanation_shows_rounding_when_it_changes_the_total() -> None:
    decision = evaluate_purchase(demo(), purchase("10.75"), "silver", 0)
    # 10.75 x 1.2 = 12.9, floored to 12
    assert decision.points == 12
    assert decision.explanation == "12 = 10.75 base x1.2 silver tier - 0.9 rounding (floor)"
