"""A member's stored records besides the ledger's: profile, tier and its history, flag and its decisions."""

from __future__ import annotations

from dataclasses import dataclass

FLAG_OPEN = "open"
FLAG_VOIDED = "voided"  # an operator confirmed fraud: the held points are voided


@dataclass(frozen=True)
class Profile:
    member: str
    provisional: bool = False
    merged_into: str = ""  # set once the member was folded into another
    identities: frozenset[str] = frozenset()
    name: str = ""  # as the brand's member list gave it (`pointbridge import members`)
    language: str = ""  # the member's language for statements and messages; "" = the request's or English


@dataclass(frozen=True)
class TierRecord:
    """The tier a member holds in a program, and when it is next reviewed."""

    tier: str
    since: str  # codec timestamps, as stored and compared
    period_ends: str
    due_at: str
    rev: int = 0


@dataclass(frozen=True)
class TierChange:
    at: str
    from_tier: str
    to_tier: str
    reason: str
    points: int
    spend: str
    config_version: int


@dataclass(frozen=True)
class Flag:
    """A member's flag in a program: open (new points held) until an operator decides it."""

    member: str
    status: str  # open, cleared, released or voided
    reason: str = ""
    check: str = ""
    since: str = ""
    decided_at: str = ""
    operator: str = ""
    note: str = ""

    @property
    def open(self) -> bool:
        return self.status == FLAG_OPEN


@dataclass(frozen=True)
class FlagDecision:
    """One record of a flag's history: raised by a check, or decided by an operator."""

    at: str
    id: str
    decision: str  # flagged, cleared, released, voided
    reason: str
    operator: str = ""
