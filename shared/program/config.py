"""A program's configuration: its point currency and the rules it runs by, as versioned data.

Every ledger entry records the version that produced it; changing the configuration never
rewrites history. Configs are validated here, so a bad one is refused before it can go live:
`parse_program` and `load_program` turn every validation failure into a `ConfigError` that names
the offending field. docs/rules.md describes each field and how the engine uses it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta
from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from shared.errors import ConfigError, InvalidInputError
from shared.events.model import Channel
from shared.infra.codec import ts
from shared.model import Model, field_default

if TYPE_CHECKING:
    from collections.abc import Mapping

ProgramId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
# Money and rates are Decimal end to end; a float in a config would silently lose cents.
Rate = Annotated[Decimal, Field(ge=0, le=Decimal(10_000), max_digits=12, decimal_places=6)]
Multiplier = Annotated[Decimal, Field(ge=0, le=Decimal(100), max_digits=10, decimal_places=6)]
Threshold = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]
BonusPoints = Annotated[int, Field(gt=0, le=10_000_000)]
AwardPoints = Annotated[int, Field(ge=0, le=10_000_000)]
CapPoints = Annotated[int, Field(gt=0, le=100_000_000)]

# Lots that never expire sort after every date in the store's keys.
NEVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


class ExpiryKind(StrEnum):
    NONE = "none"  # points never expire
    ROLLING = "rolling"  # N months after the earn
    CALENDAR_YEAR = "calendar_year"  # end of the year N years after the earn (N=0: same year)


def end_of_local_day(day: date, tz: tzinfo) -> datetime:
    """The last second of a calendar day where the program runs, in UTC (keys hold whole seconds)."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz).astimezone(UTC)


class ExpiryPolicy(Model):
    """When points expire. Dates are the program's local dates: points last to the end of that day.

    A member reads "expires on 10 March 2027" as usable all of that day where they live, so a lot
    expires at 23:59:59 local time on its date, whatever time of day it was earned.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ExpiryKind = ExpiryKind.ROLLING
    months: Annotated[int, Field(ge=1, le=120)] = 12
    years: Annotated[int, Field(ge=0, le=10)] = 1
    # Rolling only: the member's activity (shared.entries.activity_time: earning, redeeming,
    # exchanging; not gifts) keeps all of their points alive until `months` after the latest
    # activity. Only the program's own policy may say so (see ProgramConfig); docs/jobs.md.
    extend_on_activity: bool = False

    @model_validator(mode="after")
    def _check(self) -> ExpiryPolicy:
        if self.extend_on_activity and self.kind is not ExpiryKind.ROLLING:
            raise ValueError("extend_on_activity only makes sense with a rolling expiry")
        return self

    def expires_at(self, earned_at: datetime, tz: tzinfo = UTC) -> datetime:
        if self.kind is ExpiryKind.NONE:
            return NEVER
        local = earned_at.astimezone(tz).date()
        if self.kind is ExpiryKind.ROLLING:
            return end_of_local_day(local + relativedelta(months=self.months), tz)
        return end_of_local_day(date(local.year + self.years, 12, 31), tz)

    def extended_until(self, last_activity: datetime | None, tz: tzinfo = UTC) -> datetime | None:
        """Under expiry extended by activity, no point of the member expires before this; else None."""
        if not self.extend_on_activity or last_activity is None:
            return None
        return self.expires_at(last_activity, tz)


class Rounding(StrEnum):
    """How the one rounding at the end of an evaluation turns exact Decimal points into an int."""

    FLOOR = "floor"
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"


class QualifyingBasis(StrEnum):
    SPEND = "spend"  # eligible money spent in the window, in the program's currency
    POINTS = "points"  # points earned in the window (before any spend)


class PromoStacking(StrEnum):
    """What happens when several multiplier promotions apply to one event."""

    BEST = "best"  # only the promotion worth the most points applies
    ADDITIVE = "additive"  # each adds its own extra: x2 and x3 together give x4, not x6


class Tier(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    rank: Annotated[int, Field(ge=0, le=100)]
    # Rolling qualifying activity (see TierQualification.basis) needed to hold this tier.
    threshold: Threshold = Decimal(0)
    multiplier: Multiplier = Decimal(1)
    # None: the program's default expiry policy applies to points earned in this tier.
    expiry: ExpiryPolicy | None = None
    benefits: tuple[Label, ...] = ()


class TierQualification(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    basis: QualifyingBasis = QualifyingBasis.SPEND
    window_months: Annotated[int, Field(ge=1, le=36)] = 12
    # A member who no longer qualifies at the end of the period keeps the tier this much longer.
    grace_days: Annotated[int, Field(ge=0, le=365)] = 30


class QualifyingActivity(Model):
    """A member's totals over the qualifying window, as the tier job computes them from the ledger."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spend: Annotated[Decimal, Field(ge=0)] = Decimal(0)
    points: Annotated[int, Field(ge=0)] = 0


