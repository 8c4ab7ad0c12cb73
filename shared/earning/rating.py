"""The tier an earn is rated at: the one of the event's own time, whatever the arrival order.

A member's tier at a moment `t` is the higher of the tier its tier log says it held just before `t`
(reached earlier, or what a review left) and the tier its qualifying activity strictly before `t`
reaches (upgrades are immediate: the earn that crosses a threshold is the last at the old rate).
An earn is rated at its event's tier, so three purchases earn the same in any arrival order.

- In order (the usual case: nothing of the member's is dated at or after the event), the activity
  before `t` is the activity tally as read in the member's batch read, and the stored tier is the
  log's last word: no request beyond the batch read.
- Late (the member has activity dated at or after the event, or the stored tier was reached
  after it): the activity before `t` is the tally less what the member's later-dated earns added
  (read from the member's history), and the tier held then comes from the tier log. After posting
  such an earn, the member's later-dated purchases are re-rated: each that now falls after a
  threshold it did not see gets a top-up entry `tier:<earn>:<tier>` for the difference (what it
  would have earned at that tier, `rules.points_at_tier`, within the per-event and daily caps),
  pending alongside the earn if it still is. Its refunds claw the top-up back with it (the
  `topped#<earn>` tally), and its void voids it.

Upgrades are still recorded when the activity that reaches them is posted (`_upgrade`); a
recorded upgrade is never earlier than its crossing, so the log never over-states a tier.
docs/channels.md, "Tiers at earn time".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from shared.earning.core import Event, IngestCore
from shared.infra.codec import parse_ts
from shared.ledger.commands import Earn
from shared.ledger.contract import Tally, TallyChangedError
from shared.ledger.models import Account, Entry, EntryKind
from shared.members import activity
from shared.program.rules import points_at_tier, qualifying_tier

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shared.members.view import MemberView
    from shared.program.config import ProgramConfig, Tier

TOP_UP_SOURCE = "tier"
TOPPED = "topped#"  # per earn: the top-up points posted for it (value) and their entry ids (marks)
EARNS = (EntryKind.EARN, EntryKind.EARN_PENDING)
# A top-up of a pending earn activates this much before it (so the earn's refunds find it active).
WHOLE_SECOND = timedelta(seconds=1)


@dataclass
class Timeline:
    """A member's qualifying activity by event time, and the tiers its log says it held."""

    counters: dict[str, int]  # the activity tally now
    later: list[tuple[datetime, str, dict[str, int]]]  # each earn's contribution (its id, a top-up's earn's)
    log: list[tuple[datetime, str]]  # (when, tier moved to), oldest first
    top_ups: dict[str, list[Entry]] = field(default_factory=dict)  # earn id -> its top-ups

    def held_at(self, config: ProgramConfig, at: datetime, posted: bool = False) -> Tier:
        """The tier the log says the member held at `at` (the base tier before any move).

        A move in the same second counts as before (as the stored tier does for an event arriving in
        order), except for an earn already posted (`posted`): a move at its own time may be the one
        it made itself by crossing the threshold, which it does not earn at.
        """
        logged = None
        for moved_at, tier in self.log:
            if moved_at < _second(at) or (moved_at == _second(at) and not posted):
                logged = tier
        return config.held_tier(logged)

    def tier_at(self, config: ProgramConfig, at: datetime, rating: str = "") -> Tier:
        """The tier at `at` for an earn (`rating`: an earn already posted, whose own activity is not before it)."""
        held = self.held_at(config, at, posted=bool(rating))
        before = dict(self.counters)
        for when, earn, contribution in self.later:
            # The same second counts as before, as in order it does; the earn being rated never does.
            if _second(when) > _second(at) or earn == rating:
                for name, amount in contribution.items():
                    before[name] = before.get(name, 0) - amount
        reached = qualifying_tier(config, activity.in_window(config, before, at))
        return reached if reached.rank > held.rank else held

    def add(self, at: datetime, earn: str, contribution: dict[str, int]) -> None:
        self.later.append((at, earn, contribution))
        self.counters = activity.combined(self.counters, contribution)


