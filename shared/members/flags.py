"""Flags on members: raised by the anomaly watch, decided by an operator (release or void), read by ingest.

A flagged member's new earns are held (pending) until an operator decides the flag; every flag and
every decision is a record of its own with who and why, never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from shared.errors import MemberOnHoldError, NotFoundError, PointbridgeError
from shared.infra import keys
from shared.infra.codec import ts
from shared.ledger.contract import Check
from shared.members.records import FLAG_OPEN, Flag, FlagDecision

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from shared.ledger.contract import Programs
    from shared.members.store import MemberDirectory


class FlagNotFoundError(NotFoundError):
    """Raised when an operator clears a flag that is not open."""

    code = "flag_not_found"


class FlagDecidedError(PointbridgeError):
    """Raised when an operator decides a flag another decision already closed (the other way)."""

    code = "flag_already_decided"
    status = 409


Decision = Literal["release", "void"]
# The flag's status once decided: the activation job reads it for earns the flag held.
DECIDED = {"release": "released", "void": "voided"}


class FlagHolds:
    """Implements `shared.ledger.contract.DebitHolds`: an open flag holds what the program says.

    The hold is a check on the flag item in the debit's own transaction ("status is not open"), so
    it costs no read, and a flag raised an instant before the commit still refuses the debit.
    """

    def __init__(self, programs: Programs) -> None:
        self._programs = programs

    def checks(self, program: str, member: str, purpose: str) -> Sequence[Check]:
        if purpose not in self._programs.get(program).anomaly.flag_holds:
            return ()
        detail = f"{member} is flagged for review in {program}: {purpose} is held until an operator decides"
        return (Check(keys.flag(program, member), "status", FLAG_OPEN, MemberOnHoldError.code, detail),)


def raise_flag(members: MemberDirectory, program: str, finding: Finding, at: datetime, cause: str) -> None:
    """Flag a member for a finding (a check that fired, and why), recorded with its cause."""
    flag = Flag(member=finding.member, status=FLAG_OPEN, reason=finding.reason, check=finding.check, since=ts(at))
    decision = FlagDecision(at=ts(at), id=f"{finding.check}:{cause}", decision="flagged", reason=finding.reason)
    members.put_flag(program, flag, decision)


@dataclass(frozen=True)
class Finding:
    member: str
    check: str
    reason: str


def is_flagged(members: MemberDirectory, program: str, member: str) -> bool:
    """Whether the member's new points must be held (pending) until an operator clears the flag."""
    flag = members.get_flag(program, member)
    return flag is not None and flag.open


def clear_flag(members: MemberDirectory, program: str, member: str, operator: str, note: str, at: datetime) -> None:
    """An operator's decision: the member's points are no longer held. Recorded with who and why."""
    if not is_flagged(members, program, member):
        raise FlagNotFoundError(f"no open flag for {member} in {program}", member=member)
    flag = Flag(member=member, status="cleared", reason=note, check="operator", since=ts(at), operator=operator)
    record = FlagDecision(at=ts(at), id=f"clear:{operator}", decision="cleared", reason=note, operator=operator)
    members.put_flag(program, flag, record)


def open_flags(members: MemberDirectory, program: str) -> list[Flag]:
    """The program's open flags (member, check, reason, since), for an operator to decide."""
    return members.open_flags(program)


def decide_flag(
    members: MemberDirectory, program: str, member: str, decision: Decision, operator: str, note: str, at: datetime
) -> bool:
    """Record an operator's decision on an open flag, with who and why; the flag is closed by it.

    Returns False when the same decision was already recorded (a retry: the caller carries on
    settling what the flag held); a flag that was never raised is `flag_not_found`, one closed by
    a different decision `flag_already_decided`.
    """
    flag = members.get_flag(program, member)
    if flag is None:
        raise FlagNotFoundError(f"no flag for {member} in {program}", member=member)
    status = DECIDED[decision]
    if flag.open:
        decided = replace(
            flag, status=status, since=flag.since or ts(at), decided_at=ts(at), operator=operator, note=note
        )
        record = FlagDecision(at=ts(at), id=f"{decision}:{operator}", decision=status, reason=note, operator=operator)
        if members.put_flag(program, decided, record, only_if_open=True):
            return True
        flag = members.get_flag(program, member) or flag  # decided by someone else in between
    if flag.status == status:
        return False
    raise FlagDecidedError(
        f"the flag on {member} was already closed ({flag.status}); it cannot be {status} now",
        member=member,
        flag_status=flag.status,
    )