class EarnBasis(Model):
    """Which parts of an order earn, beyond the merchandise (which always does)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shipping: bool = False
    tax: bool = False


class Promotion(Model):
    """A time-boxed earn boost: a multiplier on the earn, or a fixed bonus per qualifying event.

    Naive start and end times are wall-clock times in the program's timezone, so "Dec 24 00:00"
    means midnight where the program runs. The window is half-open: [starts_at, ends_at).
    Empty filters match everything; category and sku filters select lines of the order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: RuleId
    label: Label
    starts_at: datetime
    ends_at: datetime
    multiplier: Annotated[Decimal, Field(ge=1, le=100, max_digits=10, decimal_places=6)] | None = None
    bonus_points: BonusPoints | None = None
    # A fixed bonus needs at least this much earning spend, so a one-cent order cannot farm it.
    min_amount: Annotated[Decimal, Field(ge=0)] = Decimal(0)
    channels: frozenset[Channel] = frozenset()
    categories: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()

    @model_validator(mode="after")
    def _check(self) -> Promotion:
        if (self.multiplier is None) == (self.bonus_points is None):
            raise ValueError(f"promotion {self.id!r} needs exactly one of multiplier or bonus_points")
        if (self.starts_at.tzinfo is None) != (self.ends_at.tzinfo is None):
            raise ValueError(f"promotion {self.id!r} mixes a naive and a timezone-aware time")
        if self.ends_at <= self.starts_at:
            raise ValueError(f"promotion {self.id!r} ends ({self.ends_at}) before it starts ({self.starts_at})")
        return self

    @property
    def filters_lines(self) -> bool:
        return bool(self.categories or self.skus)

    def window(self, tz: tzinfo) -> tuple[datetime, datetime]:
        def aware(moment: datetime) -> datetime:
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)

        return aware(self.starts_at), aware(self.ends_at)


class ProductBonus(Model):
    """A standing bonus on matching lines: a multiplier on their base earn or fixed points per unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: RuleId
    label: Label
    categories: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    new_product: bool = False  # match lines flagged as new products
    multiplier: Annotated[Decimal, Field(gt=1, le=100, max_digits=10, decimal_places=6)] | None = None
    per_unit: BonusPoints | None = None

    @model_validator(mode="after")
    def _check(self) -> ProductBonus:
        if (self.multiplier is None) == (self.per_unit is None):
            raise ValueError(f"product bonus {self.id!r} needs exactly one of multiplier or per_unit")
        if not (self.categories or self.skus or self.new_product):
            # An unfiltered bonus is a base-rate change in disguise; say so in the base rate.
            raise ValueError(f"product bonus {self.id!r} matches nothing: set categories, skus or new_product")
        return self


class StreakBonus(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    day: Annotated[int, Field(ge=2, le=3660)]
    points: BonusPoints
    # True: every multiple of `day` (30, 60, 90...); False: only the day the streak reaches it.
    repeat: bool = False


class BehaviourRules(Model):
    """Flat points for things members do. Zero switches an action off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sign_in: AwardPoints = 0
    streak_bonuses: tuple[StreakBonus, ...] = ()
    review: AwardPoints = 0
    # Paid to the referrer when the referred member's first purchase posts: the app reports the
    # referral, ingest records it and pays it (docs/channels.md, "Referrals").
    referral: AwardPoints = 0
    birthday: AwardPoints = 0
    member_day: AwardPoints = 0

    @field_validator("streak_bonuses")
    @classmethod
    def _distinct_days(cls, bonuses: tuple[StreakBonus, ...]) -> tuple[StreakBonus, ...]:
        days = [bonus.day for bonus in bonuses]
        if len(days) != len(set(days)):
            raise ValueError("two streak bonuses share a day")
        return bonuses


