"""What a member sees about itself: balance buckets, points expiring soon, tier and progress.

The tier is the stored tier item and the progress is read from the qualifying activity tally:
the same two items `shared.tiers.Tiers` decides on and ingest earns with, so the API, ingest and
the tier job always agree (never the balance, never a recount of the entries).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from shared import activity
from shared.program import QualifyingBasis
from shared.store import JobStore

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shared.entries import Lot
    from shared.program import ProgramConfig
    from shared.store import DynamoStore

EXPIRING_WINDOW = timedelta(days=90)


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


def spendable(lots: Iterable[Lot], now: datetime) -> int:
    return sum(lot.remaining for lot in lots if not lot.expired(now))


def expiring(lots: Iterable[Lot], now: datetime) -> list[Expiring]:
    by_day: dict[date, int] = defaultdict(int)
    for lot in lots:
        if now < lot.expires_at <= now + EXPIRING_WINDOW and lot.remaining:
            by_day[lot.expires_at.date()] += lot.remaining
    return [Expiring(date=day, points=points) for day, points in sorted(by_day.items())]


def tier_status(store: DynamoStore, config: ProgramConfig, member: str, now: datetime) -> TierStatus:
    """The member's tier as stored, and how far its qualifying activity is from the next one.

    Two items, read as `shared.tiers.Tiers` reads them (`JobStore.get_tier`, `tally_counters`).
    """
    items = JobStore(store)
    stored = items.get_tier(config.program, member)
    tiers = {tier.name: tier for tier in config.tiers}
    # No tier item yet: the lowest tier; a tier a newer config removed: the lowest, as Tiers does.
    held = tiers.get(str(stored["tier"]) if stored else "", config.tiers[0])
    counted = activity.in_window(config, items.tally_counters(config.program, member, activity.ACTIVITY), now)
    basis = config.tier_qualification.basis
    value = Decimal(counted.points) if basis is QualifyingBasis.POINTS else counted.spend
    above = [tier for tier in config.tiers if tier.rank > held.rank]
    nxt = min(above, key=lambda tier: tier.rank) if above else None
    return TierStatus(
        tier=held.name,
        basis=basis,
        qualifying=value,
        next_tier=nxt.name if nxt else None,
        # Reached but not moved yet (a flagged member waits for its decision): nothing more needed.
        needed_for_next=max(nxt.threshold - value, Decimal(0)) if nxt else None,
    )
