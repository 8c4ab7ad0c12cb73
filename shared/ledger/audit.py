"""The audit: recompute everything the ledger promises from the entries alone.

Checks, for every program: each entry's hash and zero sum; each member chain (seq 1..n, each
prev_hash the hash before it, the balance item holding the head); each balance bucket equal to
the sum of its postings; the balance's last activity (from which expiry extended by activity
counts) equal to the latest activity its entries show; each open lot's remaining equal to the
sum of its lot moves, and the lots summing to the available balance; open holds summing to the
held balance; when given, the open pending earns (who holds each, and how many points) matching
what the entries say and summing to the pending balance; a closed (merged) account holding nothing
pending or held; and all accounts of the program (member buckets and program-side accounts)
summing to zero. Given the chain key, each keyed entry hash (HMAC, `shared.ledger.evidence`); given
the digests, each account the last one lists still holding its digested head, and no unkeyed entry
beyond what the first one anchored. Then the losses the arithmetic cannot see (`shared.ledger.losses`): each take-back's
cause, each source event's one effect, refunds left unapplied, earns decided by the wrong rules.
"""

from __future__ import annotations

import hmac
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.ledger.evidence import Anchors, changed_since
from shared.ledger.losses import Evidence, Loss, find_losses
from shared.ledger.models import (
    GENESIS_HASH,
    UNKEYED_HASH,
    Account,
    AccountState,
    Entry,
    EntryKind,
    Hold,
    Lot,
    PendingEarn,
    activity_time,
    latest,
)

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass
class AuditReport:
    entries: int = 0
    accounts: int = 0
    problems: list[str] = field(default_factory=list)
    # Losses the arithmetic cannot see, each with its class (`shared.ledger.losses`); also in `problems`.
    losses: list[Loss] = field(default_factory=list)
    # program -> account ("available", "issuance", "partner:acme", ...) -> balance
    totals: dict[str, dict[str, int]] = field(default_factory=dict)
    # Entries whose keyed hash was not checked: the audit ran without the chain key.
    unverified: int = 0
    # When the digest the table was held against was written (None: no digest given).
    digest_at: str | None = None
    # Accounts ("program/member") the digest shows changed after it, or whose hashes fail.
    accounts_changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit(
    entries: Iterable[Entry],
    accounts: Iterable[AccountState],
    lots: Iterable[Lot],
    holds: Iterable[Hold],
    pending: Iterable[PendingEarn] | None = None,
    evidence: Evidence | None = None,
    chain_key: bytes | None = None,
    anchors: Anchors | None = None,
) -> AuditReport:
    """Pass `pending` (DynamoStore.audit_records gives all five) to check the open pending earns too,
    and `evidence` (`shared.jobs.audit` gathers it) to check every take-back's cause against it.
    Without `chain_key` the keyed entry hashes go unchecked (counted in `unverified`): only
    `pointbridge audit`, which always has the key, can tell a forged chain."""
    report = AuditReport()
    all_entries, all_holds = list(entries), list(holds)
    report.losses = find_losses(all_entries, evidence, all_holds)
    report.problems.extend(str(loss) for loss in report.losses)
    chains, lot_moves, totals = _read_entries(all_entries, report, chain_key)
    changed: dict[tuple[str, str], str] = {}
    if anchors is not None:
        report.digest_at = anchors.last.written_at.isoformat()
        changed = changed_since(anchors.last, {k: sorted(v, key=lambda e: e.seq) for k, v in chains.items()})
        report.problems.extend(f"{program}/{member}: {how}" for (program, member), how in sorted(changed.items()))
    pending_held = _check_pending(all_entries, pending, report) if pending is not None else None
    open_lots = _check_lots(lots, lot_moves, report)
    held: dict[tuple[str, str], int] = defaultdict(int)
    for hold in all_holds:
        held[(hold.program, hold.member)] += hold.amount

    for state in accounts:
        report.accounts += 1
        key = (state.program, state.member)
        chain = sorted(chains.pop(key, []), key=lambda e: e.seq)
        report.problems.extend(_check_chain(state, chain))
        unkeyed_through = anchors.unkeyed_allowed_through(*key) if anchors is not None else None
        forged = _check_hash_versions(state, chain, unkeyed_through)
        if forged:
            report.accounts_changed.append(f"{state.program}/{state.member}")
        report.problems.extend(forged)
        checks = [
            (state.available, open_lots.get(key, 0), "open lots"),
            (state.held, held.get(key, 0), "open holds"),
        ]
        if pending_held is not None:
            checks.append((state.pending, pending_held.get(key, 0), "open pending earns"))
        for bucket, expected, what in checks:
            if bucket != expected:
                report.problems.append(
                    f"{state.program}/{state.member}: {what} total {expected}, balance says {bucket}"
                )
        if state.merged_into and (state.pending or state.held or state.debt):
            # A merge moves pending earns, holds and debt with the closure; only expired lots may stay.
            report.problems.append(
                f"{state.program}/{state.member}: closed into {state.merged_into} but holds "
                f"{state.pending} pending and {state.held} held" + (f", and owes {state.debt}" if state.debt else "")
            )
    for program, member in chains:
        report.problems.append(f"{program}/{member}: entries without a balance item")

    report.accounts_changed = sorted(set(report.accounts_changed) | {f"{p}/{m}" for p, m in changed})
    for program, by_account in totals.items():
        report.totals[program] = dict(by_account)
        if sum(by_account.values()) != 0:
            report.problems.append(f"{program}: accounts sum to {sum(by_account.values())}, not zero")
    return report