class Rating(IngestCore):
    def _tier_at(self, config: ProgramConfig, event: Event, view: MemberView) -> Tier:
        """The tier `event` is rated at: as held or reached at its own time."""
        if len(config.tiers) == 1:
            return config.tiers[0]  # a one-tier ladder: held and reached are that tier, whatever the history
        at = event.occurred_at
        stored = config.held_tier(view.tier)
        since = parse_ts(view.tier_since) if view.tier_since else None
        settled_before = since is None or _second(at) >= since  # whole seconds, as the tier item keeps them
        counters = dict(view.tally(activity.ACTIVITY).counters)
        if view.flagged:
            # No move up while a flag is open: the member's earns are rated at the tier held then.
            if settled_before:
                return stored
            return self._build_timeline(event.program, view.member, counters).held_at(config, at)
        if settled_before and not self._late(view, at):
            reached = qualifying_tier(config, activity.in_window(config, counters, at))
            return reached if reached.rank > stored.rank else stored
        return self._build_timeline(event.program, view.member, counters).tier_at(config, at)

    def _rerate_if_late(self, view: MemberView, entry: Entry) -> None:
        """After a late earn (the member has activity dated after it), re-rate what came after it."""
        active = view.account.active_at if view.account else None
        if view.flagged or active is None or _second(entry.event_time) >= active:
            return
        self._rerate_after(entry.program, view.member, entry)

    @staticmethod
    def _late(view: MemberView, at: datetime) -> bool:
        """Whether the member has activity dated after `at` (an event arriving after later ones).

        In whole seconds, as the balance keeps them: an event in the same second as the latest
        activity counts as in order (a redelivery of the latest event is the common case; two
        different events of one member within one second crossing a threshold is the rare one).
        """
        active = view.account.active_at if view.account else None
        return active is not None and _second(at) < active

    def _build_timeline(self, program: str, member: str, counters: dict[str, int]) -> Timeline:
        return self._timeline_of(program, member, counters, self._entries.entries(program, member))

    def _timeline_of(self, program: str, member: str, counters: dict[str, int], history: list[Entry]) -> Timeline:
        log = [(parse_ts(c.at), c.to_tier) for c in self._members.tier_changes(program, member)]
        return timeline_of(history, log, counters, lambda moment: self._programs.at(program, moment))

    def _rerate_after(self, program: str, member: str, late: Entry) -> list[str]:
        """Re-rate the member's purchases dated after a late earn; returns the top-ups posted."""
        if not _rated_after(self._entries.entries(program, member), late):
            # Nothing dated after it was rated by tier (points credits, behaviour): one read, no top-up.
            return []
        # The tally is read before the history it is taken apart with: an earn posted in between
        # then only makes a tier look lower (no top-up now; the next late earn re-rates), never higher.
        counters = self._members.tally_counters(program, member, activity.ACTIVITY)
        history = self._entries.entries(program, member)
        timeline = self._timeline_of(program, member, counters, history)
        posted = []
        for earned in _rated_after(history, late):
            top_up = self._top_up(program, earned, timeline)
            if top_up is not None:
                posted.append(top_up.entry_id)
                config = self._programs.at(program, earned.event_time)
                contribution = activity.change(config, earned.event_time, _points(top_up))
                timeline.add(earned.event_time, earned.entry_id, contribution)
                timeline.top_ups.setdefault(earned.entry_id, []).append(top_up)
        return posted

    def _top_up(self, program: str, earned: Entry, timeline: Timeline) -> Entry | None:
        """The top-up that brings `earned` to the tier of its time, if it was rated below it."""
        config = self._programs.at(program, earned.event_time)
        target = timeline.tier_at(config, earned.event_time, rating=earned.entry_id)
        ups = timeline.top_ups.get(earned.entry_id, [])
        rated = [config.held_tier(e.details.get("tier")) for e in [earned, *ups]]
        if target.rank <= max(t.rank for t in rated):
            return None
        settled = self._entries.get_entry(program, f"settle:{earned.entry_id}")
        if settled is not None and settled.kind is EntryKind.VOID:
            return None  # voided: nothing to re-rate
        uncapped = max(int(e.details.get("uncapped_points", "0")) for e in [earned, *ups])
        now_uncapped = points_at_tier(
            config, Decimal(earned.details["tier_basis"]), Decimal(earned.details["flat_points"]), target
        )
        per_event = config.caps.per_event
        wanted = _capped(now_uncapped, per_event) - _capped(uncapped, per_event)
        if wanted <= 0:
            return None
        holder = self._follow(earned.member)
        pending = self._entries.get_pending(program, holder, earned.entry_id)
        if earned.kind is EntryKind.EARN_PENDING and pending is None and settled is None:
            return None  # moved by a merge in flight: the next late earn re-rates it
        top_up_id = f"{earned.entry_id}:{target.name}"
        day = earned.event_time.astimezone(config.tz).date().isoformat()
        for _ in range(5):
            tallies, given = self._cap_room(config, program, holder, day, wanted)
            if given <= 0:
                # The day's cap is used up: nothing more to pay, as in time order; the cut is counted once.
                self._members.bump(Tally(program, holder, f"capped#{day}", wanted), once_for=f"tier:{top_up_id}")
                return None
            expires = config.expiry_for(target).expires_at(earned.event_time.astimezone(config.tz), config.tz)
            # Funded as the earn it tops up (a partner's purchase: by the partner), as the same earn
            # rated at this tier on arrival in time order would have been.
            funding = next(p for p in earned.postings if p.amount < 0)
            cmd = Earn(
                program=program,
                member=holder,
                points=given,
                source=TOP_UP_SOURCE,
                external_id=top_up_id,
                reason=f"{target.name} tier for {earned.entry_id}: reached before it, recorded later"[:300],
                event_time=earned.event_time,
                expires_at=expires,
                related=earned.entry_id,
                counter=funding.account,
                counter_owner=funding.owner,
                pending=pending is not None,
                # Activates just before the earn it tops up, so the earn's refunds find it there.
                pending_until=pending.until - WHOLE_SECOND if pending is not None and pending.until else None,
                held_for=pending.held_for if pending is not None else "",
                config_version=config.version,
                details={
                    "explanation": f"+{given} = {now_uncapped} at {target.name} - {uncapped} at "
                    f"{max(rated, key=lambda t: t.rank).name} (capped {wanted - given})",
                    "tier": target.name,
                    "uncapped_points": str(now_uncapped),
                    "capped_points": str(wanted - given),
                    "topped_up": earned.entry_id,
                    "earn_day": day,  # the day whose cap it drew on, its earn's
                    "channel": earned.details.get("channel", ""),
                },
            )
            tallies += [
                activity.tally(program, holder, activity.change(config, earned.event_time, given)),
                Tally(program, earned.member, TOPPED + earned.entry_id, add=given, mark=f"{TOP_UP_SOURCE}:{top_up_id}"),
            ]
            try:
                return self._ledger.earn(cmd, tallies=tallies)
            except TallyChangedError:
                continue  # the day's cap moved: look again
        return None

    def _cap_room(
        self, config: ProgramConfig, program: str, member: str, day: str, wanted: int
    ) -> tuple[list[Tally], int]:
        """What the daily cap leaves for `wanted` more points on `day`, and the tallies that take it."""
        cap = config.caps.per_member_per_day
        if cap is None:
            return [], wanted
        name = f"earned#{day}"
        used = self._members.view(program, member, [name], full=False).tally(name).value
        given = max(0, min(wanted, cap - used))
        tallies = [Tally(program, member, name, given, used)] if given else []
        if wanted > given:
            tallies.append(Tally(program, member, f"capped#{day}", wanted - given))
        return tallies, given

    def _top_ups_of(self, program: str, earned: Entry) -> Sequence[str]:
        """The entry ids of the top-ups posted for an earn (from its `topped#` tally)."""
        view = self._members.view(program, earned.member, [TOPPED + earned.entry_id], full=False)
        return sorted(view.tally(TOPPED + earned.entry_id).marks)


