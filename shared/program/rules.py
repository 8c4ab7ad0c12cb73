"""The earn-rules engine: from a normalised event and a program config to an explained decision.

Pure functions, no I/O: the caller supplies everything that lives in the store (the member's tier,
the points already earned on the event's day, the sign-in streak), so the same event and inputs
always give the same decision. Money stays Decimal and every step stays exact; the only rounding
is one explicit quantize at the end, in the program's rounding mode. Days, promotion windows and
expiry follow the event's own time in the program's timezone, never the time it arrived.
docs/rules.md is the prose version of this file.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import ConfigDict, Field, computed_field

from shared.errors import InvalidInputError
from shared.events.model import BehaviourAction, BehaviourEvent, PointsEvent, PurchaseEvent
from shared.model import Model
from shared.program.config import (
    ProgramConfig,
    PromoStacking,
    Promotion,
    QualifyingActivity,
    QualifyingBasis,
    Rounding,
    Tier,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shared.events.model import LineItem

_ROUNDING = {
    Rounding.FLOOR: ROUND_FLOOR,
    Rounding.HALF_UP: ROUND_HALF_UP,
    Rounding.HALF_EVEN: ROUND_HALF_EVEN,
}
_ONE = Decimal(1)
_ZERO = Decimal(0)


class StepKind(StrEnum):
    BASE = "base"
    TIER = "tier"
    PROMO = "promo"
    BONUS = "bonus"
    BEHAVIOUR = "behaviour"
    PRODUCER = "producer"
    ROUNDING = "rounding"
    CAP = "cap"


class Step(Model):
    """One line of a decision's working. The steps of a decision sum exactly to its points."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: StepKind
    label: str
    points: Decimal
    # Set when this step multiplies everything before it, so the explanation can say "x2".
    factor: Decimal | None = None


class EarnDecision(Model):
    """What the rules award for one event, and why. The ledger posts `points` and keeps the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    program: str
    config_version: int
    tier: str
    points: Annotated[int, Field(ge=0)]
    uncapped_points: Annotated[int, Field(ge=0)]
    # The excess a cap cut off: recorded so support can see it, not silently lost.
    capped_points: Annotated[int, Field(ge=0)]
    pending_until: datetime | None
    expires_at: datetime
    # The program-local calendar day of the event: the key of the daily cap's counter.
    earn_day: date
    # The money the base earn was computed on; a refund claws back against the same measure.
    basis_amount: Decimal | None = None
    # Purchases: the exact points per unit of tier multiplier (base and multiplier promotions) and
    # the points no multiplier touches (fixed bonuses), so that the decision at another tier is
    # `points_at_tier` of them: how an earn is re-rated when an upgrade it missed arrives late.
    tier_basis: Decimal | None = None
    flat_points: Decimal | None = None
    breakdown: tuple[Step, ...]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def explanation(self) -> str:
        if not self.breakdown:
            return f"{self.points}"
        first, *rest = self.breakdown
        parts = [f"{self.points} = {_show(first.points)} {first.label}"]
        for step in rest:
            if step.factor is not None:
                # Factors come from the config and are shown as written there.
                parts.append(f"x{format(step.factor.normalize(), 'f')} {step.label}")
            elif step.points >= 0:
                parts.append(f"+ {_show(step.points)} {step.label}")
            else:
                parts.append(f"- {_show(-step.points)} {step.label}")
        return " ".join(parts)


def _show(value: Decimal) -> str:
    # Exact steps can carry long fractions (prorated discounts); two places is enough to read.
    shown = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN).normalize()
    return format(shown, "f")


def earn_day(config: ProgramConfig, moment: datetime) -> date:
    """The program-local calendar day an event belongs to, for daily caps and streaks."""
    if moment.tzinfo is None:
        raise InvalidInputError("event time must be timezone-aware")
    return moment.astimezone(config.tz).date()


def qualifying_tier(config: ProgramConfig, activity: QualifyingActivity) -> Tier:
    """The highest tier whose threshold the member's rolling qualifying activity reaches."""
    by_spend = config.tier_qualification.basis is QualifyingBasis.SPEND
    value = activity.spend if by_spend else Decimal(activity.points)
    reached = config.tiers[0]  # validated: sorted by rank, lowest threshold is 0
    for tier in config.tiers[1:]:
        if value >= tier.threshold:
            reached = tier
    return reached


