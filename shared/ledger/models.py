"""The ledger's records: entries and their postings, lots, holds and member account states.

All immutable. Points are int; a posting's amount is signed (+ credits the account).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, ConfigDict, Field

from shared.model import Model

GENESIS_HASH = "0" * 64
# How an entry's hash was made (`Entry.hash_version`). UNKEYED: sha256 of its content, as entries were
# sealed before the chain key: anyone with write access could recompute it, so the audit accepts it
# only where a digest had already anchored it. KEYED: HMAC-SHA256 of its content under the stack's
# chain key (`ChainHashKey` in template.yaml), which nobody without the key can recompute.
UNKEYED_HASH = 1
KEYED_HASH = 2


class Account(StrEnum):
    """The accounts of one program (one point currency).

    A member account has three buckets, each a ledger account of its own. Program-side accounts
    are the counterparties; they are not materialised per posting (they would be hot items) but
    summed from entries by the audit and rolled up by projections.
    """

    AVAILABLE = "available"  # member: spendable once unexpired
    PENDING = "pending"  # member: earned, waiting for the return window to close
    HELD = "held"  # member: reserved by a checkout hold
    # member: points the member owes (a refund after spending, under the `recover` policy); its
    # balance is never positive, and the next points earned repay it first
    DEBT = "debt"
    ISSUANCE = "issuance"  # program: where earned points come from (goes negative)
    REDEMPTION = "redemption"  # program: where spent points go
    BREAKAGE = "breakage"  # program: where expired points go
    PARTNER = "partner"  # program: settlement with one partner (owner = partner id)
    TRANSFER = "transfer"  # program: clearing between two members (gifts, merges)
    GOODWILL = "goodwill"  # program: support's adjustments, credited to or debited from members with a reason


MEMBER_ACCOUNTS = frozenset({Account.AVAILABLE, Account.PENDING, Account.HELD, Account.DEBT})


class EntryKind(StrEnum):
    EARN = "earn"
    EARN_PENDING = "earn_pending"
    ACTIVATE = "activate"
    VOID = "void"
    SPEND = "spend"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    REVERSAL = "reversal"
    EXPIRY = "expiry"
    CLAWBACK = "clawback"  # part of an earn taken back for a refund
    TRANSFER = "transfer"  # points moved between two members (a merge); one entry on each side
    TRANSFER_OUT = "transfer_out"  # the sending side of a gift or an exchange
    TRANSFER_IN = "transfer_in"  # the receiving side, linked to the sending entry by `related`


class Posting(Model):
    model_config = ConfigDict(frozen=True)

    account: Account
    amount: int
    owner: str = ""  # the partner for PARTNER postings; member postings belong to the entry's member


class LotMove(Model):
    """How an entry changed one lot: + created/restored, - consumed."""

    model_config = ConfigDict(frozen=True)

    lot_id: str
    expires_at: AwareDatetime
    amount: int


class Entry(Model):
    """One immutable posting to one member's account chain, summing to zero across accounts."""

    model_config = ConfigDict(frozen=True)

    program: str
    entry_id: str  # "<source>:<external id>", or derived from the entry it settles/reverses
    member: str
    kind: EntryKind
    source: str
    external_id: str
    reason: str
    config_version: int
    postings: tuple[Posting, ...]
    lots: tuple[LotMove, ...] = ()
    related: str = ""  # the entry this one settles, activates, voids or reverses
    event_time: AwareDatetime
    recorded_at: AwareDatetime
    expires_at: AwareDatetime | None = None  # for pending earns: the lot's expiry once activated
    details: dict[str, str] = Field(default_factory=dict)
    fingerprint: str  # hash of the request that produced it, to tell a replay from a conflict
    seq: Annotated[int, Field(ge=1)]
    prev_hash: str
    hash: str = ""
    # Entries stored before the chain key have no marker: they read as UNKEYED.
    hash_version: int = UNKEYED_HASH

    def delta(self, account: Account) -> int:
        return sum(p.amount for p in self.postings if p.account is account)

    def content_hash(self, chain_key: bytes | None = None) -> str:
        """The hash this entry's content gives under its own `hash_version` (a keyed one needs the key)."""
        if self.hash_version == UNKEYED_HASH:
            # The marker stays out of an unkeyed body, so the hashes written before it still match.
            body = self.model_dump(mode="json", exclude={"hash", "hash_version"})
            return hashlib.sha256(_canonical(body)).hexdigest()
        if self.hash_version != KEYED_HASH:
            raise ValueError(f"entry {self.entry_id}: unknown hash version {self.hash_version}")
        if not chain_key:
            raise ValueError("a keyed entry hash needs the chain key")
        body = self.model_dump(mode="json", exclude={"hash"})
        return hmac.new(chain_key, _canonical(body), hashlib.sha256).hexdigest()

    def sealed(self, chain_key: bytes) -> Entry:
        """The entry with its keyed hash (the only kind the ledger writes)."""
        keyed = self.model_copy(update={"hash_version": KEYED_HASH})
        return keyed.model_copy(update={"hash": keyed.content_hash(chain_key)})


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class Lot(Model):
    """Points credited together, spent earliest-expiry-first, expired by their unspent remainder."""

    model_config = ConfigDict(frozen=True)

    program: str
    member: str
    lot_id: str
    expires_at: AwareDatetime
    remaining: Annotated[int, Field(ge=0)]
    origin: str  # the entry that credited it
    # When the expiry job must look at it, if before its own date: set on lots created after their
    # program ended (a hold released late), which are due at once. Only the index uses it.
    due_at: AwareDatetime | None = None

    def expires(self, kept_until: datetime | None = None) -> datetime:
        """The effective expiry: the lot's own date, or later while the member's activity keeps it."""
        return self.expires_at if kept_until is None else max(self.expires_at, kept_until)

    def expired(self, at: datetime, kept_until: datetime | None = None) -> bool:
        return self.expires(kept_until) <= at