class Caps(Model):
    """Limits on earning. What a cap cuts off is recorded on the decision, never silently dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_member_per_day: CapPoints | None = None  # by event-time day in the program's timezone
    per_event: CapPoints | None = None
    # Producer-computed points are settled with the partner that sent them; capping them would
    # leave the member's ledger and the partner's invoice disagreeing. Opt in deliberately.
    include_points_events: bool = False


class ShortfallPolicy(StrEnum):
    """What happens to the points a refund should take back when the member has already spent them."""

    WRITE_OFF = "write_off"  # the program bears them; counted in the figures as written off
    RECOVER = "recover"  # the member owes them: the next points earned repay the debt first


class RefundRules(Model):
    """Refunds claw back in proportion (docs/channels.md, "Refunds policy"); this says what a shortfall is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shortfall: ShortfallPolicy = ShortfallPolicy.WRITE_OFF


class FlagHold(StrEnum):
    """What an open flag holds besides new earns (which it always holds, pending)."""

    SPENDING = "spending"  # redemptions, donations, draw tickets, checkout holds
    GIFTING = "gifting"  # gifts sent to other members
    EXCHANGING = "exchanging"  # exchanges to other programs, transfers out to partner brands


class AnomalyRules(Model):
    """Velocity thresholds the stream watcher flags on; None switches a check off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # What a flagged member may not do until an operator decides the flag (docs/channels.md).
    flag_holds: frozenset[FlagHold] = frozenset(FlagHold)

    max_earns_per_card_per_hour: Annotated[int, Field(ge=1, le=10_000)] | None = 20
    max_exchanges_per_member_per_hour: Annotated[int, Field(ge=1, le=10_000)] | None = 10
    max_gifts_per_member_per_hour: Annotated[int, Field(ge=1, le=10_000)] | None = 10
    # The same order id arriving from two channels is always suspicious when this is on.
    same_order_two_channels: bool = True

    @field_serializer("flag_holds")
    def _flag_holds_in_order(self, holds: frozenset[FlagHold]) -> list[str]:
        # A set iterates in no fixed order: the config's JSON (and the version hashed from it) must not vary.
        return sorted(holds)


class Sunset(Model):
    """The announced end of a program: earning stops, redemption stays open, then points expire."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    announced_at: AwareDatetime
    earning_ends_at: AwareDatetime
    ends_at: AwareDatetime  # redemption closes; every remaining lot expires with reason "program ended"

    @model_validator(mode="after")
    def _check(self) -> Sunset:
        if not self.announced_at < self.earning_ends_at <= self.ends_at:
            raise ValueError("a sunset needs announced_at < earning_ends_at <= ends_at")
        return self