def evaluate_purchase(config: ProgramConfig, event: PurchaseEvent, tier: str, used_today: int) -> EarnDecision:
    """Points for a purchase: base x tier x promotion, plus bonuses, rounded once, then capped."""
    _same_program(config, event.program)
    if event.currency != config.currency:
        raise InvalidInputError(
            f"purchase in {event.currency} for a program in {config.currency}; convert before earning",
            currency=event.currency,
        )
    member_tier = _tier(config, tier)
    local = event.occurred_at.astimezone(config.tz)
    amount = event.eligible_amount
    if config.earn_on.shipping:
        amount += event.shipping
    if config.earn_on.tax:
        amount += event.tax
    steps = _purchase_steps(config, event, local, member_tier, amount)

    pending_until = None
    if config.return_window_days:
        # Wall-clock arithmetic in the program's zone: 30 days later at the same local time, DST or not.
        pending_until = (local + timedelta(days=config.return_window_days)).astimezone(UTC)
    decision = _finish(config, event.occurred_at, member_tier, steps, used_today, True, pending_until, amount)
    # Every step is linear in the tier's multiplier (base, tier, multiplier promotions) or free of it
    # (fixed bonuses), so the steps at multipliers 1 and 2 give both parts exactly.
    once = _total(_purchase_steps(config, event, local, _scaled(member_tier, _ONE), amount))
    twice = _total(_purchase_steps(config, event, local, _scaled(member_tier, Decimal(2)), amount))
    return decision.model_copy(update={"tier_basis": twice - once, "flat_points": 2 * once - twice})


def points_at_tier(config: ProgramConfig, tier_basis: Decimal, flat_points: Decimal, tier: Tier) -> int:
    """A purchase's points before caps at another tier: what it would have earned at that tier."""
    return max(0, _round(tier_basis * tier.multiplier + flat_points, config.rounding))


def _scaled(tier: Tier, multiplier: Decimal) -> Tier:
    return tier.model_copy(update={"multiplier": multiplier})


def _purchase_steps(
    config: ProgramConfig, event: PurchaseEvent, local: datetime, member_tier: Tier, amount: Decimal
) -> list[Step]:
    shares = _line_shares(event)
    rate = config.base_rate
    steps = [Step(kind=StepKind.BASE, label="base", points=amount * rate)]
    if member_tier.multiplier != _ONE:
        extra = amount * rate * (member_tier.multiplier - _ONE)
        _push(steps, StepKind.TIER, f"{member_tier.name} tier", extra, member_tier.multiplier)
    _promotion_steps(config, event, local, member_tier, shares, amount, steps)
    _product_bonus_steps(config, shares, steps)
    return steps


def evaluate_behaviour(
    config: ProgramConfig,
    event: BehaviourEvent,
    tier: str,
    used_today: int,
    streak_days: int = 0,
) -> EarnDecision:
    """Flat points for an action; sign-ins add the bonus of any streak milestone reached today.

    `streak_days` counts consecutive program-local days with a sign-in, today included. A referral
    is priced here like any action; ingest evaluates it for the referrer when the referred member's
    first purchase posts (the app's referral event itself only records who referred whom).
    """
    _same_program(config, event.program)
    if streak_days < 0:
        raise InvalidInputError("streak_days cannot be negative", streak_days=streak_days)
    member_tier = _tier(config, tier)
    rules = config.behaviour
    flat = {
        BehaviourAction.SIGN_IN: rules.sign_in,
        BehaviourAction.REVIEW: rules.review,
        BehaviourAction.REFERRAL: rules.referral,
        BehaviourAction.BIRTHDAY: rules.birthday,
        BehaviourAction.MEMBER_DAY: rules.member_day,
    }[event.action]
    steps = [Step(kind=StepKind.BEHAVIOUR, label=event.action.value.replace("_", " "), points=Decimal(flat))]
    if event.action is BehaviourAction.SIGN_IN:
        for bonus in rules.streak_bonuses:
            repeats = bonus.repeat and streak_days > 0 and streak_days % bonus.day == 0
            if streak_days == bonus.day or repeats:
                _push(steps, StepKind.BONUS, f"{bonus.day}-day streak bonus", Decimal(bonus.points))
    return _finish(config, event.occurred_at, member_tier, steps, used_today, True, None, None)


