"""The rewards catalogue (versioned config) and redeeming from it.

Stock and limits are enforced by Guards in the ledger's own transaction (see shared.ledger.Guard):
the spend entry, the stock counter and the member's limit counters commit together or not at all,
so two concurrent redemptions can never both take the last item.

Points + cash: a reward may carry a cash price (the price paid entirely in money). A member paying
`p` of the reward's `points` in points pays `cash_price * (points - p) / points` in money, rounded
up to the currency's cent so the program never collects less than the listed price.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.errors import (
    ConfigError,
    InvalidInputError,
    LimitReachedError,
    OutOfStockError,
    RewardUnavailableError,
)
from shared.infra import keys
from shared.ledger.contract import Guard, GuardRefusedError
from shared.model import Model, field_default
from shared.program.config import Label, ProgramId, RuleId

if TYPE_CHECKING:
    from shared.ledger.commands import Spend
    from shared.ledger.ledger import Ledger
    from shared.ledger.models import Entry
    from shared.program.store import Documents

CENT = Decimal("0.01")
PointsCost = Annotated[int, Field(gt=0, le=10_000_000)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class RewardKind(StrEnum):
    """What a reward is: a thing, a code, a service, or points given to a cause."""

    PHYSICAL = "physical"
    DIGITAL = "digital"
    SERVICE = "service"
    DONATION = "donation"  # points given to a cause; `points` is the smallest gift


class Reward(Model):
    """A reward of the catalogue, with its price and the rules for redeeming it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[RuleId, Field(description="The reward's id in the catalogue.")]
    name: Annotated[Label, Field(description="Its name, for people.")]
    kind: Annotated[RewardKind, Field(description="What it is.")]
    points: Annotated[PointsCost, Field(description="Its price in points (for a donation: the smallest donation).")]
    cash_price: Annotated[
        Money | None,
        Field(description="Its price paid entirely in money; set, it may be paid in points + cash. Decimal string."),
    ] = None
    min_balance: Annotated[int, Field(ge=0, description="Spendable points a member needs before redeeming it.")] = 0
    per_member_limit: Annotated[
        Annotated[int, Field(gt=0)] | None, Field(description="How many one member may ever redeem; null: no limit.")
    ] = None
    per_period_limit: Annotated[
        Annotated[int, Field(gt=0)] | None,
        Field(description="How many one member may redeem per period of `period_days`; null: no limit."),
    ] = None
    period_days: Annotated[
        int, Field(ge=1, le=366, description="The length of a period for `per_period_limit`, in days.")
    ] = 30
    stock: Annotated[
        Annotated[int, Field(ge=0)] | None,
        Field(description="How many there are in all; null: unlimited (digital rewards, donations)."),
    ] = None
    tiers: Annotated[frozenset[str], Field(description="The tiers that may redeem it; empty: every tier.")] = (
        frozenset()
    )
    available_from: Annotated[AwareDatetime | None, Field(description="Redeemable from then; null: no start.")] = None
    available_until: Annotated[AwareDatetime | None, Field(description="Redeemable until then; null: no end.")] = None
    cause: Annotated[Label | None, Field(description="A donation's cause; set on donations only.")] = None

    @model_validator(mode="after")
    def _check(self) -> Reward:
        if self.available_from and self.available_until and self.available_until <= self.available_from:
            raise ValueError(f"reward {self.id!r} is never available: its window ends before it starts")
        if (self.kind is RewardKind.DONATION) != (self.cause is not None):
            raise ValueError(f"reward {self.id!r}: a donation needs a cause, and only a donation has one")
        return self