class ProgramConfig(Model):
    """The live rules of one program (one point currency)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    program: ProgramId
    version: Annotated[int, Field(ge=1)] = 1
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    # What one point costs the program in `currency`: the money value of the liability on the
    # console (docs/console.md). None (configs published before it existed): shown in points only.
    point_value: Annotated[Decimal, Field(gt=0, le=Decimal(10_000), max_digits=16, decimal_places=8)] | None = None
    # Default expiry; a tier may override it (e.g. the top tier's points never expire).
    expiry: ExpiryPolicy = field_default(ExpiryPolicy)
    timezone: str = "UTC"
    base_rate: Rate = Decimal(1)  # points per currency unit of earning spend
    rounding: Rounding = Rounding.FLOOR
    earn_on: EarnBasis = field_default(EarnBasis)
    tier_qualification: TierQualification = field_default(TierQualification)
    tiers: tuple[Tier, ...] = (field_default(Tier, name="member", rank=0),)
    promotions: tuple[Promotion, ...] = ()
    promo_stacking: PromoStacking = PromoStacking.BEST
    product_bonuses: tuple[ProductBonus, ...] = ()
    behaviour: BehaviourRules = field_default(BehaviourRules)
    caps: Caps = field_default(Caps)
    # Purchase points stay pending this many days (the return window); 0 credits them at once.
    return_window_days: Annotated[int, Field(ge=0, le=365)] = 0
    # Members hear about expiring points this many days before; 0 switches reminders off.
    reminder_days: Annotated[int, Field(ge=0, le=365)] = 30
    anomaly: AnomalyRules = field_default(AnomalyRules)
    refunds: RefundRules = field_default(RefundRules)
    sunset: Sunset | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {name!r}") from exc
        return name

    @field_validator("tiers")
    @classmethod
    def _tier_ladder(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        if not tiers:
            raise ValueError("a program needs at least one tier")
        names = [tier.name for tier in tiers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate tier names: {', '.join(duplicates)}")
        ladder = sorted(tiers, key=lambda tier: tier.rank)
        for lower, upper in zip(ladder, ladder[1:], strict=False):
            if lower.rank == upper.rank:
                raise ValueError(f"tiers {lower.name!r} and {upper.name!r} share rank {lower.rank}")
            if upper.threshold <= lower.threshold:
                raise ValueError(
                    f"tiers overlap: {upper.name!r} (rank {upper.rank}) needs {upper.threshold}, "
                    f"not more than {lower.name!r} (rank {lower.rank}) at {lower.threshold}"
                )
        if ladder[0].threshold != 0:
            # Otherwise a new member would have no tier at all.
            raise ValueError(f"the lowest tier {ladder[0].name!r} must have threshold 0")
        return tuple(ladder)

    @model_validator(mode="after")
    def _activity_extends_the_whole_account(self) -> ProgramConfig:
        # Activity keeps all of a member's points alive, whatever tier earned them, so the rule
        # (and its months) is the program's; a tier saying it would read as if it were per tier.
        if any(t.expiry is not None and t.expiry.extend_on_activity for t in self.tiers):
            raise ValueError("extend_on_activity belongs on the program's expiry, not a tier's")
        return self

    @field_validator("promotions")
    @classmethod
    def _distinct_promotions(cls, promotions: tuple[Promotion, ...]) -> tuple[Promotion, ...]:
        ids = [promo.id for promo in promotions]
        if len(ids) != len(set(ids)):
            raise ValueError("two promotions share an id")
        return promotions

    @field_validator("product_bonuses")
    @classmethod
    def _distinct_bonuses(cls, bonuses: tuple[ProductBonus, ...]) -> tuple[ProductBonus, ...]:
        ids = [bonus.id for bonus in bonuses]
        if len(ids) != len(set(ids)):
            raise ValueError("two product bonuses share an id")
        return bonuses

    @property
    def tz(self) -> ZoneInfo:
        # ZoneInfo caches instances itself, so this is a dict lookup after the first call.
        return ZoneInfo(self.timezone)

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)

    def held_tier(self, name: str | None) -> Tier:
        """The tier a member with this stored tier name earns at: no name yet, or a tier a newer
        config removed or renamed, is the base tier (never a failure)."""
        return next((tier for tier in self.tiers if tier.name == name), self.tiers[0])

    def expiry_for(self, tier: Tier) -> ExpiryPolicy:
        return tier.expiry if tier.expiry is not None else self.expiry

    def kept_until(self, last_activity: datetime | None) -> datetime | None:
        """No lot of a member last active then expires before this (None: no extension by activity)."""
        return self.expiry.extended_until(last_activity, self.tz)


def _reasons(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_program(data: Mapping[str, Any] | str | bytes) -> ProgramConfig:
    """Validate a config from a mapping or JSON text; any failure is a ConfigError with the reasons."""
    try:
        if isinstance(data, str | bytes):
            return ProgramConfig.model_validate_json(data)
        return ProgramConfig.model_validate(data)
    except ValidationError as exc:
        reasons = _reasons(exc)
        raise ConfigError(f"invalid program config: {reasons}", reasons=reasons) from exc


def load_program(path: str | Path) -> ProgramConfig:
    """Read and validate a program config JSON file (seeds, admin uploads)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read program config {path}: {exc.strerror}", path=str(path)) from exc
    return parse_program(text)


def validate_policy_for(policy: ExpiryPolicy, earned_at: datetime, tz: tzinfo = UTC) -> datetime:
    """The expiry a policy gives an earn, refused when it is not after the earn."""
    expires = policy.expires_at(earned_at, tz)
    if expires <= earned_at:
        raise InvalidInputError(f"policy {policy.kind} makes points earned {ts(earned_at)} expire at {ts(expires)}")
    return expires
