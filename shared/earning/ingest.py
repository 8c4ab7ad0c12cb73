"""Ingest: one normalised event in, ledger entries out, exactly once, whatever the arrival order.

Per event: find the member behind the identity (an unknown identity gets a provisional member,
so no point is lost), read in one batch everything the rules need about the member at the EVENT's
time (tier, points earned that local day, sign-in days, qualifying activity, balance, flag),
evaluate the program's rules and post the result. The ledger key is the source's own id
(`<source>:<external id>`), so a redelivery finds its entry and changes nothing. Every entry
carries the rule version, the explanation and the breakdown, so any balance can be explained.

- A flagged member's earns are posted pending and held until an operator decides the flag.
- Nothing earns once the program's sunset stopped earning (by event time) or after its end.
- An earn that takes qualifying activity (monthly tallies, `shared.activity`) over a tier's
  threshold upgrades the member at once, so the next earn uses the new multiplier.

Refunds claw back in proportion to the money refunded, cumulatively per order; a refund that
arrives before its order (or while the order's points are still pending) waits in a list keyed by
the order and is applied when the order posts (or activates): the order's earn is conditional on
that list being empty, so whichever of order and refund is written second sees the other. Linking
two identities merges a provisional member into the surviving one with ledger transfer entries
(available and pending points), never by editing balances.

This module does no I/O of its own: the ledger, the entry store and the `Directory` are passed in.
docs/channels.md describes the pipeline, the refund policy and identity merging in prose.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import TypeAdapter

from shared.errors import (
    AccountClosedError,
    AlreadySettledError,
    ContentionError,
    EarningClosedError,
    IdempotencyConflictError,
    InvalidInputError,
    LedgerError,
    PointbridgeError,
    UnknownEntryError,
)
from shared.events.model import (
    BehaviourAction,
    BehaviourEvent,
    Channel,
    Identity,
    IdentityKind,
    NormalisedEvent,
    PointsEvent,
    PurchaseEvent,
    RefundEvent,
)
from shared.jobs.expiry import earning_open
from shared.ledger.commands import Activate, ClawBack, Earn, Transfer, Void
from shared.ledger.contract import CheckFailedError, Snapshot, Tally, TallyChangedError
from shared.ledger.models import Account, EntryKind
from shared.members import activity
from shared.members.view import (
    FLAG_OPEN,
    FLAG_VOIDED,
    REFERRAL_AWAITING,
    REFERRAL_NOT_ELIGIBLE,
    REFERRAL_PAID,
    Referral,
)
from shared.program.rules import (
    evaluate_behaviour,
    evaluate_points,
    evaluate_purchase,
    qualifying_tier,
    refund_clawback,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shared.ledger.contract import Check, LedgerStore, Programs
    from shared.ledger.ledger import Ledger
    from shared.ledger.models import Entry, PendingEarn
    from shared.members.view import MemberView
    from shared.program.config import ProgramConfig
    from shared.program.rules import EarnDecision

Event = PurchaseEvent | RefundEvent | PointsEvent | BehaviourEvent
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(NormalisedEvent)

# A tally guards a decision (the daily cap); when it moved underneath, decide again a few times.
MAX_DECISIONS = 5
# Pending earns are indexed by the day they may activate; an hourly job looks back this far so a
# missed run (or an outage of several days) still activates everything once it runs again.
CATCH_UP_DAYS = 14
MONEY_SCALE = activity.MONEY_SCALE
SIGN_INS = "signins"
# The source of a referrer's reward; its entry id is `referral:<referred member>`, so it is paid once.
REFERRAL_SOURCE = "referral"
# Entry ids of behaviour points keyed per member (and day, year or product) stay within the ledger's key length.
MAX_KEY = 200
Decision = Literal["release", "void"]


class MergeConflictError(LedgerError):
    """Raised when linking two identities that belong to two registered members (an operator decides)."""

    code = "cannot_merge_members"
    status = 409


class Directory(Protocol):
    """Where identities, member profiles, tallies and the ingest indexes live (`store.MemberDirectory`)."""

    def member_for(self, identity_key: str) -> str | None: ...

    def claim(self, identity_key: str, member: str, *, provisional: bool) -> str: ...

    def profile(self, member: str) -> dict[str, object] | None: ...

    def repoint(self, identity_key: str, member: str) -> None: ...

    def mark_merged(self, member: str, into: str) -> None: ...

    def view(
        self, program: str, member: str, tallies: Sequence[str] = (), *, full: bool = True, referral: bool = False
    ) -> MemberView: ...

    def bump(self, tally: Tally, once_for: str) -> None: ...

    def merge_tally(self, program: str, name: str, merged: str, into: str) -> None: ...

    def due_pending(self, program: str, day: str, until: datetime) -> list[PendingEarn]: ...

    def flag_status(self, program: str, member: str) -> str: ...

    def park_refund(self, program: str, order_entry_id: str, refund_entry_id: str, body: str) -> None: ...

    def waiting_refunds(self, program: str, order_entry_id: str) -> list[str]: ...

    def drop_refund(self, program: str, order_entry_id: str, refund_entry_id: str) -> None: ...

    def no_refund_waiting(self, program: str, order_entry_id: str) -> Check: ...

    def record_referral(self, program: str, referred: str, referral: Referral) -> bool: ...

    def referral_paid(self, program: str, referred: str, reward: str, purchase: str, points: int) -> None: ...

    def referral_ended(self, program: str, referred: str, status: str, reason: str) -> None: ...

    def no_referral_awaiting(self, program: str, member: str) -> Check: ...


class TierUpgrades(Protocol):
    """Moves a member up at once when activity reaches a higher tier (`shared.tiers.Tiers`)."""

    def on_earn(self, program: str, member: str, at: datetime) -> object: ...


@dataclass(frozen=True)
class Outcome:
    """What ingest did with one event."""

    status: Literal["posted", "replayed", "parked", "skipped", "recorded"]
    entry_id: str
    member: str = ""
    points: int = 0
    note: str = ""


@dataclass(frozen=True)
class LinkResult:
    survivor: str
    merged: str = ""  # the provisional member folded into the survivor, if any


@dataclass(frozen=True)
class HeldSettlement:
    """What an operator's decision on a flag did to the member's held earns."""

    released: list[str] = field(default_factory=list)  # activated now
    voided: list[str] = field(default_factory=list)
    still_pending: list[str] = field(default_factory=list)  # released, but their return window is still open


def parse_event(data: str | bytes | dict[str, object]) -> Event:
    """A normalised event from JSON text or a mapping; pydantic's ValidationError if it is not one."""
    if isinstance(data, dict):
        return EVENT_ADAPTER.validate_python(data)
    return EVENT_ADAPTER.validate_json(data)


