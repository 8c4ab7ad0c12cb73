"""What a member sees about itself: balance buckets, points expiring soon, tier and progress.

The tier is the stored tier item and the progress is read from the qualifying activity tally:
the same two items `shared.tiers.Tiers` decides on and ingest earns with, so the API, ingest and
the tier job always agree (never the balance, never a recount of the entries).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

from pydantic import ConfigDict, Field

from shared.members import activity
from shared.model import Model
from shared.program.config import QualifyingBasis

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import tzinfo

    from shared.ledger.models import Lot
    from shared.members.records import TierRecord
    from shared.program.config import ProgramConfig, Tier

EXPIRING_WINDOW = timedelta(days=90)


class Expiring(Model):
    """Points that expire on one date."""

    model_config = ConfigDict(frozen=True)

    date: Annotated[date, Field(description="The local date (the program's time zone) they expire on.")]
    points: Annotated[int, Field(description="How many points expire then.")]


class TierStatus(Model):
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


def held_tier(config: ProgramConfig, stored: TierRecord | None) -> Tier:
    """The tier a member holds: its tier record (`MemberDirectory.get_tier`), the one ingest earns with.

    No item yet: the lowest tier; a tier a newer config removed: the lowest, as `Tiers` does.
    """
    return config.held_tier(stored.tier if stored else None)


def tier_status(
    config: ProgramConfig, stored: TierRecord | None, counters: Mapping[str, int], now: datetime
) -> TierStatus:
    """The tier held, and how far the qualifying activity (the tally's monthly counters, read as
    `shared.tiers.Tiers.activity` reads them) is from the next one."""
    held = held_tier(config, stored)
    counted = activity.in_window(config, counters, now)
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
