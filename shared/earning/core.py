"""What every part of ingest shares: its collaborators, and who an identity belongs to now."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import TypeAdapter

from shared.errors import (
    LedgerError,
    UnknownEntryError,
)
from shared.events.model import (
    BehaviourAction,
    BehaviourEvent,
    Identity,
    IdentityKind,
    NormalisedEvent,
    PointsEvent,
    PurchaseEvent,
    RefundEvent,
)
from shared.members import activity

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shared.earning.store import EarningItems
    from shared.ledger.commands import Cause
    from shared.ledger.contract import LedgerStore, Programs
    from shared.ledger.ledger import Ledger
    from shared.ledger.models import Entry
    from shared.members.store import MemberDirectory, ViewWanted
    from shared.members.view import MemberView
    from shared.program.config import ProgramConfig
    from shared.program.rules import EarnDecision


Event = PurchaseEvent | RefundEvent | PointsEvent | BehaviourEvent


@cache
def event_adapter() -> TypeAdapter[Event]:
    """The events' validator, built on first use: most functions import this module, few parse events."""
    return TypeAdapter(NormalisedEvent)


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
        return event_adapter().validate_python(data)
    return event_adapter().validate_json(data)


DISPLAY_ONLY = {"reference", "card"}


def event_hash(event: Event) -> str:
    """Tells a redelivery (same hash) from a different event reusing the same source id.

    Display-only fields (the order number a customer sees) and the card hash are left out: adapters
    started to add them (2026-12-07), and an event delivered before (a sender's retry, a file re-sent)
    is still the same event, not a different one reusing its id.
    """
    return hashlib.sha256(event.model_dump_json(exclude=DISPLAY_ONLY).encode()).hexdigest()[:32]


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


class IngestCore:
    def __init__(
        self,
        ledger: Ledger,
        entries: LedgerStore,
        members: MemberDirectory,
        items: EarningItems,
        programs: Programs,
        clock: Callable[[], datetime] = _utcnow,
        tiers: TierUpgrades | None = None,
    ) -> None:
        self._ledger = ledger
        self._entries = entries
        self._members = members
        self._items = items
        self._programs = programs
        self._clock = clock
        self._tiers = tiers

    def read_ahead(self, events: Sequence[Event]) -> None:
        """Read in one request the identity links a batch of events will look up (`MemberDirectory.read_ahead`),
        then in one more the views their earns decide on (`MemberDirectory.read_views_ahead`);
        `forget_read_ahead` once the batch is done."""
        looked_up = (IdentityKind.MEMBER, IdentityKind.ORDER)  # `_identify` finds these without a link
        identities = [event.identity.key for event in events if event.identity.kind not in looked_up]
        self._members.read_ahead(list(dict.fromkeys(identities)))
        self._members.read_views_ahead(self._views_wanted(events))

    def _known_member(self, identity: Identity) -> str | None:
        """The member an identity names as far as known without a request (before following merges)."""
        if identity.kind is IdentityKind.MEMBER:
            return identity.value
        if identity.kind is IdentityKind.ORDER:
            return None
        return self._members.linked_ahead(identity.key)

    def forget_read_ahead(self) -> None:
        self._members.forget_read_ahead()

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
        member = self._members.member_for(identity.key)
        if member is not None:
            return member
        if not create:
            return provisional_member(identity)
        return self._members.claim(identity.key, provisional_member(identity), provisional=True)

    def _follow(self, member: str) -> str:
        seen = {member}
        while True:
            profile = self._members.profile(member)
            merged = profile.merged_into if profile else ""
            if not merged or merged in seen:
                return member
            member = merged
            seen.add(member)

    # Each part of ingest calls the others through these (implemented in purchases, referrals,
    # refunds); `Ingest` combines the parts, so at run time `self` has them all.

    def _post_earn(
        self,
        config: ProgramConfig,
        event: PurchaseEvent | PointsEvent | BehaviourEvent,
        digest: str,
        overrides: dict[str, Any] | None = None,
    ) -> Outcome:
        raise NotImplementedError

    def _refuse_if_closed(self, config: ProgramConfig, event: Event, now: datetime) -> None:
        raise NotImplementedError

    def _views_wanted(self, events: Sequence[Event]) -> list[ViewWanted]:
        raise NotImplementedError

    def _existing(self, event: Event, entry_id: str, digest: str) -> Outcome | None:
        raise NotImplementedError

    def _pay_referral(self, config: ProgramConfig, buyer: MemberView, purchase: Entry) -> None:
        raise NotImplementedError

    def _void_referral_of(self, config: ProgramConfig, holder: str, order: Entry) -> None:
        raise NotImplementedError

    def _void(
        self,
        config: ProgramConfig,
        holder: str,
        earned: Entry,
        reason: str,
        cause: Cause,
        justified: dict[str, str] | None = None,
    ) -> bool:
        raise NotImplementedError

    def _apply_waiting(self, program: str, order_id: str) -> bool:
        raise NotImplementedError

    def _follow_up(self, config: ProgramConfig, order_id: str, settled: Entry | None = None) -> None:
        raise NotImplementedError

    def _top_ups_of(self, program: str, earned: Entry) -> Sequence[str]:
        raise NotImplementedError

    def _void_if_fully_refunded(self, config: ProgramConfig, program: str, order_id: str) -> bool:
        raise NotImplementedError