def evaluate_points(config: ProgramConfig, event: PointsEvent, tier: str, used_today: int = 0) -> EarnDecision:
    """Producer-computed points pass through unchanged: no rate, tier or promotion applies again."""
    _same_program(config, event.program)
    member_tier = _tier(config, tier)
    steps = [Step(kind=StepKind.PRODUCER, label=event.reason, points=Decimal(event.points))]
    capped = config.caps.include_points_events
    return _finish(config, event.occurred_at, member_tier, steps, used_today, capped, None, None)


def refund_clawback(
    config: ProgramConfig,
    original: EarnDecision | int,
    original_amount: Decimal,
    refunded_amount: Decimal,
    already_clawed: int,
    previously_refunded: Decimal | None = None,
) -> int:
    """Points to claw back for a refund, in proportion to the money refunded.

    `original` is the decision (or the points recorded) for the purchase; the amounts must be on the
    same basis as that earn (see EarnDecision.basis_amount). Passing `previously_refunded` (the sum
    of earlier refunds) makes the proportion cumulative, so a refund in parts claws back exactly
    what a single full refund would; without it each part is rounded on its own. Either way the
    total never exceeds what was earned.
    """
    earned = original.points if isinstance(original, EarnDecision) else original
    if earned < 0 or already_clawed < 0:
        raise InvalidInputError("earned and clawed points cannot be negative")
    if original_amount < 0 or refunded_amount < 0 or (previously_refunded or _ZERO) < 0:
        raise InvalidInputError("refund amounts cannot be negative")
    remaining = max(0, earned - already_clawed)
    if remaining == 0 or refunded_amount == 0:
        return 0
    if original_amount == 0:
        # Nothing was paid for, so any refund undoes the whole earn (e.g. a bonus-only order).
        return remaining
    if previously_refunded is not None:
        refunded_total = min(previously_refunded + refunded_amount, original_amount)
        due = _round(Decimal(earned) * refunded_total / original_amount, config.rounding) - already_clawed
    else:
        part = min(refunded_amount, original_amount)
        due = _round(Decimal(earned) * part / original_amount, config.rounding)
    return min(max(due, 0), remaining)


def _same_program(config: ProgramConfig, program: str) -> None:
    if program != config.program:
        raise InvalidInputError(
            f"event for program {program!r} evaluated with the config of {config.program!r}",
            program=program,
        )


def _tier(config: ProgramConfig, name: str) -> Tier:
    try:
        return config.tier(name)
    except KeyError:
        known = ", ".join(tier.name for tier in config.tiers)
        raise InvalidInputError(f"unknown tier {name!r} (program has {known})", tier=name) from None


def _line_shares(event: PurchaseEvent) -> list[tuple[LineItem, Decimal]]:
    """Each line with the part of the eligible amount it stands for.

    Lines carry their own discounts, but an order-level discount only shows in eligible_amount.
    Scaling the lines down to it keeps bonuses from paying points on money nobody spent.
    """
    total = sum((line.amount for line in event.lines), _ZERO)
    if total <= event.eligible_amount or total == 0:
        return [(line, line.amount) for line in event.lines]
    scale = event.eligible_amount / total
    return [(line, line.amount * scale) for line in event.lines]


