"""Earns: purchases, partner points and behaviour, decided by the rules on the member's batch read."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.earning.core import (
    MAX_DECISIONS,
    MAX_KEY,
    SIGN_INS,
    Event,
    Outcome,
    _short_reason,
    breakdown_json,
    entry_key,
    event_hash,
)
from shared.earning.rating import TOP_UP_SOURCE, Rating
from shared.earning.referrals import _may_be_referred
from shared.errors import (
    AccountClosedError,
    ContentionError,
    EarningClosedError,
    IdempotencyConflictError,
    PointbridgeError,
)
from shared.events.model import (
    BehaviourAction,
    BehaviourEvent,
    Channel,
    PointsEvent,
    PurchaseEvent,
    RefundEvent,
)
from shared.infra import keys
from shared.ledger.commands import Earn
from shared.ledger.contract import CheckFailedError, Guard, GuardRefusedError, Snapshot, Tally, TallyChangedError
from shared.ledger.models import Account, EntryKind
from shared.members import activity
from shared.members.flags import Finding, raise_flag
from shared.members.store import ViewWanted
from shared.program.rules import (
    evaluate_behaviour,
    evaluate_points,
    evaluate_purchase,
    qualifying_tier,
)
from shared.program.sunset import earning_open

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shared.ledger.models import Entry
    from shared.members.view import MemberView
    from shared.program.config import ProgramConfig
    from shared.program.rules import EarnDecision


class Purchases(Rating):
    def _earn(self, event: PurchaseEvent | PointsEvent | BehaviourEvent) -> Outcome:
        config = self._programs.get(event.program)
        digest = event_hash(event)
        try:
            return self._post_earn(config, event, digest)
        except ContentionError:
            raise
        except PointbridgeError:
            # A refused event may be the redelivery of one that earned before the rules changed.
            replay = self._existing(event, entry_key(event), digest)
            if replay is None:
                raise
            return replay

    def _post_earn(
        self,
        config: ProgramConfig,
        event: PurchaseEvent | PointsEvent | BehaviourEvent,
        digest: str,
        overrides: dict[str, Any] | None = None,
    ) -> Outcome:
        """Decide and post one earn; `overrides` (until, details, held_for) go to the command as given."""
        now = self._clock()
        self._refuse_if_closed(config, event, now)
        live, config = config, self._programs.at(event.program, event.occurred_at)  # the rules of its time
        view = self._view(config, event, self._identify(event.identity, event.program, create=True))
        member = view.member
        entry_id = self._earn_entry_id(config, event, member)
        snapshot: Snapshot | None = Snapshot(view.account)
        refunds_may_wait = False  # learnt from a failed check: post without it, then apply them
        for _ in range(MAX_DECISIONS):
            decision, tallies = self._decide(config, event, view)
            if decision.points == 0:
                return self._existing(event, entry_id, digest) or self._nothing_to_post(
                    event, member, decision, entry_id
                )
            cmd = self._command(config, event, view, entry_id, decision, digest, now, **(overrides or {}))
            refund_check = self._items.no_refund_waiting(event.program, entry_id)
            checks = [] if refunds_may_wait else [refund_check]
            if _may_be_referred(event, view):
                # The member's first earn: a referral recorded after our read must make us read again.
                checks.append(self._items.no_referral_awaiting(event.program, member))
            guards = [_one_earn_per_order(event, member)] if isinstance(event, PurchaseEvent) else []
            try:
                entry = self._ledger.earn(cmd, tallies=tallies, checks=checks, snapshot=snapshot, guards=guards)
            except GuardRefusedError:
                # The same order already earned through another channel: refused before its points land.
                return self._duplicate_order(event, member, entry_id, now)
            except TallyChangedError:
                view = self._view(config, event, member)
                snapshot = Snapshot(view.account)
                continue
            except AccountClosedError as closed:
                # A merge closed the account after we read it: post on the survivor, as a new read
                # would have resolved the event (the same entry id, so still exactly once).
                view = self._view(config, event, closed.survivor)
                member, entry_id = view.member, self._earn_entry_id(config, event, view.member)
                snapshot = Snapshot(view.account)
                continue
            except CheckFailedError as failed:
                if failed.check == refund_check:
                    refunds_may_wait = True
                else:  # a referral was recorded meanwhile: this purchase pays it
                    view = self._view(config, event, member)
                    snapshot = Snapshot(view.account)
                continue
            except IdempotencyConflictError:
                # Posted before (a redelivery, or a rival delivery of the same event that won).
                existing = self._existing(event, entry_id, digest)
                if existing is None:
                    raise
                return existing
            if entry.seq <= (view.account.seq if view.account else 0):
                # The ledger found this very earn already posted: a redelivery (its entry is older
                # than the balance we read), so repair any follow-up a crash may have cut short.
                self._after_earn(live, entry)
                self._rerate_if_late(view, entry)
                self._upgrade(live, view, [], now)  # a repair: recorded now, never before its crossing
                self._pay_referral(live, view, entry)
                return Outcome("replayed", entry.entry_id, entry.member, _points(entry))
            if refunds_may_wait:
                self._after_earn(live, entry)
            self._rerate_if_late(view, entry)
            self._upgrade(live, view, tallies, now if self._late(view, entry.event_time) else entry.event_time)
            self._pay_referral(live, view, entry)
            note = "held for review: member flagged" if cmd.held else ""
            return Outcome("posted", entry.entry_id, member, decision.points, note=note)
        raise ContentionError(f"member {member}'s daily tally kept changing; retry later", member=member)

    def _duplicate_order(self, event: Event, member: str, entry_id: str, now: datetime) -> Outcome:
        """An order id a member earned on through another source: skipped, and the member flagged for
        an operator to look at (two channels reporting one order is a mistake or a fraud)."""
        reason = f"order {event.external_id} already earned through another channel: one order, earned once"
        flagged = f"order {event.external_id} arrived again from {event.source} after it earned through another channel"
        raise_flag(self._members, event.program, Finding(member, "order_two_channels", flagged), now, entry_id)
        return Outcome("skipped", entry_id, member, note=reason)

    def _refuse_if_closed(self, config: ProgramConfig, event: Event, now: datetime) -> None:
        sunset = config.sunset
        if sunset is None:
            return
        if not earning_open(config, event.occurred_at):
            raise EarningClosedError(
                f"{config.program} stopped earning at {sunset.earning_ends_at.isoformat()}; "
                f"this event is from {event.occurred_at.isoformat()}",
                earning_ended_at=sunset.earning_ends_at.isoformat(),
            )
        if now >= sunset.ends_at:
            # Late events from before the stop still earn, but not once the program is over.
            raise EarningClosedError(
                f"{config.program} ended at {sunset.ends_at.isoformat()}; nothing earns after its end",
                ended_at=sunset.ends_at.isoformat(),
            )

    def _earn_entry_id(self, config: ProgramConfig, event: Event, member: str) -> str:
        """Behaviour is paid once per real thing, whatever the app's event ids: keyed per member and
        local day (sign-in, member day), local year (birthday) or product (review)."""
        once = _paid_once_per(config, event)
        if once is None:
            return entry_key(event)
        assert isinstance(event, BehaviourEvent)
        key = f"{event.action.value}:{member}:{once}"
        if len(key) > MAX_KEY - len(event.source) - 1:
            digest = hashlib.sha256("\n".join((member, once)).encode()).hexdigest()[:40]
            key = f"{event.action.value}:{digest}"
        return f"{event.source}:{key}"

    def _existing(self, event: Event, entry_id: str, digest: str) -> Outcome | None:
        """The outcome for an event whose entry is already there (None: it is not)."""
        existing = self._entries.get_entry(event.program, entry_id)
        if existing is None:
            return None
        if existing.details.get("event_hash", digest) != digest:
            if entry_id != entry_key(event) and isinstance(event, BehaviourEvent):
                # Another event about the same thing was paid: a duplicate, answered, never an error.
                note = _already_paid(self._programs.get(event.program), event)
                return Outcome("skipped", entry_id, existing.member, note=note)
            raise IdempotencyConflictError(f"{entry_id} was already posted from a different event", entry_id=entry_id)
        # A crash after the earn but before its follow-ups is repaired by the redelivery: the parked
        # refunds, and the re-rating of the later earns it lifts (top-ups are keyed, so once).
        if existing.kind in (EntryKind.EARN_PENDING, EntryKind.EARN):
            config = self._programs.get(event.program)
            self._after_earn(config, existing)
            if existing.source != TOP_UP_SOURCE:
                self._rerate_if_late(self._view(config, event, existing.member), existing)
        return Outcome("replayed", existing.entry_id, existing.member, _points(existing))

    def _view(self, config: ProgramConfig, event: Event, member: str) -> MemberView:
        """The member's batch read, following merges to the member who holds the points now."""
        names, referral = self._view_wanted(config, event)
        seen = {member}
        while True:
            view = self._members.view(event.program, member, names, referral=referral)
            if not view.merged_into or view.merged_into in seen:
                return view
            member = view.merged_into
            seen.add(member)

    def _view_wanted(self, config: ProgramConfig, event: Event) -> tuple[tuple[str, ...], bool]:
        """The tallies an earn's view reads, and whether it reads who referred the member."""
        names = [activity.ACTIVITY]
        if self._capped(config, event):
            names.append(f"earned#{event.occurred_at.astimezone(config.tz).date().isoformat()}")
        if _is_sign_in(event):
            names.append(SIGN_INS)
        return tuple(names), isinstance(event, PurchaseEvent)  # a purchase may be the first one a referral waits for

    def _views_wanted(self, events: Sequence[Event]) -> list[ViewWanted]:
        """The views a batch's earns will read first, one per member (a member's next earn reads
        after the first one's write): those of members known without a request."""
        wanted: dict[tuple[str, str], ViewWanted] = {}
        configs: dict[str, ProgramConfig | None] = {}
        for event in events:
            if isinstance(event, RefundEvent) or (
                isinstance(event, BehaviourEvent) and event.action is BehaviourAction.REFERRAL
            ):
                continue
            member = self._known_member(event.identity)
            if member is None or (event.program, member) in wanted:
                continue
            if event.program not in configs:
                configs[event.program] = self._live_config(event.program)
            config = configs[event.program]
            if config is not None:
                # The live rules: an event older than them whose own rules read other tallies reads afresh.
                names, referral = self._view_wanted(config, event)
                wanted[(event.program, member)] = ViewWanted(event.program, member, names, referral)
        return list(wanted.values())

    def _live_config(self, program: str) -> ProgramConfig | None:
        try:
            return self._programs.get(program)
        except PointbridgeError:
            return None  # the event's own delivery meets the error

    @staticmethod
    def _capped(config: ProgramConfig, event: Event) -> bool:
        return config.caps.per_member_per_day is not None and (
            not isinstance(event, PointsEvent) or config.caps.include_points_events
        )

    def _decide(
        self, config: ProgramConfig, event: PurchaseEvent | PointsEvent | BehaviourEvent, view: MemberView
    ) -> tuple[EarnDecision, list[Tally]]:
        tier = self._tier_at(config, event, view).name
        day = event.occurred_at.astimezone(config.tz).date()
        capped = self._capped(config, event)
        used = view.tally(f"earned#{day.isoformat()}").value if capped else 0
        tallies: list[Tally] = []
        if isinstance(event, PurchaseEvent):
            decision = evaluate_purchase(config, event, tier, used)
        elif isinstance(event, PointsEvent):
            decision = evaluate_points(config, event, tier, used)
        else:
            streak = 0
            if event.action is BehaviourAction.SIGN_IN:
                days = view.tally(SIGN_INS).marks
                streak = _streak(days | {day.isoformat()}, day)
                tallies.append(Tally(event.program, view.member, SIGN_INS, mark=day.isoformat()))
            decision = evaluate_behaviour(config, event, tier, used, streak)
        if capped:
            tallies.append(Tally(event.program, view.member, f"earned#{day.isoformat()}", decision.points, used))
        if decision.capped_points:
            tallies.append(Tally(event.program, view.member, f"capped#{day.isoformat()}", decision.capped_points))
        if decision.points:
            spend = decision.basis_amount or Decimal(0)
            earned = activity.change(config, event.occurred_at, decision.points, spend)
            tallies.append(activity.tally(event.program, view.member, earned, view.tally(activity.ACTIVITY).counters))
        return decision, tallies

    def _command(
        self,
        config: ProgramConfig,
        event: PurchaseEvent | PointsEvent | BehaviourEvent,
        view: MemberView,
        entry_id: str,
        decision: EarnDecision,
        digest: str,
        now: datetime,
        until: datetime | None = None,
        details: dict[str, str] | None = None,
        held_for: str = "",
    ) -> Earn:
        details = {**self._details(event, decision, digest), **(details or {})}
        held = view.flagged
        until = until or decision.pending_until
        if held:
            details["held"] = f"member flagged: {view.flag_reason}"[:300]
            until = until or now  # no return window: the job sees it at once, and waits for the decision
        elif held_for:
            details["held"] = f"{held_for} is flagged: paid once its flag is decided"[:300]
            until = until or now
        if until is not None:
            until = max(until, now)  # a late event whose window already closed activates at the next run
        return Earn(
            program=event.program,
            member=view.member,
            points=decision.points,
            source=event.source,
            external_id=entry_id.removeprefix(f"{event.source}:"),
            reason=_short_reason(event) + (" (held for review)" if held or held_for else ""),
            event_time=event.occurred_at,
            expires_at=decision.expires_at,
            pending=until is not None,
            pending_until=until,
            held=held,
            held_for="" if held else held_for,
            config_version=decision.config_version,
            **_counter(event),
            details=details,
        )

    def _details(self, event: Event, decision: EarnDecision, digest: str) -> dict[str, str]:
        details = {
            "explanation": decision.explanation,
            "breakdown": breakdown_json(decision),
            "tier": decision.tier,
            "channel": event.channel.value,
            "event_id": event.external_id,
            "event_hash": digest,
            "earn_day": decision.earn_day.isoformat(),
            "uncapped_points": str(decision.uncapped_points),
            "capped_points": str(decision.capped_points),
        }
        if decision.basis_amount is not None:
            details["basis_amount"] = str(decision.basis_amount)
        if decision.tier_basis is not None and decision.flat_points is not None:
            # What re-rating at another tier needs (`rules.points_at_tier`), should an upgrade arrive late.
            details["tier_basis"] = str(decision.tier_basis)
            details["flat_points"] = str(decision.flat_points)
        if isinstance(event, PurchaseEvent) and event.card:
            details["card"] = event.card  # hashed by the adapter: what the card-velocity check counts
        if isinstance(event, PurchaseEvent):
            details["currency"] = event.currency
            if event.reference:
                details["order_ref"] = event.reference
        if decision.pending_until is not None:
            details["pending_until"] = decision.pending_until.isoformat()
        return details

    def _nothing_to_post(self, event: Event, member: str, decision: EarnDecision, entry_id: str) -> Outcome:
        # No entry for zero points, but a cap that ate everything is still counted, once per event.
        if decision.capped_points:
            tally = Tally(event.program, member, f"capped#{decision.earn_day.isoformat()}", decision.capped_points)
            self._members.bump(tally, once_for=entry_id)
        return Outcome("skipped", entry_id, member, note=f"0 points: {decision.explanation}")

    def _upgrade(self, config: ProgramConfig, view: MemberView, tallies: list[Tally], at: datetime) -> None:
        """Move up at once if this earn took qualifying activity over a higher tier's threshold.

        Decided on the batch read plus this earn, so the common case costs no request; only an
        actual upgrade asks the tier service, which re-reads and records the move. A flagged
        member is not moved up until the flag is decided (the earns are on hold). `at` is when the
        move counts from: the earn's own time when it arrived in order (it is the crossing), else
        now (a late earn may cross only with activity dated after it; a move is never recorded
        before its crossing, so the tier log never says more than the member had reached).
        """
        if self._tiers is None or view.flagged:
            return
        added = next((t.counters for t in tallies if t.name == activity.ACTIVITY), ())
        counters = activity.combined(view.tally(activity.ACTIVITY).counters, dict(added))
        reached = qualifying_tier(config, activity.in_window(config, counters, at))
        held = config.held_tier(view.tier)
        if reached.rank > held.rank:
            self._tiers.on_earn(config.program, view.member, at)

    def _after_earn(self, config: ProgramConfig, entry: Entry) -> None:
        """Follow-ups of an earn that refunds were waiting for; idempotent, re-run by redeliveries."""
        if entry.kind is EntryKind.EARN:
            self._apply_waiting(entry.program, entry.entry_id)
            return
        settled = self._entries.get_entry(entry.program, f"settle:{entry.entry_id}")
        if settled is None:
            self._void_if_fully_refunded(config, entry.program, entry.entry_id)
        else:
            self._follow_up(config, entry.entry_id, settled)