class GiftPolicy(Model):
    """Gifts between members of one program; kept with the catalogue (both are what members can do with points)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    daily_limit: Annotated[int, Field(gt=0, le=100_000_000)] = 5_000  # points a member may send per UTC day
    minimum: Annotated[int, Field(gt=0)] = 1
    # Received points stay held this many days (e.g. against fraud), then become spendable.
    hold_days: Annotated[int, Field(ge=0, le=90)] = 0


class Catalogue(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    program: ProgramId
    version: Annotated[int, Field(ge=1)]
    rewards: tuple[Reward, ...] = ()
    gifts: GiftPolicy = field_default(GiftPolicy)

    @field_validator("rewards")
    @classmethod
    def _distinct(cls, rewards: tuple[Reward, ...]) -> tuple[Reward, ...]:
        ids = [r.id for r in rewards]
        if len(ids) != len(set(ids)):
            raise ValueError("two rewards share an id")
        return rewards

    def reward(self, reward_id: str) -> Reward:
        for reward in self.rewards:
            if reward.id == reward_id:
                return reward
        raise RewardUnavailableError(f"no reward {reward_id!r} in catalogue v{self.version}", reward=reward_id)


def parse_catalogue(body: object) -> Catalogue:
    try:
        return Catalogue.model_validate(body)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid catalogue: {reasons}", reasons=reasons) from exc


class CashSplit(Model):
    model_config = ConfigDict(frozen=True)

    points: int
    cash: Decimal
    currency: str


def split(reward: Reward, points: int | None, quantity: int, currency: str) -> CashSplit:
    full = reward.points * quantity
    used = full if points is None else points
    if used > full or used <= 0:
        raise InvalidInputError(f"pay between 1 and {full} points for this reward")
    if used < full and reward.cash_price is None:
        raise InvalidInputError(f"reward {reward.id!r} cannot be paid partly in cash")
    cash = Decimal(0)
    if used < full:
        assert reward.cash_price is not None
        cash = (reward.cash_price * quantity * (full - used) / full).quantize(CENT, rounding=ROUND_CEILING)
    return CashSplit(points=used, cash=cash, currency=currency)


def check_available(reward: Reward, tier: str, spendable: int, now: datetime) -> None:
    if reward.available_from and now < reward.available_from:
        raise RewardUnavailableError(f"reward {reward.id!r} is available from {reward.available_from.isoformat()}")
    if reward.available_until and now >= reward.available_until:
        raise RewardUnavailableError(f"reward {reward.id!r} was available until {reward.available_until.isoformat()}")
    if reward.tiers and tier not in reward.tiers:
        raise RewardUnavailableError(f"reward {reward.id!r} is for {', '.join(sorted(reward.tiers))} members")
    if spendable < reward.min_balance:
        raise RewardUnavailableError(f"reward {reward.id!r} needs a balance of at least {reward.min_balance}")


def guards(program: str, member: str, reward: Reward, quantity: int, now: datetime) -> list[Guard]:
    found: list[Guard] = []
    if reward.stock is not None:
        found.append(
            Guard(
                key=keys.reward_stock(program, reward.id),
                amount=quantity,
                limit=reward.stock,
                code=OutOfStockError.code,
                detail=f"reward {reward.id!r} is out of stock",
            )
        )
    if reward.per_member_limit is not None:
        found.append(
            Guard(
                key=keys.reward_limit(program, member, reward.id),
                amount=quantity,
                limit=reward.per_member_limit,
                detail=f"reward {reward.id!r} is limited to {reward.per_member_limit} per member",
            )
        )
    if reward.per_period_limit is not None:
        # Fixed periods counted from day 1 of the proleptic calendar: every member shares boundaries.
        start = date.fromordinal((now.date().toordinal() // reward.period_days) * reward.period_days or 1)
        found.append(
            Guard(
                key=keys.reward_limit(program, member, reward.id, start.isoformat()),
                amount=quantity,
                limit=reward.per_period_limit,
                detail=f"reward {reward.id!r} is limited to {reward.per_period_limit} per {reward.period_days} days",
            )
        )
    return found


def spend_guarded(ledger: Ledger, cmd: Spend, limits: list[Guard]) -> Entry:
    """Post a spend with its guards; a refused guard becomes its typed error."""
    try:
        return ledger.spend(cmd, guards=limits)
    except GuardRefusedError as refused:
        if refused.guard.code == OutOfStockError.code:
            raise OutOfStockError(refused.guard.detail) from refused
        raise LimitReachedError(refused.guard.detail) from refused


def live_catalogue(documents: Documents, program: str) -> Catalogue:
    body = documents.live(keys.catalogue_pk(program))
    if body is None:
        return Catalogue(program=program, version=1)
    return Catalogue.model_validate_json(body)


def publish_catalogue(documents: Documents, catalogue: Catalogue) -> Catalogue:
    if not documents.publish(keys.catalogue_pk(catalogue.program), catalogue.version, catalogue.model_dump_json()):
        raise ConfigError(f"catalogue version {catalogue.version} exists or is not newer than the live one")
    return catalogue
