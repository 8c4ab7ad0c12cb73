"""Ingest: one normalised event in, ledger entries out, exactly once, whatever the arrival order.

Per event: find the member behind the identity (an unknown identity gets a provisional member,
so no point is lost), read the member's tier and the facts the rules need at the EVENT's time
(points earned that local day, sign-in days), evaluate the program's rules and post the result.
The ledger key is the source's own id (`<source>:<external id>`), so a redelivery finds its
entry and changes nothing. Every entry carries the rule version, the explanation and the
breakdown, so any balance can be explained line by line.

Refunds claw back in proportion to the money refunded, cumulatively per order; a refund that
arrives before its order (or while the order's points are still pending) waits in a list keyed by
the order and is applied when the order posts (or activates). Linking two identities merges a
provisional member into the surviving one with ledger transfer entries, never by editing balances.

This module does no I/O of its own: the ledger, the entry store and the `Directory` are passed in.
docs/channels.md describes the pipeline, the refund policy and identity merging in prose.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import TypeAdapter

from shared.entries import Account, EntryKind
from shared.errors import (
    AlreadySettledError,
    ContentionError,
    IdempotencyConflictError,
    InvalidInputError,
    LedgerError,
    UnknownEntryError,
)
from shared.events import (
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
from shared.ledger import Activate, ClawBack, Earn, Tally, TallyChangedError, Transfer, Void
from shared.rules import evaluate_behaviour, evaluate_points, evaluate_purchase, refund_clawback

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.entries import Entry
    from shared.ledger import Ledger, LedgerStore, Programs
    from shared.program import ProgramConfig
    from shared.rules import EarnDecision

Event = PurchaseEvent | RefundEvent | PointsEvent | BehaviourEvent
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(NormalisedEvent)

# A tally guards a decision (the daily cap); when it moved underneath, decide again a few times.
MAX_DECISIONS = 5
# Pending markers are indexed by due day; an hourly job looks back this far so a missed run (or
# an outage of several days) still activates everything once it runs again.
CATCH_UP_DAYS = 14
# Refunded money is tallied in ten-thousandths, the precision of the event model's money.
MONEY_SCALE = Decimal(10_000)
SIGN_INS = "signins"


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

    def tier(self, program: str, member: str) -> str | None: ...

    def tally(self, program: str, member: str, name: str) -> tuple[int, frozenset[str]]: ...

    def bump(self, tally: Tally, once_for: str) -> None: ...

    def mark_pending(self, program: str, member: str, entry_id: str, due: datetime) -> None: ...

    def due_pending(self, program: str, day: str, until: datetime) -> list[tuple[str, str]]: ...

    def clear_pending(self, program: str, member: str, entry_id: str) -> None: ...

    def park_refund(self, program: str, order_entry_id: str, refund_entry_id: str, body: str) -> None: ...

    def waiting_refunds(self, program: str, order_entry_id: str) -> list[str]: ...

    def drop_refund(self, program: str, order_entry_id: str, refund_entry_id: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What ingest did with one event."""

    status: Literal["posted", "replayed", "parked", "skipped"]
    entry_id: str
    member: str = ""
    points: int = 0
    note: str = ""


