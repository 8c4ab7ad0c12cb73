"""Referrals: recorded when they arrive, paid by the platform when the referred member first buys."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from shared.earning.core import MAX_DECISIONS, REFERRAL_SOURCE, Event, IngestCore, Outcome, entry_key, event_hash
from shared.errors import (
    ContentionError,
    IdempotencyConflictError,
    InvalidInputError,
)
from shared.events.model import (
    BehaviourAction,
    BehaviourEvent,
    Channel,
    Identity,
    IdentityKind,
    PurchaseEvent,
)
from shared.ledger.commands import Cause, CauseKind
from shared.ledger.models import EntryKind
from shared.members.view import (
    REFERRAL_AWAITING,
    REFERRAL_NOT_ELIGIBLE,
    REFERRAL_PAID,
    Referral,
)

if TYPE_CHECKING:
    from shared.ledger.models import Entry
    from shared.members.view import MemberView
    from shared.program.config import ProgramConfig


class Referrals(IngestCore):
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
            seq = referred.account.seq if referred.account is not None else 0
            first_purchase: Entry | None = None
            if seq > 0:
                # New as of the referral's own time: nothing of the member's dated at or before it. A referral
                # that arrives after the first purchase it was made before still counts, and pays now.
                history = self._entries.entries(event.program, referred.member)
                if min(e.event_time for e in history) <= event.occurred_at:
                    reason = f"{referred.member} is not new to {event.program}: it has points already"
                    record = replace(record, status=REFERRAL_NOT_ELIGIBLE, reason=reason)
                else:
                    first_purchase = _first_purchase(history)
            if self._items.record_referral(event.program, referred.member, record, balance_seq=seq):
                if first_purchase is not None:
                    self._pay_late_referral(config, referred.member, first_purchase)
                return _referral_outcome(event, referred.member, referrer, record, reward_id)
            # Someone else's referral, or the member's first earn, got there first: look again.
        raise ContentionError(f"the referral of {event.subject} kept changing; retry", member=event.subject)

    def _follow_view(self, program: str, member: str) -> MemberView:
        seen = {member}
        while True:
            view = self._members.view(program, member, referral=True)
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
        self._items.referral_paid(config.program, buyer.member, entry_key(reward), purchase.entry_id, outcome.points)

    def _pay_late_referral(self, config: ProgramConfig, referred: str, purchase: Entry) -> None:
        """The referred member's first purchase posted before its referral arrived: pay it now, as the
        purchase would have (once: the reward's entry id is the referred member's)."""
        settled = self._entries.get_entry(config.program, f"settle:{purchase.entry_id}")
        if settled is not None and settled.kind is EntryKind.VOID:
            reason = f"the first purchase ({purchase.entry_id}) was voided"
            self._items.referral_ended(config.program, referred, REFERRAL_NOT_ELIGIBLE, reason)
            return
        self._pay_referral(config, self._follow_view(config.program, referred), purchase)

    def _void_referral_of(self, config: ProgramConfig, holder: str, order: Entry) -> None:
        """A first purchase refunded in full within its window never paid out: nor does its referral."""
        referred = self._members.view(config.program, holder, full=False, referral=True).referral
        if referred is None or referred.status != REFERRAL_PAID or referred.purchase != order.entry_id:
            return
        reward = self._entries.get_entry(config.program, referred.reward)
        if reward is not None and reward.kind is EntryKind.EARN_PENDING:
            cause = Cause(kind=CauseKind.ENTRY, ref=f"settle:{order.entry_id}")
            self._void(config, self._follow(reward.member), reward, f"{holder}'s first purchase was returned", cause)
        reason = f"the first purchase ({order.entry_id}) was refunded in full within its return window"
        self._items.referral_ended(config.program, holder, REFERRAL_NOT_ELIGIBLE, reason)


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


def _first_purchase(history: list[Entry]) -> Entry | None:
    """The member's earliest purchase earn by event time (purchases carry the money they earned on)."""
    purchases = [
        e for e in history if e.kind in (EntryKind.EARN, EntryKind.EARN_PENDING) and "basis_amount" in e.details
    ]
    return min(purchases, key=lambda e: (e.event_time, e.entry_id), default=None)


def _may_be_referred(event: Event, view: MemberView) -> bool:
    """A purchase by a member with nothing posted yet, and no referral seen: one may be recorded meanwhile."""
    new = view.account is None or view.account.seq == 0
    return isinstance(event, PurchaseEvent) and new and view.referral is None
