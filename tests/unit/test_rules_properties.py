"""Properties of the earn rules that must hold for any amount, tier, time, cap state and rounding."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events.model import BehaviourAction, PurchaseEvent
from shared.program.config import ProgramConfig, QualifyingActivity, Rounding
from shared.program.rules import (
    evaluate_behaviour,
    evaluate_purchase,
    points_at_tier,
    qualifying_tier,
    refund_clawback,
)
from tests.unit.rules_factories import behaviour, demo_with, line, purchase

# Built once: parsing a config per example would dominate the run time.
_CONFIGS: dict[Rounding, ProgramConfig] = {
    mode: demo_with(
        rounding=mode.value,
        caps={"per_member_per_day": 5_000, "per_event": 3_000},
        promotions=[
            {
                "id": "holiday",
                "label": "holiday promo",
                "multiplier": "2",
                "starts_at": "2026-12-24T00:00:00",
                "ends_at": "2026-12-27T00:00:00",
            },
            {
                "id": "toys",
                "label": "toy days",
                "multiplier": "3",
                "categories": ["toys"],
                "starts_at": "2026-12-20T00:00:00",
                "ends_at": "2026-12-31T00:00:00",
            },
            {
                "id": "gift",
                "label": "holiday gift",
                "bonus_points": 100,
                "min_amount": "50",
                "starts_at": "2026-12-24T00:00:00",
                "ends_at": "2026-12-27T00:00:00",
            },
        ],
        earn_on={"shipping": True, "tax": False},
    )
    for mode in Rounding
}

amounts = st.decimals(min_value=0, max_value=20_000, places=2, allow_nan=False, allow_infinity=False)
modes = st.sampled_from(list(Rounding))
tiers = st.sampled_from(["member", "silver", "gold", "diamond"])
used = st.integers(min_value=0, max_value=8_000)
# December 2026 is dense with windows; the rest of the range checks ordinary days.
moments = st.datetimes(min_value=datetime(2026, 11, 1), max_value=datetime(2027, 1, 31), timezones=st.just(UTC))
toy_share = st.decimals(min_value=0, max_value=1, places=2)


def _order(amount: Decimal, at: datetime, share: Decimal) -> PurchaseEvent:
    toys = (amount * share).quantize(Decimal("0.01"))
    lines = (line("toy", str(toys), category="toys", new_product=True), line("book", str(amount - toys)))
    return purchase(amount, at=at, lines=lines, shipping="4.99")


@settings(max_examples=150, deadline=None)
@given(amount=amounts, at=moments, tier=tiers, used_today=used, mode=modes, share=toy_share)
def test_points_are_never_negative_and_never_exceed_the_caps(
    amount: Decimal, at: datetime, tier: str, used_today: int, mode: Rounding, share: Decimal
) -> None:
    # Given any order, time, tier, earlier earn today and rounding mode
    config = _CONFIGS[mode]
    order = _order(amount, at, share)

    # When the rules run
    decision = evaluate_purchase(config, order, tier, used_today)

    # Then points are whole, non-negative, within both caps, and the excess is accounted for
    assert decision.points >= 0
    assert decision.points <= 3_000
    assert decision.points <= max(0, 5_000 - used_today)
    assert decision.points + decision.capped_points == decision.uncapped_points
    assert sum(step.points for step in decision.breakdown) == decision.points


@settings(max_examples=150, deadline=None)
@given(a=amounts, b=amounts, at=moments, tier=tiers, used_today=used, mode=modes)
def test_more_money_never_earns_fewer_points(
    a: Decimal, b: Decimal, at: datetime, tier: str, used_today: int, mode: Rounding
) -> None:
    # Given two orders that differ only in amount
    low, high = sorted((a, b))
    config = _CONFIGS[mode]

    # When both earn under the same conditions
    low_points = evaluate_purchase(config, purchase(low, at=at), tier, used_today).points
    high_points = evaluate_purchase(config, purchase(high, at=at), tier, used_today).points

    # Then the larger order earns at least as much
    assert low_points <= high_points


@settings(max_examples=200, deadline=None)
@given(
    earned=st.integers(min_value=0, max_value=1_000_000),
    original=st.decimals(min_value=Decimal("0.01"), max_value=100_000, places=2),
    cuts=st.lists(st.decimals(min_value=0, max_value=1, places=3), min_size=1, max_size=8),
    mode=modes,
    cumulative=st.booleans(),
)
def test_partial_refunds_never_claw_back_more_than_was_earned(
    earned: int, original: Decimal, cuts: list[Decimal], mode: Rounding, cumulative: bool
) -> None:
    # Given an earn and a series of partial refunds, possibly over-refunding the order in total
    config = _CONFIGS[mode]
    clawed, refunded = 0, Decimal(0)

    # When each refund claws back in turn
    for cut in cuts:
        part_amount = (original * cut).quantize(Decimal("0.01"))
        previous = refunded if cumulative else None
        part = refund_clawback(config, earned, original, part_amount, clawed, previously_refunded=previous)
        assert part >= 0
        clawed += part
        refunded += part_amount

    # Then the total never exceeds the earn, and with running totals a full refund takes it all
    assert clawed <= earned
    if cumulative and refunded >= original:
        assert clawed == earned


@settings(max_examples=100, deadline=None)
@given(streak=st.integers(min_value=0, max_value=400), used_today=used, tier=tiers)
def test_sign_in_points_respect_the_daily_cap(streak: int, used_today: int, tier: str) -> None:
    config = _CONFIGS[Rounding.FLOOR]
    decision = evaluate_behaviour(config, behaviour(BehaviourAction.SIGN_IN), tier, used_today, streak)
    assert 0 <= decision.points <= max(0, 5_000 - used_today)
    assert decision.uncapped_points in (5, 105)


@settings(max_examples=100, deadline=None)
@given(low=amounts, high=amounts)
def test_more_qualifying_spend_never_lowers_the_tier(low: Decimal, high: Decimal) -> None:
    # Given two members whose rolling spend differs
    low, high = sorted((low, high))
    config = _CONFIGS[Rounding.FLOOR]

    # When their tiers are evaluated
    lower = qualifying_tier(config, QualifyingActivity(spend=low))
    higher = qualifying_tier(config, QualifyingActivity(spend=high))

    # Then the bigger spender is at least as high, and each tier's threshold is met
    assert lower.rank <= higher.rank
    assert lower.threshold <= low
    assert higher.threshold <= high


@settings(max_examples=200, deadline=None)
@given(amount=amounts, at=moments, rated=tiers, other=tiers, mode=modes, share=toy_share)
def test_an_earn_re_rated_at_another_tier_equals_its_evaluation_at_that_tier(
    amount: Decimal, at: datetime, rated: str, other: str, mode: Rounding, share: Decimal
) -> None:
    # Given a purchase evaluated at one tier (promotions, line promotions, bonuses, shipping, any rounding)
    config = _CONFIGS[mode]
    order = _order(amount, at, share)
    first = evaluate_purchase(config, order, rated, 0)
    assert first.tier_basis is not None and first.flat_points is not None

    # When it is re-rated at another tier from what the first decision recorded
    again = points_at_tier(config, first.tier_basis, first.flat_points, config.tier(other))

    # Then it is exactly what evaluating it at that tier gives, before caps
    assert again == evaluate_purchase(config, order, other, 0).uncapped_points
