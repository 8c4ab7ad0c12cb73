"""Reply shapes shared by several areas. Money is a Decimal serialised as a string, never a float."""

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer, StringConstraints

from shared.access.keys import Principal
from shared.ledger.models import Entry
from shared.ledger.statement import Language, line
from shared.model import Model

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


class EntryOut(Model):
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
    explanation: str = Field(
        description="One sentence for the member: what happened and the facts behind it (the order and its "
        "amount, the shop or partner, the rule's arithmetic, the reward, the other member)."
    )
    title: str = Field(description="What happened, as a statement line's title (`Points for your online order`).")
    detail: str = Field(description="The facts behind it (`order 1001 at shop.example, 470.00 CNY; rule: 470 = ...`).")
    balance_after: int | None = Field(
        None, description="Spendable points after this entry (absent for entries written before balances were kept)."
    )
    pending_after: int | None = Field(None, description="Points on their way after this entry.")
    held_after: int | None = Field(None, description="Points reserved (checkout, transfers, held gifts) after it.")
    rule_version: int = Field(description="The program config version whose rules applied.")
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
    def of(cls, entry: Entry, language: Language = "en", related: Mapping[str, Entry] | None = None) -> "EntryOut":
        told = line(entry, language, related)
        return cls(
            entry_id=entry.entry_id,
            kind=entry.kind.value,
            points=told.points,
            available_change=told.spendable,
            reason=entry.reason,
            explanation=told.sentence,
            title=told.title,
            detail=told.detail,
            balance_after=told.balance,
            pending_after=told.pending,
            held_after=told.held,
            rule_version=told.rule_version,
            source=entry.source,
            related=entry.related,
            event_time=entry.event_time,
            recorded_at=entry.recorded_at,
            seq=entry.seq,
            details=entry.details,
        )