@dataclass(frozen=True)
class LinkResult:
    survivor: str
    merged: str = ""  # the provisional member folded into the survivor, if any


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
    ) -> None:
        self._ledger = ledger
        self._entries = entries
        self._directory = directory
        self._programs = programs
        self._clock = clock

    # --- Events ---------------------------------------------------------------------------------

    def handle(self, event: Event) -> Outcome:
        if isinstance(event, RefundEvent):
            return self._refund(event)
        return self._earn(event)

    def dry_run(self, event: PurchaseEvent | PointsEvent | BehaviourEvent) -> EarnDecision:
        """The decision `handle` would record for this event now, writing nothing."""
        config = self._programs.get(event.program)
        member = self._resolve(event.identity, event.program, create=False)
        decision, _ = self._decide(config, event, member)
        return decision

    def _earn(self, event: PurchaseEvent | PointsEvent | BehaviourEvent) -> Outcome:
        config = self._programs.get(event.program)
        digest = event_hash(event)
        replay = self._replayed(event, entry_key(event), digest)
        if replay is not None:
            return replay
        member = self._resolve(event.identity, event.program, create=True)
        entry_id = self._earn_entry_id(config, event, member)
        if entry_id != entry_key(event):
            # Sign-ins earn once per member per local day, whatever the app's own event id.
            existing = self._entries.get_entry(event.program, entry_id)
            if existing is not None:
                return Outcome("skipped", entry_id, existing.member, note="already rewarded that day")
        for _ in range(MAX_DECISIONS):
            decision, tallies = self._decide(config, event, member)
            if decision.points == 0:
                return self._nothing_to_post(event, member, decision, entry_id)
            cmd = Earn(
                program=event.program,
                member=member,
                points=decision.points,
                source=event.source,
                external_id=entry_id.removeprefix(f"{event.source}:"),
                reason=_short_reason(event),
                event_time=event.occurred_at,
                expires_at=decision.expires_at,
                pending=decision.pending_until is not None,
                config_version=decision.config_version,
                **_counter(event),
                details=self._details(event, decision, digest),
            )
            try:
                entry = self._ledger.earn(cmd, tallies=tallies)
            except TallyChangedError:
                continue
            except IdempotencyConflictError:
                # A concurrent delivery of the same event may have posted first, on other tallies.
                replay = self._replayed(event, entry_id, digest)
                if replay is None:
                    raise
                return replay
            self._after_earn(entry)
            return Outcome("posted", entry.entry_id, member, decision.points)
        raise ContentionError(f"member {member}'s daily tally kept changing; retry later", member=member)

    def _earn_entry_id(self, config: ProgramConfig, event: Event, member: str) -> str:
        if isinstance(event, BehaviourEvent) and event.action is BehaviourAction.SIGN_IN:
            day = event.occurred_at.astimezone(config.tz).date().isoformat()
            return f"{event.source}:sign_in:{member}:{day}"
        return entry_key(event)

    def _replayed(self, event: Event, entry_id: str, digest: str) -> Outcome | None:
        existing = self._entries.get_entry(event.program, entry_id)
        if existing is None:
            return None
        if existing.details.get("event_hash", digest) != digest:
            raise IdempotencyConflictError(f"{entry_id} was already posted from a different event", entry_id=entry_id)
        # A crash after the earn but before its follow-ups is repaired by the redelivery.
        if existing.kind is EntryKind.EARN_PENDING or existing.kind is EntryKind.EARN:
            self._after_earn(existing)
        return Outcome("replayed", existing.entry_id, existing.member, _points(existing))

    def _decide(
        self, config: ProgramConfig, event: PurchaseEvent | PointsEvent | BehaviourEvent, member: str
    ) -> tuple[EarnDecision, list[Tally]]:
        tier = self._directory.tier(event.program, member) or config.tiers[0].name
        if tier not in {t.name for t in config.tiers}:
            tier = config.tiers[0].name  # a tier renamed by a newer config: fall back, never fail
        day = event.occurred_at.astimezone(config.tz).date()
        capped = config.caps.per_member_per_day is not None and (
            not isinstance(event, PointsEvent) or config.caps.include_points_events
        )
        used = self._directory.tally(event.program, member, f"earned#{day.isoformat()}")[0] if capped else 0
        tallies: list[Tally] = []
        if isinstance(event, PurchaseEvent):
            decision = evaluate_purchase(config, event, tier, used)
        elif isinstance(event, PointsEvent):
            decision = evaluate_points(config, event, tier, used)
        else:
            streak = 0
            if event.action is BehaviourAction.SIGN_IN:
                days = self._directory.tally(event.program, member, SIGN_INS)[1]
                streak = _streak(days | {day.isoformat()}, day)
                tallies.append(Tally(event.program, member, SIGN_INS, mark=day.isoformat()))
            decision = evaluate_behaviour(config, event, tier, used, streak)
        if capped:
            tallies.append(Tally(event.program, member, f"earned#{day.isoformat()}", decision.points, used))
        if decision.capped_points:
            tallies.append(Tally(event.program, member, f"capped#{day.isoformat()}", decision.capped_points))
        return decision, tallies

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

    def _after_earn(self, entry: Entry) -> None:
        """Follow-ups of an earn, each idempotent, re-run by every redelivery of its event."""
        if entry.kind is EntryKind.EARN_PENDING:
            if self._entries.get_entry(entry.program, f"settle:{entry.entry_id}") is None:
                due = datetime.fromisoformat(entry.details["pending_until"])
                self._directory.mark_pending(entry.program, entry.member, entry.entry_id, due)
            else:
                self._apply_waiting(entry.program, entry.entry_id)
            return
        self._apply_waiting(entry.program, entry.entry_id)

    # --- Refunds --------------------------------------------------------------------------------

    def _refund(self, event: RefundEvent) -> Outcome:
        config = self._programs.get(event.program)
        digest = event_hash(event)
        replay = self._replayed(event, entry_key(event), digest)
        if replay is not None:
            return replay
        order_id = f"{event.source}:{event.order_external_id}"
        earned = self._earned_entry(event.program, order_id)
        if earned is None:
            # Park first, then look again: whichever of order and refund lands second applies it.
            self._directory.park_refund(event.program, order_id, entry_key(event), event.model_dump_json())
            earned = self._earned_entry(event.program, order_id)
            if earned is None and self._void_if_fully_refunded(event.program, order_id):
                earned = self._earned_entry(event.program, order_id)
            if earned is None:
                return Outcome("parked", entry_key(event), note=f"waiting for {order_id} to post or activate")
        return self._apply_refund(config, event, earned, digest)

    def _void_if_fully_refunded(self, program: str, order_id: str) -> bool:
        """An order refunded in full within its return window never pays out: void its pending earn."""
        order = self._entries.get_entry(program, order_id)
        if order is None or order.kind is not EntryKind.EARN_PENDING:
            return False
        refunds = [parse_event(body) for body in self._directory.waiting_refunds(program, order_id)]
        total = sum((r.refunded_amount for r in refunds if isinstance(r, RefundEvent)), Decimal(0))
        if total < Decimal(order.details.get("basis_amount", "0")):
            return False
        try:
            self._ledger.void(
                Void(program=program, member=order.member, entry_id=order_id, reason="refunded in full in its window")
            )
        except AlreadySettledError:
            return False  # activated meanwhile: the refunds claw back from the activation instead
        self._directory.clear_pending(program, order.member, order_id)
        self._apply_waiting(program, order_id)  # the parked refunds are settled by the void: drop them
        return True

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
            self._directory.drop_refund(event.program, order_id, entry_key(event))
            return Outcome("skipped", entry_key(event), earned.member, note=f"{order_id} was voided in its window")
        order = earned if earned.kind is not EntryKind.ACTIVATE else self._entries.get_entry(event.program, order_id)
        assert order is not None
        points = earned.delta(Account.AVAILABLE)
        basis = Decimal(order.details.get("basis_amount", "0"))
        owner = order.member  # refund tallies stay with the order, even after a merge
        member = self._follow(earned.member)
        for _ in range(MAX_DECISIONS):
            refunded, _marks = self._directory.tally(event.program, owner, f"refunded#{order_id}")
            clawed, _marks = self._directory.tally(event.program, owner, f"clawed#{order_id}")
            previously = Decimal(refunded) / MONEY_SCALE
            due = refund_clawback(config, points, basis, event.refunded_amount, clawed, previously)
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
            tallies = [
                Tally(event.program, owner, f"refunded#{order_id}", int(event.refunded_amount * MONEY_SCALE), refunded),
                Tally(event.program, owner, f"clawed#{order_id}", due, clawed),
            ]
            try:
                entry = self._ledger.claw_back(cmd, tallies=tallies)
            except TallyChangedError:
                continue
            self._directory.drop_refund(event.program, order_id, entry.entry_id)
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
        """Activate every pending earn whose return window has closed by `now`; safe to re-run."""
        now = now or self._clock()
        self._programs.get(program)
        activated: list[str] = []
        today = now.astimezone(UTC).date()
        for back in range(CATCH_UP_DAYS, -1, -1):
            day = (today - timedelta(days=back)).isoformat()
            for member, entry_id in self._directory.due_pending(program, day, now):
                try:
                    self._ledger.activate(Activate(program=program, member=member, entry_id=entry_id), at=now)
                    activated.append(entry_id)
                except (AlreadySettledError, UnknownEntryError):
                    pass  # voided, or activated by an earlier run that stopped before clearing
                self._apply_waiting(program, entry_id)
                survivor = self._follow(member)
                if survivor != member:
                    # The member was merged while these points were pending: they follow the member.
                    self._ledger.transfer(
                        Transfer(
                            program=program,
                            member=member,
                            to_member=survivor,
                            external_id=f"merge:{member}:{survivor}:{entry_id}",
                            reason="points activated after merge",
                        ),
                        at=now,
                    )
                self._directory.clear_pending(program, member, entry_id)
        return activated

    # --- Identities -----------------------------------------------------------------------------

    def resolve(self, identity: Identity, program: str) -> str:
        """The member an identity belongs to now, creating a provisional one for a stranger."""
        return self._resolve(identity, program, create=True)

    def _resolve(self, identity: Identity, program: str, *, create: bool) -> str:
        if identity.kind is IdentityKind.MEMBER:
            return self._follow(identity.value)
        if identity.kind is IdentityKind.ORDER:
            order = self._entries.get_entry(program, f"{identity.scope}:{identity.value}")
            if order is None:
                raise UnknownEntryError(f"no order {identity.value} of {identity.scope} to find the member by")
            return self._follow(order.member)
        member = self._directory.member_for(identity.key)
        if member is not None:
            return self._follow(member)
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
        if self._entries.get_account(program, merged) is not None:
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
