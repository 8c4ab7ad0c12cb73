"""Gifts: a member sends points to another member of the same program.

The sender's lots move with the expiry dates they had for the sender (their own date, or later
while the sender's activity kept them alive), so a gift never extends or shortens a point's life;
through the program's TRANSFER account, in one transaction for both members.
A per-sender daily limit is a Guard in that same transaction. With `hold_days`, the recipient's
points arrive held and are released (lots and expiry dates intact) by the hold-lapse job.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from shared.errors import InvalidInputError, LimitReachedError
from shared.infra import keys
from shared.ledger.commands import Send
from shared.ledger.contract import Guard, GuardRefusedError
from shared.ledger.models import Account

if TYPE_CHECKING:
    from datetime import datetime

    from shared.ledger.ledger import Ledger
    from shared.ledger.models import Entry
    from shared.rewards.catalogue import GiftPolicy

SOURCE = "gift"
MAX_REASON = 300  # the ledger's limit for an entry's reason


def send_gift(
    ledger: Ledger,
    policy: GiftPolicy,
    program: str,
    sender: str,
    recipient: str,
    points: int,
    reference: str,
    now: datetime,
    message: str = "",
) -> Entry:
    """Send a gift. `reference` is the sender's own id for it, already unique to the sender (the API
    scopes callers' references to the caller and the member)."""
    if not policy.enabled:
        raise InvalidInputError(f"gifts are switched off in {program}")
    if points < policy.minimum:
        raise InvalidInputError(f"the smallest gift is {policy.minimum} points")
    if sender == recipient:
        raise InvalidInputError("a member cannot gift points to itself")
    ledger.account(program, sender)
    guard = Guard(
        key=keys.gifts_sent(program, sender, now.date().isoformat()),
        amount=points,
        limit=policy.daily_limit,
        detail=f"gifts are limited to {policy.daily_limit} points a day",
    )
    cmd = Send(
        program=program,
        member=sender,
        to_program=program,
        to_member=recipient,
        points=points,
        credited=points,
        source=SOURCE,
        external_id=reference,
        reason=(f"gift from {sender} to {recipient}" + (f": {message}" if message else ""))[:MAX_REASON],
        counter=Account.TRANSFER,
        keep_expiry=True,
        hold_until=now + timedelta(days=policy.hold_days) if policy.hold_days else None,
    )
    try:
        return ledger.send(cmd, at=now, guards=[guard])
    except GuardRefusedError as refused:
        raise LimitReachedError(refused.guard.detail) from refused
