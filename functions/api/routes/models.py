"""Reply shapes shared by several areas. Money is a Decimal serialised as a string, never a float."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer, StringConstraints

from shared.access.keys import Principal
from shared.ledger.models import Account, Entry

DecimalText = Annotated[Decimal, PlainSerializer(str, return_type=str)]
# A caller's own id for an operation. The ledger keeps it inside the caller's and the member's
# namespace (`context.own_reference`), which must still fit the ledger's 200-character ids.
MAX_REFERENCE = 120
Reference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REFERENCE)]
# Why support did something for a member; with what and who it stays within an entry's 300-character reason.
SupportReason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def by_support(agent: Principal, action: str, reason: str) -> str:
    """The reason an entry support made carries: what, who (the first 60 characters of its id), and why."""
    return f"{action} by support {agent.id[:60]}: {reason}"


class EntryOut(BaseModel):
    """One ledger entry on a member's account: what moved, why, and when."""

    entry_id: str = Field(
        description="The entry's id: the source and the caller's own reference (`redemption:r-1`); retrying the "
        "same request finds the same entry."
    )
    kind: str = Field(
        description="What happened: `earn`, `earn_pending`, `activate`, `void`, `spend`, `hold`, `capture`, "
        "`release`, `reversal`, `expiry`, `clawback`, `transfer`, `transfer_out` or `transfer_in`."
    )
    points: int = Field(description="The change to the member's available + pending + held points.")
    available_change: int = Field(description="The change to the member's available points alone.")
    reason: str = Field(description="Why, as the caller or the rules gave it.")
    explanation: str = Field(description="One sentence for the member: what happened, how many points, and why.")
    source: str = Field(description="Who posted it: a channel, `redemption`, `checkout`, `gift`, a partner...")
    related: str = Field(
        "",
        description="The entry this one settles or answers (a hold for its capture, a transfer's other side); "
        "empty when none.",
    )
    event_time: datetime = Field(description="When it happened (an order's time for an earn).")
    recorded_at: datetime = Field(description="When the ledger wrote it.")
    seq: int = Field(description="Its position in the member's ledger: 1, 2, 3... with no gaps.")
    details: dict[str, str] = Field(
        description="Facts the entry carries, as strings: the rules' arithmetic, a reward and quantity, an "
        "exchange's rate and fee..."
    )

    @classmethod
    def of(cls, entry: Entry) -> "EntryOut":
        change = sum(entry.delta(a) for a in (Account.AVAILABLE, Account.PENDING, Account.HELD))
        return cls(
            entry_id=entry.entry_id,
            kind=entry.kind.value,
            points=change,
            available_change=entry.delta(Account.AVAILABLE),
            reason=entry.reason,
            explanation=explain(entry),
            source=entry.source,
            related=entry.related,
            event_time=entry.event_time,
            recorded_at=entry.recorded_at,
            seq=entry.seq,
            details=entry.details,
        )


_VERBS = {
    "earn": "You earned {n} points",
    "earn_pending": "{n} points are on their way (pending)",
    "activate": "{n} pending points became spendable",
    "void": "{n} pending points were cancelled",
    "spend": "You spent {n} points",
    "hold": "{n} points were reserved at checkout",
    "capture": "Your checkout was completed",
    "release": "A checkout reservation of {n} points was released",
    "reversal": "A correction changed your points by {s} points",
    "expiry": "{n} points expired",
    "transfer_out": "You sent {n} points",
    "transfer_in": "You received {n} points",
    "transfer": "{n} points moved between your merged accounts",
    "clawback": "{n} points were taken back for a refund",
}


def explain(entry: Entry) -> str:
    """One sentence a member can read: what happened, how many points, and why."""
    available = entry.delta(Account.AVAILABLE)
    pending = entry.delta(Account.PENDING)
    held = entry.delta(Account.HELD)
    moved = max(abs(available), abs(pending), abs(held))
    total = available + pending + held
    text = _VERBS.get(entry.kind.value, "{n} points moved").format(n=moved, s=f"{total:+d}")
    # The rules' own arithmetic ("120 = 60 base x2 holiday promo") says why this many.
    rule = entry.details.get("explanation", "").strip()
    return f"{text}: {entry.reason} ({rule})." if rule else f"{text}: {entry.reason}."
