"""What ingest knows about a member before it decides an earn: one consistent batch read.

The store fills it from a single BatchGetItem of the member's items (profile, tier, balance,
tallies) and the member's flag; ingest decides on it and hands the balance to the ledger for the
first attempt, so an earn costs one read request besides the identity lookup. docs/channels.md
lists the requests per kind of event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.members.records import FLAG_OPEN

if TYPE_CHECKING:
    from shared.ledger.models import AccountState

# A referral's states: waiting for the referred member's first purchase, rewarded, or refused.
REFERRAL_AWAITING = "awaiting_purchase"
REFERRAL_PAID = "paid"
REFERRAL_NOT_ELIGIBLE = "not_eligible"


@dataclass(frozen=True)
class Tallied:
    value: int = 0
    marks: frozenset[str] = frozenset()
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Referral:
    """Who referred this member (the first referral recorded for it wins), and what became of it."""

    referrer: str
    status: str
    source: str  # the app event that recorded it: (source, event_id) tells a redelivery
    event_id: str
    recorded_at: str
    reason: str = ""  # why it is not eligible
    purchase: str = ""  # the purchase entry that paid it
    reward: str = ""  # the referrer's reward entry

    @property
    def awaiting(self) -> bool:
        return self.status == REFERRAL_AWAITING


@dataclass(frozen=True)
class MemberView:
    member: str
    merged_into: str = ""  # set once the member was folded into another
    provisional: bool = False
    tier: str | None = None
    tier_since: str = ""  # when the stored tier was reached or last moved (codec timestamp)
    account: AccountState | None = None
    tallies: dict[str, Tallied] = field(default_factory=dict)  # the tallies asked for, by name
    flag_status: str = ""  # "" (never flagged), open, cleared, released or voided
    flag_reason: str = ""
    referral: Referral | None = None  # read only when asked for (purchases, referral events)

    @property
    def flagged(self) -> bool:
        return self.flag_status == FLAG_OPEN

    def tally(self, name: str) -> Tallied:
        return self.tallies.get(name, Tallied())
