"""What a member sees about itself: balance buckets, points expiring soon, tier and progress.

Tier here is computed from the member's own entries over the program's qualifying window (the
qualifying activity, never the balance). A scheduled tier job may store tiers later; until then
this is the one definition the API uses.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from dateutil.relativedelta import relativedelta
from pydantic import BaseModel, ConfigDict

from shared.entries import Account, EntryKind
from shared.program import QualifyingActivity, QualifyingBasis
from shared.rules import qualifying_tier

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import tzinfo

    from shared.entries import Entry, Lot
    from shared.program import ProgramConfig

EXPIRING_WINDOW = timedelta(days=90)
QUALIFYING_KINDS = frozenset({EntryKind.EARN, EntryKind.EARN_PENDING})


class Expiring(BaseModel):
    model_config = ConfigDict(frozen=True)

    date: date
    points: int


class TierStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    tier: str
    basis: QualifyingBasis
    qualifying: Decimal
    next_tier: str | None = None
    needed_for_next: Decimal | None = None  # how much more qualifying activity reaches the next tier


def spendable(lots: Iterable[Lot], now: datetime, kept_until: datetime | None = None) -> int:
    return sum(lot.remaining for lot in lots if not lot.expired(now, kept_until))


def expiring(
    lots: Iterable[Lot], now: datetime, tz: tzinfo = UTC, kept_until: datetime | None = None
) -> list[Expiring]:
    """Points expiring soon by the date they go, as the program's local date (effective expiry)."""
    by_day: dict[date, int] = defaultdict(int)
    for lot in lots:
        expires = lot.expires(kept_until)
        if now < expires <= now + EXPIRING_WINDOW and lot.remaining:
            by_day[expires.astimezone(tz).date()] += lot.remaining
    return [Expiring(date=day, points=points) for day, points in sorted(by_day.items())]


def qualifying_activity(config: ProgramConfig, entries: Iterable[Entry], now: datetime) -> QualifyingActivity:
    since = now - relativedelta(months=config.tier_qualification.window_months)
    points = 0
    spend = Decimal(0)
    for entry in entries:
        if entry.kind not in QUALIFYING_KINDS or entry.event_time < since:
            continue
        points += entry.delta(Account.AVAILABLE) + entry.delta(Account.PENDING)
        try:
            spend += Decimal(entry.details.get("eligible_amount", "0"))
        except InvalidOperation:
            continue  # a detail written by another producer; it does not count as spend
    return QualifyingActivity(points=max(points, 0), spend=max(spend, Decimal(0)))


def tier_status(config: ProgramConfig, entries: Iterable[Entry], now: datetime) -> TierStatus:
    activity = qualifying_activity(config, entries, now)
    basis = config.tier_qualification.basis
    value = Decimal(activity.points) if basis is QualifyingBasis.POINTS else activity.spend
    tier = qualifying_tier(config, activity)
    above = [t for t in config.tiers if t.rank > tier.rank]
    nxt = min(above, key=lambda t: t.rank) if above else None
    return TierStatus(
        tier=tier.name,
        basis=basis,
        qualifying=value,
        next_tier=nxt.name if nxt else None,
        needed_for_next=(nxt.threshold - value) if nxt else None,
    )