def _one_earn_per_order(event: PurchaseEvent, member: str) -> Guard:
    """Claims the order id for the member in the earn's own transaction: a second source sending the
    same order finds it claimed and posts nothing (issue 12: a shop and an app each earned on one order)."""
    return Guard(
        key=keys.order_claim(event.program, member, event.external_id),
        amount=1,
        limit=1,
        code="duplicate_order",
        detail=f"order {event.external_id} already earned",
    )


def _counter(event: Event) -> dict[str, Any]:
    """Partner points are owed by the partner: they come from its settlement account, not issuance."""
    if event.channel is Channel.PARTNER:
        return {"counter": Account.PARTNER, "counter_owner": event.source.removeprefix("partner:")}
    return {}


def _streak(days: frozenset[str] | set[str], today: date) -> int:
    """Consecutive local days with a sign-in, ending today (today included)."""
    streak, day = 0, today
    while day.isoformat() in days:
        streak += 1
        day -= timedelta(days=1)
    return streak


def _points(entry: Entry) -> int:
    return entry.delta(Account.AVAILABLE) + entry.delta(Account.PENDING) + entry.delta(Account.DEBT)


def _is_sign_in(event: Event) -> bool:
    return isinstance(event, BehaviourEvent) and event.action is BehaviourAction.SIGN_IN


def _paid_once_per(config: ProgramConfig, event: Event) -> str | None:
    """What a behaviour event is paid once for, per member (None: once per event id)."""
    if not isinstance(event, BehaviourEvent):
        return None
    local = event.occurred_at.astimezone(config.tz)
    if event.action in (BehaviourAction.SIGN_IN, BehaviourAction.MEMBER_DAY):
        return local.date().isoformat()
    if event.action is BehaviourAction.BIRTHDAY:
        return f"{local.year:04d}"
    if event.action is BehaviourAction.REVIEW:
        return event.subject
    return None  # a referral reward is keyed by the referred member already


def _already_paid(config: ProgramConfig, event: BehaviourEvent) -> str:
    once = _paid_once_per(config, event)
    notes = {
        BehaviourAction.SIGN_IN: f"already rewarded that day ({once})",
        BehaviourAction.MEMBER_DAY: f"the member day bonus was already paid on {once}",
        BehaviourAction.BIRTHDAY: f"the birthday bonus was already paid for {once}",
        BehaviourAction.REVIEW: f"a review of {once} was already rewarded",
    }
    return notes.get(event.action, "already rewarded")