def _promotion_steps(
    config: ProgramConfig,
    event: PurchaseEvent,
    local: datetime,
    tier: Tier,
    shares: list[tuple[LineItem, Decimal]],
    amount: Decimal,
    steps: list[Step],
) -> None:
    rate = config.base_rate
    after_tier = _total(steps)
    active = [promo for promo in config.promotions if _promo_applies(promo, event, local, config)]
    boosts = []
    for promo in active:
        if promo.multiplier is None:
            continue
        if promo.filters_lines:
            matched = sum((share for line, share in shares if _promo_matches(promo, line)), _ZERO)
            extra = matched * rate * tier.multiplier * (promo.multiplier - _ONE)
        else:
            extra = after_tier * (promo.multiplier - _ONE)
        if extra > 0:
            boosts.append((promo, extra))
    if config.promo_stacking is PromoStacking.BEST and boosts:
        # max() keeps the first of equals, so a tie goes to the promotion listed first.
        boosts = [max(boosts, key=lambda boost: boost[1])]
    for promo, extra in boosts:
        _push(steps, StepKind.PROMO, promo.label, extra, promo.multiplier)
    for promo in active:
        if promo.bonus_points is None or amount < promo.min_amount:
            continue
        if not promo.filters_lines or any(_promo_matches(promo, line) for line, _ in shares):
            _push(steps, StepKind.PROMO, promo.label, Decimal(promo.bonus_points))


def _product_bonus_steps(config: ProgramConfig, shares: list[tuple[LineItem, Decimal]], steps: list[Step]) -> None:
    for bonus in config.product_bonuses:
        matched_lines = [
            (line, share)
            for line, share in shares
            if (bonus.new_product and line.new_product) or line.category in bonus.categories or line.sku in bonus.skus
        ]
        if not matched_lines:
            continue
        if bonus.multiplier is not None:
            matched = sum((share for _, share in matched_lines), _ZERO)
            extra = matched * config.base_rate * (bonus.multiplier - _ONE)
        else:
            extra = Decimal(sum(line.quantity for line, _ in matched_lines) * (bonus.per_unit or 0))
        if extra > 0:
            _push(steps, StepKind.BONUS, bonus.label, extra)


def _promo_applies(promo: Promotion, event: PurchaseEvent, local: datetime, config: ProgramConfig) -> bool:
    starts, ends = promo.window(config.tz)
    if not starts <= local < ends:
        return False
    return not promo.channels or event.channel in promo.channels


def _promo_matches(promo: Promotion, line: LineItem) -> bool:
    return line.category in promo.categories or line.sku in promo.skus


def _total(steps: Iterable[Step]) -> Decimal:
    return sum((step.points for step in steps), _ZERO)


def _push(steps: list[Step], kind: StepKind, label: str, points: Decimal, factor: Decimal | None = None) -> None:
    # A factor is shown only when it is literally true of everything before this step; otherwise
    # "x2" in the explanation would overstate an additive or line-level boost.
    running = _total(steps)
    shown = factor if factor is not None and running * (factor - _ONE) == points else None
    steps.append(Step(kind=kind, label=label, points=points, factor=shown))


def _round(value: Decimal, mode: Rounding) -> int:
    return int(value.quantize(_ONE, rounding=_ROUNDING[mode]))


def _finish(
    config: ProgramConfig,
    occurred_at: datetime,
    tier: Tier,
    steps: list[Step],
    used_today: int,
    capped: bool,
    pending_until: datetime | None,
    basis_amount: Decimal | None,
) -> EarnDecision:
    if used_today < 0:
        raise InvalidInputError("used_today cannot be negative", used_today=used_today)
    exact = _total(steps)
    uncapped = max(0, _round(exact, config.rounding))
    if Decimal(uncapped) != exact:
        steps.append(Step(kind=StepKind.ROUNDING, label=f"rounding ({config.rounding.value})", points=uncapped - exact))
    points = uncapped
    caps = config.caps
    if capped and caps.per_event is not None and points > caps.per_event:
        steps.append(Step(kind=StepKind.CAP, label="per-event cap", points=Decimal(caps.per_event - points)))
        points = caps.per_event
    if capped and caps.per_member_per_day is not None:
        room = max(0, caps.per_member_per_day - used_today)
        if points > room:
            steps.append(Step(kind=StepKind.CAP, label="daily cap", points=Decimal(room - points)))
            points = room
    local = occurred_at.astimezone(config.tz)
    return EarnDecision(
        program=config.program,
        config_version=config.version,
        tier=tier.name,
        points=points,
        uncapped_points=uncapped,
        capped_points=uncapped - points,
        pending_until=pending_until,
        expires_at=config.expiry_for(tier).expires_at(local, config.tz),
        earn_day=local.date(),
        basis_amount=basis_amount,
        breakdown=tuple(steps),
    )
