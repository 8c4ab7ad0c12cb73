"""Member tiers: qualification on rolling activity, upgrade at once, downgrade only after the period.

- Qualifying activity is the member's monthly activity tally in the program's window (points
  earned and money spent, net of refunds and voids; see `shared.activity`), written by the ingest
  path in each earn's own transaction; never the current balance, so spending or expiring points
  cannot cost a tier. One item read, whatever the member's history.
- An upgrade happens the moment activity reaches a higher threshold (`on_earn`, which the ingest
  path calls after posting an earn); the new multiplier applies from that moment, because the
  ingest path reads `current_tier` for every evaluation.
- A tier is held for one qualification period (`window_months`) from when it was reached or last
  confirmed. At the period's end plus `grace_days` the tier job reviews the member: still
  qualifying extends the period, otherwise the member moves down to the tier the activity supports.
- Every move writes a tier change record (from, to, reason, activity) in the same transaction as
  the member's tier item.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dateutil.relativedelta import relativedelta

from shared.errors import ContentionError
from shared.infra.codec import parse_ts, ts
from shared.members import activity
from shared.members.records import TierChange, TierRecord
from shared.program.rules import qualifying_tier

if TYPE_CHECKING:
    from shared.ledger.contract import Programs
    from shared.members.store import MemberDirectory
    from shared.program.config import ProgramConfig, QualifyingActivity, Tier

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class TierState:
    tier: str
    since: datetime | None
    period_ends: datetime | None
    rev: int


@dataclass(frozen=True)
class TierMove:
    member: str
    from_tier: str
    to_tier: str
    reason: str
    at: datetime


class Tiers:
    """Tier use cases: the tier a member holds, upgrades on earning, reviews at the end of a period.

    The scheduled review walks the tier index (`shared.jobs.tiers.TierReviewJob`) and calls `review`.
    """

    def __init__(self, programs: Programs, members: MemberDirectory) -> None:
        self._programs, self._members = programs, members

    def activity(self, config: ProgramConfig, member: str, at: datetime) -> QualifyingActivity:
        return activity.in_window(config, self._members.tally_counters(config.program, member, activity.ACTIVITY), at)

    def current(self, program: str, member: str) -> TierState:
        config = self._programs.get(program)
        record = self._members.get_tier(program, member)
        if record is None:
            return TierState(tier=config.tiers[0].name, since=None, period_ends=None, rev=0)
        return TierState(
            tier=record.tier, since=parse_ts(record.since), period_ends=parse_ts(record.period_ends), rev=record.rev
        )

    def current_tier(self, program: str, member: str) -> Tier:
        """The tier whose multiplier and expiry apply to this member's next earn."""
        return self._programs.get(program).held_tier(self.current(program, member).tier)

    def on_earn(self, program: str, member: str, at: datetime) -> TierMove | None:
        """Upgrade at once if the member's activity now reaches a higher tier."""
        return self._evaluate(program, member, at, review=False)

    def review(self, program: str, member: str, at: datetime) -> TierMove | None:
        """At the end of the period (plus grace): confirm the tier for another period, or move down."""
        return self._evaluate(program, member, at, review=True)

    def changes(self, program: str, member: str) -> list[TierChange]:
        return self._members.tier_changes(program, member)

    def _evaluate(self, program: str, member: str, at: datetime, review: bool) -> TierMove | None:
        config = self._programs.get(program)
        for _ in range(MAX_ATTEMPTS):
            state = self.current(program, member)
            held = config.held_tier(state.tier)
            activity = self.activity(config, member, at)
            target = qualifying_tier(config, activity)
            basis = config.tier_qualification.basis
            measure = (
                f"{activity.spend} {config.currency} spent" if basis == "spend" else f"{activity.points} points earned"
            )
            window = config.tier_qualification.window_months
            if target.rank > held.rank:
                reason = f"upgrade: {measure} in {window} months reaches {target.name} ({target.threshold})"
            elif review and state.period_ends is not None and at >= self._due(config, state.period_ends):
                if target.rank == held.rank:
                    reason = ""  # confirmed: a new period, no move
                else:
                    reason = (
                        f"downgrade at the end of the period and {config.tier_qualification.grace_days} days' grace: "
                        f"{measure} in {window} months is below {held.name} ({held.threshold})"
                    )
            else:
                return None
            period_ends = at + relativedelta(months=window)
            record = TierRecord(
                tier=target.name,
                since=ts(at) if reason else ts(state.since or at),
                period_ends=ts(period_ends),
                due_at=ts(self._due(config, period_ends)),
                rev=state.rev,
            )
            change = TierChange(
                at=ts(at),
                from_tier=held.name,
                to_tier=target.name,
                reason=reason or "requalified for another period",
                points=activity.points,
                spend=str(activity.spend),
                config_version=config.version,
            )
            previous = state.tier if state.rev else None
            if self._members.move_tier(program, member, record, change, previous):
                if not reason:
                    return None
                return TierMove(member=member, from_tier=held.name, to_tier=target.name, reason=reason, at=at)
        raise ContentionError(f"tier of {member} kept changing; retry", member=member)

    @staticmethod
    def _due(config: ProgramConfig, period_ends: datetime) -> datetime:
        return period_ends + timedelta(days=config.tier_qualification.grace_days)