def _read_entries(
    entries: Iterable[Entry], report: AuditReport, chain_key: bytes | None
) -> tuple[dict[tuple[str, str], list[Entry]], dict[tuple[str, str, str], int], dict[str, dict[str, int]]]:
    chains: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    lot_moves: dict[tuple[str, str, str], int] = defaultdict(int)
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for entry in entries:
        report.entries += 1
        if entry.hash_version != UNKEYED_HASH and chain_key is None:
            report.unverified += 1
        elif not _hash_holds(entry, chain_key):
            report.accounts_changed.append(f"{entry.program}/{entry.member}")
            report.problems.append(
                f"{entry.program}/{entry.member}: hash of entry {entry.entry_id} (seq {entry.seq}) does not match "
                "its content" + ("" if entry.hash_version == UNKEYED_HASH else " under the chain key")
            )
        if sum(p.amount for p in entry.postings) != 0:
            report.problems.append(f"{entry.program}/{entry.entry_id}: postings do not sum to zero")
        chains[(entry.program, entry.member)].append(entry)
        for move in entry.lots:
            lot_moves[(entry.program, entry.member, move.lot_id)] += move.amount
        for p in entry.postings:
            totals[entry.program][f"{p.account}:{p.owner}" if p.owner else str(p.account)] += p.amount
    return chains, lot_moves, totals


def _hash_holds(entry: Entry, chain_key: bytes | None) -> bool:
    try:
        return hmac.compare_digest(entry.hash, entry.content_hash(chain_key))
    except ValueError:  # a hash version nobody writes
        return False


def _check_hash_versions(state: AccountState, chain: list[Entry], unkeyed_through: int | None) -> list[str]:
    """Unkeyed hashes are what anyone could recompute: none may follow a keyed one in a chain, nor, once
    a digest exists, stand beyond what the first digest anchored."""
    where = f"{state.program}/{state.member}"
    keyed_seen = False
    for entry in chain:
        if entry.hash_version != UNKEYED_HASH:
            keyed_seen = True
            continue
        if keyed_seen:
            return [f"{where}: unkeyed entry {entry.entry_id} at seq {entry.seq} after keyed ones"]
        if unkeyed_through is not None and entry.seq > unkeyed_through:
            return [
                f"{where}: unkeyed entry {entry.entry_id} at seq {entry.seq}, beyond the first digest's "
                f"seq {unkeyed_through} (written without the chain key after keying began)"
            ]
    return []


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


def _check_pending(
    entries: list[Entry], pending: Iterable[PendingEarn], report: AuditReport
) -> dict[tuple[str, str], int]:
    """Each open pending earn as its entries tell it (earned, moved by merges, not settled) against the items."""
    earned: dict[tuple[str, str], tuple[str, int]] = {}  # (program, earn id) -> (first holder, points)
    moves: dict[tuple[str, str, str], str] = {}  # (program, earn id, from member) -> to member
    settled: set[tuple[str, str]] = set()
    for entry in entries:
        if entry.kind is EntryKind.EARN_PENDING:
            earned[(entry.program, entry.entry_id)] = (entry.member, entry.delta(Account.PENDING))
        elif entry.kind in (EntryKind.ACTIVATE, EntryKind.VOID):
            settled.add((entry.program, entry.related))
        elif entry.kind is EntryKind.TRANSFER and entry.delta(Account.PENDING) > 0:
            for moved in json.loads(entry.details.get("pending_earns", "[]")):
                moves[(entry.program, moved, entry.details.get("from_member", ""))] = entry.member
    expected: dict[tuple[str, str], tuple[str, int]] = {}
    for (program, earn_id), (holder, points) in earned.items():
        if (program, earn_id) in settled:
            continue
        seen = {holder}
        while (program, earn_id, holder) in moves and moves[(program, earn_id, holder)] not in seen:
            holder = moves[(program, earn_id, holder)]
            seen.add(holder)
        expected[(program, earn_id)] = (holder, points)
    held: dict[tuple[str, str], int] = defaultdict(int)
    for item in pending:
        where = f"{item.program}/{item.member}"
        story = expected.pop((item.program, item.entry_id), None)
        if story is None:
            report.problems.append(f"{where}: pending earn {item.entry_id} is open, its entries say it is not")
        elif story != (item.member, item.points):
            report.problems.append(
                f"{where}: pending earn {item.entry_id} of {item.points}, its entries say {story[1]} held by {story[0]}"
            )
        held[(item.program, item.member)] += item.points
    for (program, earn_id), (holder, _) in expected.items():
        report.problems.append(f"{program}/{holder}: pending earn {earn_id} is open by its entries but has no item")
    return held


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
    for account in (Account.AVAILABLE, Account.PENDING, Account.HELD, Account.DEBT):
        summed = sum(e.delta(account) for e in chain)
        recorded = -state.debt if account is Account.DEBT else getattr(state, account.value)
        if summed != recorded:
            problems.append(f"{where}: {account} is {recorded}, its entries sum to {summed}")
    active = None
    for entry in chain:
        active = latest(active, activity_time(entry))
    if state.active_at != active:
        problems.append(f"{where}: last activity recorded {state.active_at}, its entries show {active}")
    return problems