def _rated_after(history: Sequence[Entry], late: Entry) -> list[Entry]:
    """The member's earns rated by tier (purchases) dated after `late`, oldest first."""
    return sorted(
        (
            e
            for e in history
            if e.kind in EARNS and "tier_basis" in e.details and _second(e.event_time) > _second(late.event_time)
        ),
        key=lambda e: (e.event_time, e.entry_id),
    )


def _second(moment: datetime) -> datetime:
    """Whole seconds: balances, tier items and the log keep no finer time."""
    return moment.replace(microsecond=0)


def _capped(points: int, per_event: int | None) -> int:
    return points if per_event is None else min(points, per_event)


def _points(entry: Entry) -> int:
    return entry.delta(Account.AVAILABLE) + entry.delta(Account.PENDING) + entry.delta(Account.DEBT)


def timeline_of(
    history: Sequence[Entry],
    log: Sequence[tuple[datetime, str]],
    counters: dict[str, int],
    config_at: Callable[[datetime], ProgramConfig],
) -> Timeline:
    """A member's timeline from its entries (any order), its tier log and its activity tally now.

    A claw-back takes its order's activity back when it was posted (its own event time: the
    refund's, or the activation's for a refund parked on a pending order), not at the order's time:
    an earn rated in time order saw the order's activity whole until then, so a re-rating made after
    the claw-back must see it so too (it is subtracted from "now" like any later activity)."""
    voided = {e.related for e in history if e.kind is EntryKind.VOID}
    earns = {e.entry_id: e for e in history if e.kind in EARNS}
    timeline = Timeline(counters=dict(counters), later=[], log=sorted(log))
    for e in history:
        if e.kind not in EARNS or e.entry_id in voided:
            continue
        config = config_at(e.event_time)
        contribution = activity.change(config, e.event_time, _points(e), Decimal(e.details.get("basis_amount", "0")))
        topped = e.related if e.source == TOP_UP_SOURCE and e.related else ""
        timeline.later.append((e.event_time, topped or e.entry_id, contribution))
        if topped:
            timeline.top_ups.setdefault(topped, []).append(e)
    refunded: dict[str, Decimal] = {}
    clawbacks = sorted((e for e in history if e.kind is EntryKind.CLAWBACK), key=lambda e: (e.event_time, e.entry_id))
    for e in clawbacks:
        order = earns.get(e.details.get("order", e.related))
        if order is None or order.entry_id in voided:
            continue
        basis = Decimal(order.details.get("basis_amount", "0"))
        before = refunded.get(order.entry_id, Decimal(0))
        refunded[order.entry_id] = before + Decimal(e.details.get("refunded_amount", "0"))
        spend = min(refunded[order.entry_id], basis) - min(before, basis)
        config = config_at(order.event_time)
        taken = activity.change(config, order.event_time, -int(e.details.get("requested", "0")), -spend)
        timeline.later.append((e.event_time, order.entry_id, taken))
    return timeline
