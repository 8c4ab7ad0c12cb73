"""Which lots a debit consumes: the booking policy (earliest expiry first, ties by lot id)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import (
    InsufficientPointsError,
    TooManyLotsError,
)
from shared.ledger.contract import MAX_LOTS_PER_OPERATION

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from shared.ledger.models import (
        Lot,
    )


def spend_order(lots: Iterable[Lot]) -> list[Lot]:
    """Earliest expiry first; ties by lot id so every run picks the same lots.

    Also earliest effective expiry first: max(own date, kept_until) never reorders two lots.
    """
    return sorted(lots, key=lambda lot: (lot.expires_at, lot.lot_id))


def take_from_lots(
    lots: Sequence[Lot], points: int, at: datetime, prefer: str = "", kept_until: datetime | None = None
) -> list[tuple[Lot, int]]:
    """Which lots a debit of `points` consumes and how much of each; `prefer` is taken first."""
    usable = [lot for lot in spend_order(lots) if not lot.expired(at, kept_until) and lot.remaining > 0]
    usable.sort(key=lambda lot: lot.lot_id != prefer)  # stable: keeps expiry order otherwise
    spendable = sum(lot.remaining for lot in usable)
    if spendable < points:
        raise InsufficientPointsError(
            f"needs {points} points, {spendable} available", needed=points, available=spendable
        )
    taken: list[tuple[Lot, int]] = []
    left = points
    for lot in usable:
        if left == 0:
            break
        amount = min(lot.remaining, left)
        taken.append((lot, amount))
        left -= amount
    if len(taken) > MAX_LOTS_PER_OPERATION:
        raise TooManyLotsError(
            f"this debit would touch {len(taken)} lots; at most {MAX_LOTS_PER_OPERATION} at once",
            lots=len(taken),
        )
    return taken


def spendable(lots: Iterable[Lot], at: datetime, kept_until: datetime | None = None) -> int:
    return sum(lot.remaining for lot in lots if not lot.expired(at, kept_until))
