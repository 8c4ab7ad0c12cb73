"""The audit: recompute everything the ledger promises from the entries alone.

Checks, for every program: each entry's hash and zero sum; each member chain (seq 1..n, each
prev_hash the hash before it, the balance item holding the head); each balance bucket equal to
the sum of its postings; the balance's last activity (from which expiry extended by activity
counts) equal to the latest activity its entries show; each open lot's remaining equal to the
sum of its lot moves, and the lots summing to the available balance; open holds summing to the
held balance; and all accounts of the program (member buckets and program-side accounts)
summing to zero.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.entries import GENESIS_HASH, Account, AccountState, Entry, Hold, Lot, activity_time, latest

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass
class AuditReport:
    entries: int = 0
    accounts: int = 0
    problems: list[str] = field(default_factory=list)
    # program -> account ("available", "issuance", "partner:acme", ...) -> balance
    totals: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit(
    entries: Iterable[Entry], accounts: Iterable[AccountState], lots: Iterable[Lot], holds: Iterable[Hold]
) -> AuditReport:
    report = AuditReport()
    chains, lot_moves, totals = _read_entries(entries, report)
    open_lots = _check_lots(lots, lot_moves, report)
    held: dict[tuple[str, str], int] = defaultdict(int)
    for hold in holds:
        held[(hold.program, hold.member)] += hold.amount

    for state in accounts:
        report.accounts += 1
        key = (state.program, state.member)
        report.problems.extend(_check_chain(state, sorted(chains.pop(key, []), key=lambda e: e.seq)))
        for bucket, expected, what in (
            (state.available, open_lots.get(key, 0), "open lots"),
            (state.held, held.get(key, 0), "open holds"),
        ):
            if bucket != expected:
                report.problems.append(
                    f"{state.program}/{state.member}: {what} total {expected}, balance says {bucket}"
                )
    for program, member in chains:
        report.problems.append(f"{program}/{member}: entries without a balance item")

    for program, by_account in totals.items():
        report.totals[program] = dict(by_account)
        if sum(by_account.values()) != 0:
            report.problems.append(f"{program}: accounts sum to {sum(by_account.values())}, not zero")
    return report


def _read_entries(
    entries: Iterable[Entry], report: AuditReport
) -> tuple[dict[tuple[str, str], list[Entry]], dict[tuple[str, str, str], int], dict[str, dict[str, int]]]:
    chains: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    lot_moves: dict[tuple[str, str, str], int] = defaultdict(int)
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for entry in entries:
        report.entries += 1
        if entry.hash != entry.content_hash():
            report.problems.append(f"{entry.program}/{entry.entry_id}: hash does not match its content")
        if sum(p.amount for p in entry.postings) != 0:
            report.problems.append(f"{entry.program}/{entry.entry_id}: postings do not sum to zero")
        chains[(entry.program, entry.member)].append(entry)
        for move in entry.lots:
            lot_moves[(entry.program, entry.member, move.lot_id)] += move.amount
        for p in entry.postings:
            totals[entry.program][f"{p.account}:{p.owner}" if p.owner else str(p.account)] += p.amount
    return chains, lot_moves, totals


def _check_lots(
    lots: Iterable[Lot], lot_moves: dict[tuple[str, str, str], int], report: AuditReport
) -> dict[tuple[str, str], int]:
    """Each open lot must equal the sum of its moves; each closed one must have moved to zero."""
    open_lots: dict[tuple[str, str], int] = defaultdict(int)
    moves = dict(lot_moves)
    for lot in lots:
        open_lots[(lot.program, lot.member)] += lot.remaining
        moved = moves.pop((lot.program, lot.member, lot.lot_id), 0)
        if moved != lot.remaining:
            report.problems.append(
                f"{lot.program}/{lot.member}: lot {lot.lot_id} has {lot.remaining}, its moves sum to {moved}"
            )
    for (program, member, lot_id), moved in moves.items():
        if moved != 0:
            report.problems.append(f"{program}/{member}: closed lot {lot_id} still has {moved} by its moves")
    return open_lots


def _check_chain(state: AccountState, chain: list[Entry]) -> list[str]:
    where = f"{state.program}/{state.member}"
    problems: list[str] = []
    previous = GENESIS_HASH
    for expected_seq, entry in enumerate(chain, start=1):
        if entry.seq != expected_seq:
            problems.append(f"{where}: entry {entry.entry_id} has seq {entry.seq}, expected {expected_seq}")
            break
        if entry.prev_hash != previous:
            problems.append(f"{where}: chain broken at seq {entry.seq} ({entry.entry_id})")
            break
        previous = entry.hash
    if state.seq != len(chain) or state.head != previous:
        problems.append(f"{where}: balance item at seq {state.seq}, chain has {len(chain)} entries")
    for account in (Account.AVAILABLE, Account.PENDING, Account.HELD):
        summed = sum(e.delta(account) for e in chain)
        recorded = getattr(state, account.value)
        if summed != recorded:
            problems.append(f"{where}: {account} is {recorded}, its entries sum to {summed}")
    active = None
    for entry in chain:
        active = latest(active, activity_time(entry))
    if state.active_at != active:
        problems.append(f"{where}: last activity recorded {state.active_at}, its entries show {active}")
    return problems
