"""Qualifying activity for tiers, kept as monthly counters so an earn never reads a member's history.

One tally item per member and program (`activity`) holds two counters per calendar month of the
program's timezone: points earned (`pts#<YYYY-MM>`) and qualifying spend in ten-thousandths
(`spend#<YYYY-MM>`). Each counter is attributed to the month of the purchase or event itself, so a
late event and a later refund land in the same month as the earn they belong to. They change in
the same transaction as the ledger entry that moves them:

- an earn adds its points (pending ones too) and, for a purchase, the money it earned on;
- a refund's clawback takes back the points clawed and the money refunded (never more than earned);
- a void takes back the whole earn;
- a merge adds the merged member's counters to the survivor's (once).

The window is the month of `at` plus the `window_months` full months before it, so it never
counts less than the exact rolling window would (it may count up to one month more).
Pure functions: the store reads and writes the item, ingest and the tier review use these.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from shared.ledger.contract import Tally
from shared.program.config import QualifyingActivity

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from shared.program.config import ProgramConfig

ACTIVITY = "activity"
POINTS = "pts#"
SPEND = "spend#"
# Money in counters is kept in ten-thousandths, the precision of the event model's money.
MONEY_SCALE = Decimal(10_000)
# TierQualification allows windows up to 36 months; counters older than that (plus the current month) are dropped.
MAX_WINDOW_MONTHS = 36


def month_of(config: ProgramConfig, moment: datetime) -> str:
    return moment.astimezone(config.tz).strftime("%Y-%m")


def window(config: ProgramConfig, at: datetime) -> list[str]:
    """The months that count at `at`: its own month and the `window_months` before it."""
    local = at.astimezone(config.tz)
    months = []
    year, month = local.year, local.month
    for _ in range(config.tier_qualification.window_months + 1):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def in_window(config: ProgramConfig, counters: Mapping[str, int], at: datetime) -> QualifyingActivity:
    points = spend = 0
    for month in window(config, at):
        points += counters.get(POINTS + month, 0)
        spend += counters.get(SPEND + month, 0)
    return QualifyingActivity(points=max(points, 0), spend=max(Decimal(spend) / MONEY_SCALE, Decimal(0)))


def change(config: ProgramConfig, at: datetime, points: int, spend: Decimal = Decimal(0)) -> dict[str, int]:
    """The counters an earn (positive) or a take-back (negative) at event time `at` adds."""
    month = month_of(config, at)
    counters = {POINTS + month: points}
    if spend:
        counters[SPEND + month] = int(spend * MONEY_SCALE)
    return counters


def tally(program: str, member: str, counters: Mapping[str, int], held: Mapping[str, int] | None = None) -> Tally:
    """The change as a tally; given the counters the item holds now, also drops the months no window reaches."""
    return Tally(program, member, ACTIVITY, counters=tuple(sorted(counters.items())), drop=stale(held or {}, counters))


def stale(held: Mapping[str, int], counters: Mapping[str, int]) -> tuple[str, ...]:
    """Counters older than the longest window a program may have, so the item stays small."""
    if not counters:
        return ()
    newest = max(name.split("#", 1)[1] for name in counters)
    year, month = int(newest[:4]), int(newest[5:7])
    months_back = year * 12 + month - 1 - (MAX_WINDOW_MONTHS + 1)
    oldest = f"{months_back // 12:04d}-{months_back % 12 + 1:02d}"
    return tuple(sorted(name for name in held if name.split("#", 1)[1] < oldest and name not in counters))


def combined(counters: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    out = dict(counters)
    for name, amount in more.items():
        out[name] = out.get(name, 0) + amount
    return out