def event_hash(event: Event) -> str:
    """Tells a redelivery (same hash) from a different event reusing the same source id."""
    return hashlib.sha256(event.model_dump_json().encode()).hexdigest()[:32]


def entry_key(event: Event) -> str:
    return f"{event.source}:{event.external_id}"


def provisional_member(identity: Identity) -> str:
    """Derived from the identity, so two events racing for the same stranger create one member."""
    return "pv-" + hashlib.sha256(identity.key.encode()).hexdigest()[:24]


def breakdown_json(decision: EarnDecision) -> str:
    return json.dumps([step.model_dump(mode="json") for step in decision.breakdown], separators=(",", ":"))


def _short_reason(event: Event) -> str:
    if isinstance(event, PurchaseEvent):
        return f"{event.channel.value} purchase"
    if isinstance(event, PointsEvent):
        return event.reason
    if isinstance(event, BehaviourEvent):
        if event.action is BehaviourAction.REFERRAL:
            return f"referral: {event.subject} made a first purchase"  # only rewards are posted
        return event.action.value.replace("_", " ")
    return "refund"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Ingest:
    def __init__(
        self,
        ledger: Ledger,
        entries: LedgerStore,
        directory: Directory,
        programs: Programs,
        clock: Callable[[], datetime] = _utcnow,
        tiers: TierUpgrades | None = None,
    ) -> None:
        self._ledger = ledger
        self._entries = entries
        self._directory = directory
        self._programs = programs
        self._clock = clock
        self._tiers = tiers

    # --- Events ---------------------------------------------------------------------------------

    def handle(self, event: Event) -> Outcome:
        if isinstance(event, RefundEvent):
            return self._refund(event)
        if isinstance(event, BehaviourEvent) and event.action is BehaviourAction.REFERRAL:
            return self._record_referral(event)
        return self._earn(event)

    def dry_run(self, event: PurchaseEvent | PointsEvent | BehaviourEvent) -> EarnDecision:
        """The decision `handle` would record for this event now, writing nothing."""
        config = self._programs.get(event.program)
        self._refuse_if_closed(config, event, self._clock())
        view = self._view(config, event, self._identify(event.identity, event.program, create=False))
        decision, _ = self._decide(config, event, view)
        return decision

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
            refund_check = self._directory.no_refund_waiting(event.program, entry_id)
            checks = [] if refunds_may_wait else [refund_check]
            if _may_be_referred(event, view):
                # The member's first earn: a referral recorded after our read must make us read again.
                checks.append(self._directory.no_referral_awaiting(event.program, member))
            try:
                entry = self._ledger.earn(cmd, tallies=tallies, checks=checks, snapshot=snapshot)
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
                self._after_earn(config, entry)
                self._pay_referral(config, view, entry)
                return Outcome("replayed", entry.entry_id, entry.member, _points(entry))
            if refunds_may_wait:
                self._after_earn(config, entry)
            self._upgrade(config, view, tallies, now)
            self._pay_referral(config, view, entry)
            note = "held for review: member flagged" if cmd.held else ""
            return Outcome("posted", entry.entry_id, member, decision.points, note=note)
        raise ContentionError(f"member {member}'s daily tally kept changing; retry later", member=member)

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
        # A crash after the earn but before its follow-ups is repaired by the redelivery.
        if existing.kind in (EntryKind.EARN_PENDING, EntryKind.EARN):
            self._after_earn(self._programs.get(event.program), existing)
        return Outcome("replayed", existing.entry_id, existing.member, _points(existing))

    def _view(self, config: ProgramConfig, event: Event, member: str) -> MemberView:
        """The member's batch read, following merges to the member who holds the points now."""
        names = [activity.ACTIVITY]
        if self._capped(config, event):
            names.append(f"earned#{event.occurred_at.astimezone(config.tz).date().isoformat()}")
        if _is_sign_in(event):
            names.append(SIGN_INS)
        referral = isinstance(event, PurchaseEvent)  # a purchase may be the first one a referral waits for
        seen = {member}
        while True:
            view = self._directory.view(event.program, member, names, referral=referral)
            if not view.merged_into or view.merged_into in seen:
                return view
            member = view.merged_into
            seen.add(member)

    @staticmethod
    def _capped(config: ProgramConfig, event: Event) -> bool:
        return config.caps.per_member_per_day is not None and (
            not isinstance(event, PointsEvent) or config.caps.include_points_events
        )

    def _decide(
        self, config: ProgramConfig, event: PurchaseEvent | PointsEvent | BehaviourEvent, view: MemberView
    ) -> tuple[EarnDecision, list[Tally]]:
        tier = config.held_tier(view.tier).name
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
        if decision.pending_until is not None:
            details["pending_until"] = decision.pending_until.isoformat()
        return details

    def _nothing_to_post(self, event: Event, member: str, decision: EarnDecision, entry_id: str) -> Outcome:
        # No entry for zero points, but a cap that ate everything is still counted, once per event.
        if decision.capped_points:
            tally = Tally(event.program, member, f"capped#{decision.earn_day.isoformat()}", decision.capped_points)
            self._directory.bump(tally, once_for=entry_id)
        return Outcome("skipped", entry_id, member, note=f"0 points: {decision.explanation}")

    def _upgrade(self, config: ProgramConfig, view: MemberView, tallies: list[Tally], now: datetime) -> None:
        """Move up at once if this earn took qualifying activity over a higher tier's threshold.

        Decided on the batch read plus this earn, so the common case costs no request; only an
        actual upgrade asks the tier service, which re-reads and records the move. A flagged
        member is not moved up until the flag is decided (the earns are on hold).
        """
        if self._tiers is None or view.flagged:
            return
        added = next((t.counters for t in tallies if t.name == activity.ACTIVITY), ())
        counters = activity.combined(view.tally(activity.ACTIVITY).counters, dict(added))
        reached = qualifying_tier(config, activity.in_window(config, counters, now))
        held = config.held_tier(view.tier)
        if reached.rank > held.rank:
            self._tiers.on_earn(config.program, view.member, now)

    def _after_earn(self, config: ProgramConfig, entry: Entry) -> None:
        """Follow-ups of an earn that refunds were waiting for; idempotent, re-run by redeliveries."""
        if entry.kind is EntryKind.EARN:
            self._apply_waiting(entry.program, entry.entry_id)
            return
        settled = self._entries.get_entry(entry.program, f"settle:{entry.entry_id}")
        if settled is None:
            self._void_if_fully_refunded(config, entry.program, entry.entry_id)
        elif settled.kind is EntryKind.ACTIVATE:
            self._apply_waiting(entry.program, entry.entry_id)

    # --- Referrals ------------------------------------------------------------------------------

    def _record_referral(self, event: BehaviourEvent) -> Outcome:
        """Record who referred whom; the referrer is paid when the referred member first buys.

        One referrer per referred member (the first recorded wins); nobody refers themself (after
        following merges); the referred member must be new to the program (nothing posted on its
        account yet, checked in the same transaction as the record), else the referral is recorded
        as not eligible with the reason. Nothing is posted now, so a duplicate is just answered.
        """
        config = self._programs.get(event.program)
        now = self._clock()
        self._refuse_if_closed(config, event, now)
        if not event.subject:
            raise InvalidInputError("a referral names the referred member as its subject")
        # The referrer is the app's member (registered members are never merged into others); its
        # merges are followed when the reward is paid.
        referrer = self._identify(event.identity, event.program, create=False)
        for _ in range(MAX_DECISIONS):
            referred = self._follow_view(event.program, event.subject)
            reward_id = f"{REFERRAL_SOURCE}:{referred.member}"
            if referred.member == referrer:
                return Outcome("skipped", reward_id, referrer, note="a member cannot refer themself")
            found = referred.referral
            if found is not None:
                return _referral_outcome(event, referred.member, referrer, found, reward_id)
            record = Referral(
                referrer=referrer,
                status=REFERRAL_AWAITING,
                source=event.source,
                event_id=event.external_id,
                recorded_at=now.isoformat(),
            )
            if referred.account is not None and referred.account.seq > 0:
                reason = f"{referred.member} is not new to {event.program}: it has points already"
                record = replace(record, status=REFERRAL_NOT_ELIGIBLE, reason=reason)
            if self._directory.record_referral(event.program, referred.member, record):
                return _referral_outcome(event, referred.member, referrer, record, reward_id)
            # Someone else's referral, or the member's first earn, got there first: look again.
        raise ContentionError(f"the referral of {event.subject} kept changing; retry", member=event.subject)

    def _follow_view(self, program: str, member: str) -> MemberView:
        seen = {member}
        while True:
            view = self._directory.view(program, member, referral=True)
            if not view.merged_into or view.merged_into in seen:
                return view
            member = view.merged_into
            seen.add(member)

    def _pay_referral(self, config: ProgramConfig, buyer: MemberView, purchase: Entry) -> None:
        """The referred member's first purchase posted: pay its referrer, once (keyed by the referred member).

        The reward is behaviour points for the referrer (caps on the purchase's day, tier expiry, a
        flag holds it) and waits with the purchase: pending until the purchase's return window closes,
        and, if the buyer is flagged, until the buyer's flag is decided (voided with a confirmed fraud).
        """
        referral = buyer.referral
        if referral is None or not referral.awaiting or purchase.kind not in (EntryKind.EARN, EntryKind.EARN_PENDING):
            return
        reward = BehaviourEvent(
            program=config.program,
            channel=Channel.APP,
            source=REFERRAL_SOURCE,
            external_id=buyer.member,
            identity=Identity(kind=IdentityKind.MEMBER, value=referral.referrer),
            occurred_at=purchase.event_time,
            action=BehaviourAction.REFERRAL,
            subject=buyer.member,
        )
        until = purchase.details.get("pending_until") if purchase.kind is EntryKind.EARN_PENDING else None
        extra = {"purchase": purchase.entry_id, "referral_event": f"{referral.source}:{referral.event_id}"}
        try:
            outcome = self._post_earn(
                config,
                reward,
                event_hash(reward),
                {
                    "until": datetime.fromisoformat(until) if until else None,
                    "details": extra,
                    "held_for": buyer.member if buyer.flagged else "",
                },
            )
        except IdempotencyConflictError:
            # Paid before, from an earlier purchase whose follow-up was cut short: just close it.
            outcome = Outcome("replayed", entry_key(reward))
        self._directory.referral_paid(
            config.program, buyer.member, entry_key(reward), purchase.entry_id, outcome.points
        )

    def _void_referral_of(self, config: ProgramConfig, holder: str, order: Entry) -> None:
        """A first purchase refunded in full within its window never paid out: nor does its referral."""
        referred = self._directory.view(config.program, holder, full=False, referral=True).referral
        if referred is None or referred.status != REFERRAL_PAID or referred.purchase != order.entry_id:
            return
        reward = self._entries.get_entry(config.program, referred.reward)
        if reward is not None and reward.kind is EntryKind.EARN_PENDING:
            self._void(config, self._follow(reward.member), reward, f"{holder}'s first purchase was returned")
        reason = f"the first purchase ({order.entry_id}) was refunded in full within its return window"
        self._directory.referral_ended(config.program, holder, REFERRAL_NOT_ELIGIBLE, reason)

    # --- Refunds --------------------------------------------------------------------------------

    def _refund(self, event: RefundEvent) -> Outcome:
        config = self._programs.get(event.program)
        digest = event_hash(event)
        order_id = f"{event.source}:{event.order_external_id}"
        earned = self._earned_entry(event.program, order_id)
        if earned is None:
            # Park first, then look again: whichever of order and refund lands second applies it.
            self._directory.park_refund(event.program, order_id, entry_key(event), event.model_dump_json())
            earned = self._earned_entry(event.program, order_id)
            if earned is None and self._void_if_fully_refunded(config, event.program, order_id):
                earned = self._earned_entry(event.program, order_id)
            if earned is None:
                return Outcome("parked", entry_key(event), note=f"waiting for {order_id} to post or activate")
        return self._apply_refund(config, event, earned, digest)

    def _void_if_fully_refunded(self, config: ProgramConfig, program: str, order_id: str) -> bool:
        """An order refunded in full within its return window never pays out: void its pending earn."""
        order = self._entries.get_entry(program, order_id)
        if order is None or order.kind is not EntryKind.EARN_PENDING:
            return False
        refunds = [parse_event(body) for body in self._directory.waiting_refunds(program, order_id)]
        total = sum((r.refunded_amount for r in refunds if isinstance(r, RefundEvent)), Decimal(0))
        if total < Decimal(order.details.get("basis_amount", "0")):
            return False
        holder = self._follow(order.member)  # a merge moved the pending earn to the survivor
        if not self._void(config, holder, order, "refunded in full in its window"):
            return False  # activated meanwhile: the refunds claw back from the activation instead
        self._apply_waiting(program, order_id)  # the parked refunds are settled by the void: drop them
        self._void_referral_of(config, holder, order)
        return True

    def _void(self, config: ProgramConfig, holder: str, earned: Entry, reason: str) -> bool:
        """Void a pending earn on its holder; its qualifying activity goes with it."""
        basis = Decimal(earned.details.get("basis_amount", "0"))
        taken_back = activity.change(config, earned.event_time, -earned.delta(Account.PENDING), -basis)
        for _ in range(MAX_DECISIONS):
            cmd = Void(program=earned.program, member=holder, entry_id=earned.entry_id, reason=reason[:300])
            try:
                self._ledger.void(cmd, tallies=[activity.tally(earned.program, holder, taken_back)])
            except AccountClosedError as closed:
                holder = self._follow(closed.survivor)  # a merge moved the pending earn after we looked
                continue
            except (AlreadySettledError, UnknownEntryError):
                return False
            return True
        return False

    def _earned_entry(self, program: str, order_id: str) -> Entry | None:
        """The entry holding the order's spendable points: the earn, or its activation once pending ends."""
        order = self._entries.get_entry(program, order_id)
        if order is None or order.kind is EntryKind.EARN:
            return order
        if order.kind is EntryKind.EARN_PENDING:
            settled = self._entries.get_entry(program, f"settle:{order_id}")
            if settled is not None and settled.kind is EntryKind.ACTIVATE:
                return settled
            if settled is not None:
                return order  # voided: nothing left to claw back
        return None

    def _apply_refund(self, config: ProgramConfig, event: RefundEvent, earned: Entry, digest: str) -> Outcome:
        order_id = f"{event.source}:{event.order_external_id}"
        if earned.kind is EntryKind.EARN_PENDING:
            return Outcome("skipped", entry_key(event), earned.member, note=f"{order_id} was voided in its window")
        order = earned if earned.kind is not EntryKind.ACTIVATE else self._entries.get_entry(event.program, order_id)
        assert order is not None
        points = earned.delta(Account.AVAILABLE)
        basis = Decimal(order.details.get("basis_amount", "0"))
        owner = order.member  # refund tallies stay with the order, even after a merge
        names = [f"refunded#{order_id}", f"clawed#{order_id}"]
        view = self._directory.view(event.program, owner, names, full=False)
        # The points are wherever the earn (or its activation) put them, followed through merges.
        if earned.member != owner:
            member = self._follow(earned.member)
        else:
            member = self._follow(view.merged_into) if view.merged_into else owner
        for _ in range(MAX_DECISIONS):
            refunded, clawed = view.tally(names[0]).value, view.tally(names[1]).value
            previously = Decimal(refunded) / MONEY_SCALE
            due = refund_clawback(config, points, basis, event.refunded_amount, clawed, previously)
            refunded_spend = min(event.refunded_amount, max(basis - previously, Decimal(0)))
            cmd = ClawBack(
                program=event.program,
                member=member,
                entry_id=earned.entry_id,
                points=due,
                source=event.source,
                external_id=event.external_id,
                reason="refund",
                details={
                    "explanation": (
                        f"-{due} = {points} earned on {order_id} x refunded {event.refunded_amount} "
                        f"of {basis} (cumulative {previously + event.refunded_amount})"
                    ),
                    "order": order_id,
                    "refunded_amount": str(event.refunded_amount),
                    "event_hash": digest,
                    "shortfall_policy": "write_off",
                },
            )
            taken_back = activity.change(config, order.event_time, -due, -refunded_spend)
            tallies = [
                Tally(event.program, owner, names[0], int(event.refunded_amount * MONEY_SCALE), refunded),
                Tally(event.program, owner, names[1], due, clawed),
                activity.tally(event.program, member, taken_back),
            ]
            try:
                entry = self._ledger.claw_back(cmd, tallies=tallies)
            except TallyChangedError:
                view = self._directory.view(event.program, owner, names, full=False)
                continue
            except AccountClosedError as closed:
                member = self._follow(closed.survivor)  # merged after we looked: the points are there now
                continue
            except IdempotencyConflictError:
                # Applied before (a redelivery, or the order's own pass over its waiting refunds).
                existing = self._existing(event, entry_key(event), digest)
                if existing is None:
                    raise
                return existing
            return Outcome("posted", entry.entry_id, member, -entry.delta(Account.AVAILABLE))
        raise ContentionError(f"order {order_id} kept changing; retry later", order=order_id)

    def _apply_waiting(self, program: str, order_id: str) -> None:
        for body in self._directory.waiting_refunds(program, order_id):
            refund = parse_event(body)
            assert isinstance(refund, RefundEvent)
            if self._refund(refund).status != "parked":
                self._directory.drop_refund(program, order_id, entry_key(refund))

    # --- Pending points -------------------------------------------------------------------------

    def activate_due(self, program: str, now: datetime | None = None) -> list[str]:
        """Activate every pending earn whose return window has closed by `now`; safe to re-run.

        Earns held for a flagged member wait while the flag is open; once an operator decided it,
        they activate (released) or are voided (fraud confirmed) here, if the decision itself did
        not already settle them.
        """
        now = now or self._clock()
        config = self._programs.get(program)
        activated: list[str] = []
        flags: dict[str, str] = {}
        today = now.astimezone(UTC).date()
        for back in range(CATCH_UP_DAYS, -1, -1):
            day = (today - timedelta(days=back)).isoformat()
            for pending in self._directory.due_pending(program, day, now):
                if pending.held_for:
                    if pending.held_for not in flags:
                        flags[pending.held_for] = self._directory.flag_status(program, pending.held_for)
                    if flags[pending.held_for] == FLAG_OPEN:
                        continue
                    if flags[pending.held_for] == FLAG_VOIDED:
                        self._void_held(config, pending, "fraud confirmed after review")
                        continue
                if self._activate(program, pending, now, "return window closed"):
                    activated.append(pending.entry_id)
        return activated

    def _activate(self, program: str, pending: PendingEarn, now: datetime, reason: str) -> bool:
        try:
            cmd = Activate(program=program, member=pending.member, entry_id=pending.entry_id, reason=reason[:300])
            self._ledger.activate(cmd, at=now)
            done = True
        except (AlreadySettledError, UnknownEntryError, AccountClosedError):
            done = False  # settled meanwhile, or moved by a merge: the next run finds it with its holder
        self._apply_waiting(program, pending.entry_id)
        survivor = self._follow(pending.member)
        if survivor != pending.member:
            # Activated in the instant between a merge's pointer and its transfer: move the points along
            # (whichever of this and the merge's own transfer comes second finds nothing left to move).
            self._ledger.transfer(
                Transfer(
                    program=program,
                    member=pending.member,
                    to_member=survivor,
                    external_id=f"merge:{pending.member}:{survivor}:{pending.entry_id}",
                    reason="points activated after merge",
                ),
                at=now,
            )
        return done

    def _void_held(self, config: ProgramConfig, pending: PendingEarn, reason: str) -> bool:
        earned = self._entries.get_entry(config.program, pending.entry_id)
        if earned is None or not self._void(config, pending.member, earned, reason):
            return False
        self._apply_waiting(config.program, pending.entry_id)  # refunds parked on it: settled by the void
        return True

    def settle_held(
        self, program: str, member: str, decision: Decision, note: str, at: datetime | None = None
    ) -> HeldSettlement:
        """Apply an operator's decision on a member's flag to the earns it held (record the decision first).

        `release`: each held earn activates now, or stays pending until its return window closes
        (the activation job then activates it). `void`: each held earn is voided (fraud confirmed).
        Idempotent: settling twice finds nothing more to do.
        """
        now = at or self._clock()
        config = self._programs.get(program)
        result = HeldSettlement()
        holders = dict.fromkeys([member, self._follow(member)])  # the earns follow a merge
        for holder in holders:
            for pending in self._entries.get_pending_earns(program, holder):
                if pending.held_for != member:
                    continue
                if decision == "void":
                    if self._void_held(config, pending, f"voided after review: {note}"):
                        result.voided.append(pending.entry_id)
                elif pending.until is None or pending.until <= now:
                    if self._activate(program, pending, now, f"released after review: {note}"):
                        result.released.append(pending.entry_id)
                else:
                    result.still_pending.append(pending.entry_id)
        return result

    # --- Identities -----------------------------------------------------------------------------

    def resolve(self, identity: Identity, program: str) -> str:
        """The member an identity belongs to now, creating a provisional one for a stranger."""
        return self._follow(self._identify(identity, program, create=True))

    def _identify(self, identity: Identity, program: str, *, create: bool) -> str:
        """The member an identity names (before following merges)."""
        if identity.kind is IdentityKind.MEMBER:
            return identity.value
        if identity.kind is IdentityKind.ORDER:
            order = self._entries.get_entry(program, f"{identity.scope}:{identity.value}")
            if order is None:
                raise UnknownEntryError(f"no order {identity.value} of {identity.scope} to find the member by")
            return order.member
        member = self._directory.member_for(identity.key)
        if member is not None:
            return member
        if not create:
            return provisional_member(identity)
        return self._directory.claim(identity.key, provisional_member(identity), provisional=True)

    def _follow(self, member: str) -> str:
        seen = {member}
        while True:
            profile = self._directory.profile(member)
            merged = profile.get("merged_into") if profile else None
            if not merged or merged in seen:
                return member
            member = str(merged)
            seen.add(member)

    def link(self, program: str, a: Identity, b: Identity, at: datetime | None = None) -> LinkResult:
        """Make two identities one member: a provisional member folds into the other through the ledger.

        Order matters for events arriving meanwhile: the merge pointer and the identity links move
        first, so new events land on the survivor; then the provisional balance moves by transfer.
        """
        member_a, member_b = self._known(a), self._known(b)
        if member_a is None and member_b is None:
            member_a = self._directory.claim(a.key, provisional_member(a), provisional=True)
        if member_a is None or member_b is None:
            survivor = member_a or member_b
            assert survivor is not None
            missing = a if member_a is None else b
            self._directory.claim(missing.key, survivor, provisional=False)
            return LinkResult(survivor)
        if member_a == member_b:
            return LinkResult(member_a)
        prov_a, prov_b = self._provisional(member_a), self._provisional(member_b)
        if not prov_a and not prov_b:
            raise MergeConflictError(
                f"{member_a} and {member_b} are both registered members; merge them by hand", a=member_a, b=member_b
            )
        survivor, merged = (member_b, member_a) if prov_a and not prov_b else (member_a, member_b)
        self._directory.mark_merged(merged, survivor)
        profile = self._directory.profile(merged) or {}
        identities = profile.get("identities") or set()
        assert isinstance(identities, set | frozenset)
        for key in sorted(str(k) for k in identities):
            self._directory.repoint(key, survivor)
        # Everything moves at once and the account closes in the same transaction (even an account
        # not opened yet), so an earn that resolved the merged member just before cannot land there.
        for _ in range(MAX_DECISIONS):
            try:
                self._ledger.transfer(
                    Transfer(
                        program=program,
                        member=merged,
                        to_member=survivor,
                        external_id=f"merge:{merged}:{survivor}",
                        reason="identities linked: provisional account merged",
                    ),
                    at=at,
                )
                break
            except AccountClosedError as closed:
                survivor = self._follow(closed.survivor)  # the survivor was itself merged meanwhile
        else:
            raise ContentionError(f"the survivor of {merged} kept moving; retry the link", member=merged)
        self._directory.merge_tally(program, activity.ACTIVITY, merged, survivor)
        return LinkResult(survivor, merged)

    def _known(self, identity: Identity) -> str | None:
        if identity.kind is IdentityKind.MEMBER:
            return self._follow(identity.value)
        if identity.kind is IdentityKind.ORDER:
            raise InvalidInputError("an order is not an identity that can be linked")
        member = self._directory.member_for(identity.key)
        return self._follow(member) if member else None

    def _provisional(self, member: str) -> bool:
        profile = self._directory.profile(member)
        return bool(profile and profile.get("provisional"))


def _referral_outcome(event: BehaviourEvent, referred: str, referrer: str, found: Referral, reward_id: str) -> Outcome:
    """How a referral event is answered, from the referral the referred member has."""
    if (found.source, found.event_id) != (event.source, event.external_id):
        if found.referrer != referrer:
            note = f"{referred} was already referred by {found.referrer}; the first referral wins"
        else:
            note = f"{referred} was already referred by {referrer}"
        return Outcome("skipped", reward_id, referrer, note=note)
    if found.status == REFERRAL_NOT_ELIGIBLE:
        return Outcome("skipped", reward_id, referrer, note=f"referral not eligible: {found.reason}")
    if found.status == REFERRAL_PAID:
        return Outcome("replayed", reward_id, referrer, note=f"referral of {referred} already paid")
    return Outcome("recorded", reward_id, referrer, note=f"referral of {referred}: paid when {referred} first buys")


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
    return entry.delta(Account.AVAILABLE) + entry.delta(Account.PENDING)


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


def _may_be_referred(event: Event, view: MemberView) -> bool:
    """A purchase by a member with nothing posted yet, and no referral seen: one may be recorded meanwhile."""
    new = view.account is None or view.account.seq == 0
    return isinstance(event, PurchaseEvent) and new and view.referral is None
