"""Reply shapes shared by several areas. Money is a Decimal serialised as a string, never a float."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, PlainSerializer

from shared.ledger.models import Account, Entry

DecimalText = Annotated[Decimal, PlainSerializer(str, return_type=str)]


class EntryOut(BaseModel):
    entry_id: str
    kind: str
    points: int  # the change to the member's available + pending + held points
    available_change: int
    reason: str
    explanation: str
    source: str
    related: str = ""
    event_time: datetime
    recorded_at: datetime
    seq: int
    details: dict[str, str]

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
