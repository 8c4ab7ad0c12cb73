"""Anomaly watch: velocity checks on new entries, flags that hold a member's new points.

Each check counts distinct ids in a window item (`W#<program>#<check>#<key>#<window>`), with a
set-add, so a stream record delivered twice counts once. Passing a program's threshold flags the
member: the flag item (`FLAG#<program>` / member) is what `is_flagged` reads, and the ingest path
makes a flagged member's earns pending until an operator clears the flag (`clear_flag`). Every
flag and every decision is a record of its own (`LOG#<member>#...`), never overwritten.

Checks (thresholds in `ProgramConfig.anomaly`, None switches one off):
- many earns from one card in an hour (the card number an adapter put in the entry's details);
- the same order id from two channels (two sources posting one order id);
- a burst of exchanges (entries with a PARTNER posting) or of gifts (TRANSFER) by one member in
  an hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shared.errors import NotFoundError, PointbridgeError
from shared.ledger.models import Account, EntryKind
from shared.ledger.store import ts

if TYPE_CHECKING:
    from datetime import datetime

    from shared.ledger.contract import Programs
    from shared.ledger.models import Entry
    from shared.ledger.store import JobStore

WINDOW_SECONDS = 3600
ORDER_WINDOW = "all"  # one order id is one order, whenever it arrives
EARNS = (EntryKind.EARN, EntryKind.EARN_PENDING)


class FlagNotFoundError(NotFoundError):
    """Raised when an operator clears a flag that is not open."""

    code = "flag_not_found"


class FlagDecidedError(PointbridgeError):
    """Raised when an operator decides a flag another decision already closed (the other way)."""

    code = "flag_already_decided"
    status = 409


FlagDecision = Literal["release", "void"]
# The flag's status once decided: the activation job reads it for earns the flag held.
DECIDED = {"release": "released", "void": "voided"}


@dataclass(frozen=True)
class Finding:
    member: str
    check: str
    reason: str


class Watch:
    def __init__(self, programs: Programs, jobs: JobStore) -> None:
        self._programs, self._jobs = programs, jobs

    def observe(self, entry: Entry) -> list[Finding]:
        """Count the entry in each window it belongs to; flag the member for each threshold passed."""
        rules = self._programs.get(entry.program).anomaly
        hour = entry.event_time.strftime("%Y-%m-%dT%H")
        expires = int(entry.event_time.timestamp()) + 2 * WINDOW_SECONDS
        findings: list[Finding] = []

        def count(check: str, key: str, window: str, member_id: str) -> int:
            return self._jobs.count_in_window(entry.program, check, key, window, member_id, expires)

        card = entry.details.get("card")
        if entry.kind in EARNS and card and rules.max_earns_per_card_per_hour is not None:
            seen = count("card", card, hour, entry.entry_id)
            if seen > rules.max_earns_per_card_per_hour:
                findings.append(
                    Finding(entry.member, "card_velocity", f"{seen} earns from card {card} in the hour {hour}")
                )
        order = entry.details.get("order_id") or entry.external_id
        if entry.kind in EARNS and rules.same_order_two_channels:
            sources = count("order", order, ORDER_WINDOW, entry.source)
            if sources > 1:
                findings.append(
                    Finding(entry.member, "order_two_channels", f"order {order} arrived from {sources} channels")
                )
        for account, check, limit in (
            (Account.PARTNER, "exchange_burst", rules.max_exchanges_per_member_per_hour),
            (Account.TRANSFER, "gift_burst", rules.max_gifts_per_member_per_hour),
        ):
            if (
                limit is not None
                and any(p.account is account for p in entry.postings)
                and entry.kind is not EntryKind.EXPIRY
            ):
                seen = count(check, entry.member, hour, entry.entry_id)
                if seen > limit:
                    findings.append(Finding(entry.member, check, f"{seen} {check.split('_')[0]}s in the hour {hour}"))
        for finding in findings:
            self.flag(entry.program, finding, entry.recorded_at, entry.entry_id)
        return findings

    def flag(self, program: str, finding: Finding, at: datetime, cause: str) -> None:
        state = {"status": "open", "reason": finding.reason, "check": finding.check, "since": ts(at)}
        log = {"at": ts(at), "id": f"{finding.check}:{cause}", "decision": "flagged", "reason": finding.reason}
        self._jobs.put_flag(program, finding.member, state, log)


def is_flagged(jobs: JobStore, program: str, member: str) -> bool:
    """Whether the member's new points must be held (pending) until an operator clears the flag."""
    flag = jobs.get_flag(program, member)
    return flag is not None and flag.get("status") == "open"


def clear_flag(jobs: JobStore, program: str, member: str, operator: str, note: str, at: datetime) -> None:
    """An operator's decision: the member's points are no longer held. Recorded with who and why."""
    if not is_flagged(jobs, program, member):
        raise FlagNotFoundError(f"no open flag for {member} in {program}", member=member)
    state = {"status": "cleared", "reason": note, "check": "operator", "since": ts(at), "operator": operator}
    log = {"at": ts(at), "id": f"clear:{operator}", "decision": "cleared", "reason": note, "operator": operator}
    jobs.put_flag(program, member, state, log)


def open_flags(jobs: JobStore, program: str) -> list[dict[str, Any]]:
    """The program's open flags (member, check, reason, since), for an operator to decide."""
    return jobs.open_flags(program)


def decide_flag(
    jobs: JobStore, program: str, member: str, decision: FlagDecision, operator: str, note: str, at: datetime
) -> bool:
    """Record an operator's decision on an open flag, with who and why; the flag is closed by it.

    Returns False when the same decision was already recorded (a retry: the caller carries on
    settling what the flag held); a flag that was never raised is `flag_not_found`, one closed by
    a different decision `flag_already_decided`.
    """
    flag = jobs.get_flag(program, member)
    if flag is None:
        raise FlagNotFoundError(f"no flag for {member} in {program}", member=member)
    status = DECIDED[decision]
    if flag.get("status") == "open":
        state = {
            "status": status,
            "reason": flag.get("reason", ""),
            "check": flag.get("check", ""),
            "since": flag.get("since", ts(at)),
            "decided_at": ts(at),
            "operator": operator,
            "note": note,
        }
        log = {"at": ts(at), "id": f"{decision}:{operator}", "decision": status, "reason": note, "operator": operator}
        if jobs.put_flag(program, member, state, log, only_if_open=True):
            return True
        flag = jobs.get_flag(program, member) or {}  # decided by someone else in between
    if flag.get("status") == status:
        return False
    raise FlagDecidedError(
        f"the flag on {member} was already closed ({flag.get('status')}); it cannot be {status} now",
        member=member,
        flag_status=str(flag.get("status")),
    )
