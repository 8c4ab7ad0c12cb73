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
from functools import partial
from typing import TYPE_CHECKING, Any

from dateutil.relativedelta import relativedelta

from shared.errors import ContentionError
from shared.jobs.expiry import DayWalk, JobInput, JobReport, _Context
from shared.ledger.store import parse_ts, tier_index_pk, ts
from shared.members import activity
from shared.program.rules import qualifying_tier

if TYPE_CHECKING:
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


class Tiers(_Context):
    """Tier use cases; also the scheduled review job (`run`)."""

    def activity(self, config: ProgramConfig, member: str, at: datetime) -> QualifyingActivity:
        return activity.in_window(config, self.jobs.tally_counters(config.program, member, activity.ACTIVITY), at)

    def current(self, program: str, member: str) -> TierState:
        config = self.config(program)
        item = self.jobs.get_tier(program, member)
        if item is None:
            return TierState(tier=config.tiers[0].name, since=None, period_ends=None, rev=0)
        return TierState(
            tier=item["tier"],
            since=parse_ts(item["since"]),
            period_ends=parse_ts(item["period_ends"]),
            rev=int(item["rev"]),
        )

    def current_tier(self, program: str, member: str) -> Tier:
        """The tier whose multiplier and expiry apply to this member's next earn."""
        return self.config(program).held_tier(self.current(program, member).tier)

    def on_earn(self, program: str, member: str, at: datetime) -> TierMove | None:
        """Upgrade at once if the member's activity now reaches a higher tier."""
        return self._evaluate(program, member, at, review=False)

    def review(self, program: str, member: str, at: datetime) -> TierMove | None:
        """At the end of the period (plus grace): confirm the tier for another period, or move down."""
        return self._evaluate(program, member, at, review=True)

    def changes(self, program: str, member: str) -> list[dict[str, Any]]:
        return self.jobs.tier_changes(program, member)

    def _evaluate(self, program: str, member: str, at: datetime, review: bool) -> TierMove | None:
        config = self.config(program)
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
            new_state = {
                "tier": target.name,
                "since": ts(at) if reason else ts(state.since or at),
                "period_ends": ts(period_ends),
                "due_at": ts(self._due(config, period_ends)),
                "program": program,
                "member": member,
            }
            record = {
                "at": ts(at),
                "from": held.name,
                "to": target.name,
                "reason": reason or "requalified for another period",
                "points": activity.points,
                "spend": str(activity.spend),
                "config_version": config.version,
            }
            previous = state.tier if state.rev else None
            if self.jobs.move_tier(program, member, new_state, record, state.rev, previous):
                if not reason:
                    return None
                return TierMove(member=member, from_tier=held.name, to_tier=target.name, reason=reason, at=at)
        raise ContentionError(f"tier of {member} kept changing; retry", member=member)

    @staticmethod
    def _due(config: ProgramConfig, period_ends: datetime) -> datetime:
        return period_ends + timedelta(days=config.tier_qualification.grace_days)

    # The scheduled review

    def run(self, request: JobInput) -> list[JobReport]:
        now = request.at
        budget = request.page_budget or 200
        reports = []
        for program in self.program_ids(request.program):
            report = JobReport(job="tiers", program=program, now=ts(now))
            moves: list[TierMove] = []

            def handle(items: list[dict[str, Any]], program: str = program, moves: list[TierMove] = moves) -> None:
                for item in items:
                    if item.get("type") == "tier":
                        move = self.review(program, item["member"], now)
                        if move is not None:
                            moves.append(move)

            # Nobody's period can end before one full window after the program started.
            window = relativedelta(months=self.config(program).tier_qualification.window_months)
            first_due = self.start(program) + window
            walk = DayWalk(self.jobs, "tiers", program, partial(tier_index_pk, program), first_due, self.page_size)
            result = walk.run(now, budget, handle)
            report.pages, report.items_read, report.finished = result.pages, result.items, result.finished
            report.details["moves"] = [f"{m.member}: {m.from_tier} -> {m.to_tier}" for m in moves]
            reports.append(report)
        return reports
