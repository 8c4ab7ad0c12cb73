"""Support's desk: what an agent does for one member, each with a reason and who did it.

- An **adjustment** credits points from the program's goodwill account (an earn, so the points
  are a lot with the program's expiry) or debits them back to it (a spend, refused when it would
  overdraw: `insufficient_points`). The entry keeps the reason, the agent and the action.
- A **reversal** undoes a redemption (a spend or a captured checkout), a credit (an earn, its
  activation, a partner's points) or a gift (the points go back from the recipient to the sender,
  with their expiry dates). It names its cause (the operator, i.e. the agent), is done once
  (`already_reversed`), and is refused for entries that are settled another way (`not_reversible`).
- A **tier override** sets the member's tier for one qualification period, with a tier change
  record naming the agent and the reason; reviews apply the program's rules after it.

Every one is a record in the table, written with its reason in the same write as its effect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from dateutil.relativedelta import relativedelta

from shared.errors import (
    ContentionError,
    IdempotencyConflictError,
    InvalidInputError,
    LedgerError,
    NotReversibleError,
    UnknownEntryError,
)
from shared.infra.codec import ts
from shared.ledger.commands import Cause, CauseKind, Earn, Reverse, Send, Spend
from shared.ledger.models import Account, EntryKind
from shared.members.records import TierChange, TierRecord

if TYPE_CHECKING:
    from datetime import datetime

    from shared.ledger.contract import Programs
    from shared.ledger.ledger import Ledger
    from shared.ledger.models import Entry
    from shared.ledger.store import DynamoLedgerStore
    from shared.members.store import MemberDirectory
    from shared.members.tiers import Tiers

ADJUSTMENT_SOURCE = "support"  # entry ids `support:adjust:<reference>`
GIFT_REVERSAL_SOURCE = "gift-reversal"  # entry ids `gift-reversal:<the gift's sending entry>`
GIFT_SOURCE = "gift"
# Details every support entry carries: what support did, and which agent (an admin key's principal id).
ACTION, AGENT = "support_action", "support_agent"
MAX_ADJUSTMENT = 1_000_000


class AlreadyReversedError(LedgerError):
    """Raised when the entry was reversed before: a reversal is done once."""

    code = "already_reversed"
    status = 409


class UnknownTierError(InvalidInputError):
    """Raised when a tier override names a tier the program does not have."""

    code = "unknown_tier"
    status = 422


@dataclass(frozen=True)
class Agent:
    """Who acts, and why: kept on every record support writes."""

    id: str
    reason: str

    def details(self, action: str) -> dict[str, str]:
        return {ACTION: action, AGENT: self.id}


def adjust(
    ledger: Ledger, program: str, member: str, points: int, agent: Agent, now: datetime, reference: str = ""
) -> Entry:
    """Credit (points > 0) or debit (points < 0) a member against the program's goodwill account.

    `reference` makes a retry land on the same entry; without one, each call is a new adjustment.
    """
    if points == 0 or abs(points) > MAX_ADJUSTMENT:
        raise InvalidInputError(f"an adjustment is between 1 and {MAX_ADJUSTMENT:,} points, up or down")
    ledger.account(program, member)  # unknown_program, unknown_member
    external_id = f"adjust:{reference or uuid.uuid4().hex}"
    details = agent.details("adjustment")
    if points > 0:
        credit = Earn(
            program=program,
            member=member,
            points=points,
            source=ADJUSTMENT_SOURCE,
            external_id=external_id,
            reason=agent.reason,
            event_time=now,
            counter=Account.GOODWILL,
            details=details,
        )
        try:
            return ledger.earn(credit, at=now)
        except IdempotencyConflictError:
            # A credit's time is part of what it posted: a retry under the reference (later, or racing
            # the first) is the same credit when it is at the first one's time; anything else still conflicts.
            named = ledger.entries_named(program, [f"{ADJUSTMENT_SOURCE}:{external_id}"])
            first = next(iter(named.values()), None)
            if not reference or first is None or first.event_time == now:
                raise
            return ledger.earn(credit.model_copy(update={"event_time": first.event_time}), at=now)
    return ledger.spend(
        Spend(
            program=program,
            member=member,
            points=-points,
            source=ADJUSTMENT_SOURCE,
            external_id=external_id,
            reason=agent.reason,
            counter=Account.GOODWILL,
            details=details,
        ),
        at=now,
    )


# What support may reverse, and why the rest is settled another way.
_REVERSED_BY_LEDGER = frozenset({EntryKind.EARN, EntryKind.ACTIVATE, EntryKind.SPEND, EntryKind.CAPTURE})
_SETTLED_OTHERWISE = {
    EntryKind.EARN_PENDING: "pending points are cancelled by a void (or a flag decision), not reversed",
    EntryKind.VOID: "a void cannot be undone",
    EntryKind.HOLD: "a checkout hold is released or captured, not reversed",
    EntryKind.RELEASE: "a released hold cannot be undone",
    EntryKind.REVERSAL: "a reversal is not reversed again: adjust the points instead",
    EntryKind.EXPIRY: "expired points are not reversed: adjust the points instead, with a reason",
    EntryKind.CLAWBACK: "a refund's claw-back follows the order: adjust the points instead, with a reason",
    EntryKind.TRANSFER: "a merge of two accounts cannot be undone",
}


def reversal_id(entry: Entry) -> str:
    """The id the reversal of this entry has (or would have): one per entry, so it happens once."""
    if entry.source == GIFT_SOURCE and entry.kind in (EntryKind.TRANSFER_OUT, EntryKind.TRANSFER_IN):
        sending = entry.entry_id if entry.kind is EntryKind.TRANSFER_OUT else entry.related
        return f"{GIFT_REVERSAL_SOURCE}:{sending}"
    return f"reversal:{entry.entry_id}"


def reverse(
    ledger: Ledger, store: DynamoLedgerStore, program: str, member: str, entry_id: str, agent: Agent, now: datetime
) -> Entry:
    """Reverse one of the member's entries for support; returns the reversing entry (the member's side)."""
    ledger.account(program, member)
    original = store.get_entry(program, entry_id)
    if original is None or original.member != member:
        raise UnknownEntryError(f"member {member} has no entry {entry_id} in {program}")
    if original.kind in _SETTLED_OTHERWISE:
        raise NotReversibleError(_SETTLED_OTHERWISE[original.kind])
    is_gift = original.source == GIFT_SOURCE and original.kind in (EntryKind.TRANSFER_OUT, EntryKind.TRANSFER_IN)
    if original.kind not in _REVERSED_BY_LEDGER and not is_gift:
        raise NotReversibleError(f"a {original.kind} from {original.source} is not reversible (exchanges are final)")
    if original.kind is EntryKind.SPEND and original.source == GIFT_REVERSAL_SOURCE:
        raise NotReversibleError("a reversal is not reversed again: adjust the points instead")
    done = reversal_id(original)
    if store.get_entry(program, done) is not None:
        raise AlreadyReversedError(f"{entry_id} was reversed before")
    if is_gift:
        return _reverse_gift(ledger, store, original, agent, now)
    return ledger.reverse(
        Reverse(
            program=program,
            member=member,
            entry_id=entry_id,
            reason=agent.reason,
            cause=Cause(kind=CauseKind.OPERATOR, ref=agent.id),
        ),
        at=now,
    )


def _reverse_gift(ledger: Ledger, store: DynamoLedgerStore, gift: Entry, agent: Agent, now: datetime) -> Entry:
    """Send a gift's points back from its recipient to its sender, with the dates they had."""
    sending = gift if gift.kind is EntryKind.TRANSFER_OUT else store.get_entry(gift.program, gift.related)
    if sending is None:
        raise UnknownEntryError(f"the gift {gift.entry_id} answers has no sending entry")
    recipient = sending.details.get("to", "").partition("/")[2]
    points = -sending.delta(Account.AVAILABLE)  # a gift credits what it debits (its lots move)
    if not recipient or points <= 0:
        raise NotReversibleError("this gift moved no points that could be sent back")
    cause = Cause(kind=CauseKind.OPERATOR, ref=agent.id).details()
    entry = ledger.send(
        Send(
            program=gift.program,
            member=recipient,
            to_program=gift.program,
            to_member=sending.member,
            points=points,
            credited=points,
            source=GIFT_REVERSAL_SOURCE,
            external_id=sending.entry_id,
            reason=agent.reason,
            counter=Account.TRANSFER,
            keep_expiry=True,
            details={**agent.details("reversal"), **cause, "reverses": sending.entry_id},
        ),
        at=now,
    )
    if gift.member == entry.member:
        return entry
    back = store.get_entry(gift.program, f"{entry.entry_id}/in")
    return back or entry