class Hold(Model):
    """Points reserved at checkout: captured (in full or part) or released, once."""

    model_config = ConfigDict(frozen=True)

    program: str
    member: str
    hold_id: str  # the entry id of the HOLD entry
    amount: int
    lots: tuple[LotMove, ...]  # what the hold took from which lot, to give back on release
    lapses_at: AwareDatetime


class PendingEarn(Model):
    """An open pending earn, kept with the member whose pending bucket holds its points.

    Written with the EARN_PENDING entry, moved with the points when a merge transfers them, and
    deleted by the activation or void that settles it, always in the same transaction as the
    entry; so the open pending earns of a member sum to its pending balance.
    """

    model_config = ConfigDict(frozen=True)

    program: str
    member: str  # the holder: the member the points are pending for now (a merge moves them)
    entry_id: str  # the EARN_PENDING entry
    points: Annotated[int, Field(gt=0)]
    expires_at: AwareDatetime  # the lot's expiry once activated
    # When the activation job may activate it (the return window's end); None: only on request.
    until: AwareDatetime | None = None
    # The flagged member whose flag must be decided before these points may activate ("": not held).
    held_for: str = ""


class AccountState(Model):
    """A member's balance in one program, with the head of its entry chain."""

    model_config = ConfigDict(frozen=True)

    program: str
    member: str
    available: Annotated[int, Field(ge=0)] = 0
    pending: Annotated[int, Field(ge=0)] = 0
    held: Annotated[int, Field(ge=0)] = 0
    # Points owed (the DEBT account's balance, negated): repaid from the next points earned.
    debt: Annotated[int, Field(ge=0)] = 0
    # Set by a merge's transfer: the account is closed and its points went to this member.
    merged_into: str = ""
    seq: Annotated[int, Field(ge=0)] = 0
    head: str = GENESIS_HASH
    updated_at: AwareDatetime | None = None
    # The member's latest activity (see activity_time): expiry extended by activity counts from it.
    active_at: AwareDatetime | None = None

    def after(self, entry: Entry) -> AccountState:
        active = activity_time(entry)
        return self.model_copy(
            update={
                "available": self.available + entry.delta(Account.AVAILABLE),
                "pending": self.pending + entry.delta(Account.PENDING),
                "held": self.held + entry.delta(Account.HELD),
                "debt": self.debt - entry.delta(Account.DEBT),
                "seq": entry.seq,
                "head": entry.hash,
                "updated_at": entry.recorded_at,
                "active_at": latest(self.active_at, active),
            }
        )


# What counts as the member being active, for expiry extended by activity: earning (including a
# purchase still pending and a partner's earn), redeeming (a spend, a captured checkout) and
# exchanging points with a partner program, in either direction. Gifts do not count, sent or
# received: receiving is not the member's doing, and two members passing one point back and forth
# would otherwise keep each other's points alive forever. The ledger's own moves (activation,
# release, reversal, expiry, claw-back) do not count either, nor an earn held because the member
# is flagged (ingest marks it with the detail "held"): suspected fraud keeps no points alive.
ACTIVITY_KINDS = frozenset(
    {EntryKind.EARN, EntryKind.EARN_PENDING, EntryKind.SPEND, EntryKind.CAPTURE}
    | {EntryKind.TRANSFER_OUT, EntryKind.TRANSFER_IN}
)
# A merge's incoming entry carries the merged account's last activity: both were the same person.
CARRIED_ACTIVITY = "active_at"
HELD_FOR_REVIEW = "held"


def activity_time(entry: Entry) -> datetime | None:
    """When `entry` shows its member active, or None. Derived from the entry alone, so auditable."""
    if entry.kind is EntryKind.TRANSFER:
        carried = entry.details.get(CARRIED_ACTIVITY)
        return datetime.fromisoformat(carried) if carried else None
    if entry.kind not in ACTIVITY_KINDS or any(p.account is Account.TRANSFER for p in entry.postings):
        return None
    if entry.details.get(HELD_FOR_REVIEW):
        return None
    # An earn counts when it happened (a partner file may report it days later), never in the future;
    # whole seconds, the precision the balance item stores.
    return min(entry.event_time, entry.recorded_at).replace(microsecond=0)


def latest(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return max(first, second)


def fingerprint(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
