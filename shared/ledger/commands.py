"""Commands: what callers ask the ledger to do. Validated on construction; fingerprinted for idempotency."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints

from shared.ledger.models import (
    Account,
    fingerprint,
)
from shared.model import Model
from shared.program.config import ProgramId

MAX_POINTS_PER_OPERATION = 100_000_000

Points = Annotated[int, Field(strict=True, gt=0, le=MAX_POINTS_PER_OPERATION)]
Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class CauseKind(StrEnum):
    """Why points are taken back from a member: every take-back names one (docs/ledger.md, "Take-backs")."""

    REFUND = "refund"  # refund events of the order: `ref` is their entry ids, space-separated
    FLAG = "flag"  # an operator's decision on a member's flag: `ref` is "<flagged member>:<decision>"
    ENTRY = "entry"  # another ledger entry settled it (a referral reward goes with its purchase's void)
    OPERATOR = "operator"  # an operator's correction: `ref` names the operator or the ticket
    LAPSE = "lapse"  # time ran out (expiry): `ref` is the lot


class Cause(Model):
    """What a take-back answers to: it must exist, belong to the same member and program, and
    justify the amount; the audit checks each (`shared.ledger.audit`, class `takeback_without_cause`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: CauseKind
    ref: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]

    def details(self) -> dict[str, str]:
        return {"cause_kind": self.kind.value, "cause": self.ref}


class _Command(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    program: ProgramId
    member: Key

    def fingerprint(self) -> str:
        return fingerprint({"op": type(self).__name__, **self.model_dump(mode="json")})


class Earn(_Command):
    """Credit a member: available at once (a lot), or pending until activated."""

    points: Points
    source: Key
    external_id: Key
    reason: Reason
    event_time: AwareDatetime
    expires_at: AwareDatetime | None = None  # default: the program's expiry policy at event_time
    pending: bool = False
    counter: Account = Account.ISSUANCE
    counter_owner: str = ""
    config_version: int | None = None  # default: the live config's version
    details: dict[str, str] = Field(default_factory=dict)
    # Pending only: when the activation job may activate it, and whether a flag holds it beyond that.
    pending_until: AwareDatetime | None = None
    held: bool = False
    # Another member whose flag must be decided first (a referral reward waits for a flagged buyer's).
    held_for: str = ""
    # The entry this one belongs to (a tier top-up names the earn it re-rates).
    related: str = ""

    def fingerprint(self) -> str:
        # Leave the newer optional fields out when unset, so entries written before them still match.
        dumped = self.model_dump(mode="json")
        for name in ("pending_until", "held", "held_for", "related"):
            if not dumped[name]:
                del dumped[name]
        return fingerprint({"op": type(self).__name__, **dumped})


class Spend(_Command):
    """Debit a member's unexpired available points, earliest expiry first."""

    points: Points
    source: Key
    external_id: Key
    reason: Reason
    counter: Account = Account.REDEMPTION
    counter_owner: str = ""
    details: dict[str, str] = Field(default_factory=dict)


class Authorise(_Command):
    """Reserve points for a checkout; captured or released later, or released when it lapses."""

    points: Points
    source: Key
    external_id: Key
    reason: Reason
    lapses_at: AwareDatetime
    # Reserved for a partner brand (an outbound transfer): an open flag holds it as exchanging.
    to_partner: bool = False

    def fingerprint(self) -> str:
        # Leave the newer field out when unset, so holds authorised before it existed still match.
        dumped = self.model_dump(mode="json")
        if not dumped["to_partner"]:
            del dumped["to_partner"]
        return fingerprint({"op": type(self).__name__, **dumped})


class Capture(_Command):
    """Post a hold in full or in part; the part not captured goes back to the member."""

    hold_id: Key
    points: Points | None = None  # default: the whole hold
    reason: Reason = "checkout captured"
    # Where captured points go: redemption for a checkout, a partner for an outbound transfer.
    counter: Account = Account.REDEMPTION
    counter_owner: str = ""


class Release(_Command):
    hold_id: Key
    reason: Reason = "checkout hold released"


class Activate(_Command):
    """Make a pending earn spendable (its return window closed)."""

    entry_id: Key
    reason: Reason = "return window closed"


class Void(_Command):
    """Cancel a pending earn (the order was returned within the window, or a flag was confirmed).

    Never without its cause: a void with nothing behind it is how held points were lost (issue 12).
    """

    entry_id: Key
    cause: Cause
    reason: Reason = "pending points voided"
    details: dict[str, str] = Field(default_factory=dict)  # what justifies it (e.g. refunded vs basis)


class Reverse(_Command):
    """Undo an earn, an activation, a spend or a capture with a linked entry, for a named cause."""

    entry_id: Key
    reason: Reason
    cause: Cause


class ClawBack(_Command):
    """Take back points of one earn (a refund): never more than the member has available.

    What cannot be taken is the shortfall, recorded on the entry (details `shortfall`). Zero
    points is allowed so that a refund too small to cost a point still leaves a record.
    """

    entry_id: Key  # the EARN or ACTIVATE entry whose points are taken back; its lot goes first
    points: Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS_PER_OPERATION)]
    source: Key
    external_id: Key
    reason: Reason
    details: dict[str, str] = Field(default_factory=dict)


class Transfer(_Command):
    """Move all of a member's points to another member (a merge): available lot by lot, pending earn by earn."""

    to_member: Key
    external_id: Key
    reason: Reason


class Send(_Command):
    """Send points from one member account to another in one transaction (gifts, exchanges).

    The sender's entry debits `points` to the counter account (TRANSFER within a program, PARTNER
    with owner = the other program across programs); the receiver's entry credits `credited` from
    the counter account of its own program. Each program's accounts still sum to zero on their own.
    """

    to_program: ProgramId
    to_member: Key
    points: Points
    credited: Points
    source: Key
    external_id: Key
    reason: Reason
    counter: Account = Account.TRANSFER
    # Gifts keep the original expiry dates (the sender's lots move); an exchange starts new lots
    # under the receiving program's expiry policy.
    keep_expiry: bool = False
    # Received points stay held until then (gifts), released by the hold-lapse job with their lots.
    hold_until: AwareDatetime | None = None
    details: dict[str, str] = Field(default_factory=dict)


class ExpireLot(_Command):
    """Move the unspent remainder of an expired lot to breakage."""

    lot_id: Key
    # Set when the program has ended: the lot is due from then, whatever its own expiry.
    program_ended_at: AwareDatetime | None = None

    def fingerprint(self) -> str:
        # Leave the optional field out when unset, so entries written before it existed still match.
        return fingerprint({"op": type(self).__name__, **self.model_dump(mode="json", exclude_none=True)})