def override_tier(
    tiers: Tiers,
    members: MemberDirectory,
    programs: Programs,
    program: str,
    member: str,
    tier: str,
    agent: Agent,
    now: datetime,
) -> TierChange:
    """Set the member's tier for one qualification period from now, with the change on record."""
    config = programs.get(program)
    names = [t.name for t in config.tiers]
    if tier not in names:
        raise UnknownTierError(f"{program} has no tier {tier!r}; its tiers are {', '.join(names)}")
    window = config.tier_qualification.window_months
    for _ in range(3):
        state = tiers.current(program, member)
        activity = tiers.activity(config, member, now)
        period_ends = now + relativedelta(months=window)
        record = TierRecord(
            tier=tier,
            since=ts(now),
            period_ends=ts(period_ends),
            due_at=ts(period_ends + timedelta(days=config.tier_qualification.grace_days)),
            rev=state.rev,
        )
        change = TierChange(
            at=ts(now),
            from_tier=config.held_tier(state.tier).name,
            to_tier=tier,
            reason=f"{OVERRIDE_PREFIX}{agent.id[:60]}: {agent.reason}",
            points=activity.points,
            spend=str(activity.spend),
            config_version=config.version,
        )
        if members.move_tier(program, member, record, change, state.tier if state.rev else None):
            return change
    raise ContentionError(f"the tier of {member} kept changing; retry", member=member)


OVERRIDE_PREFIX = "override by support "
