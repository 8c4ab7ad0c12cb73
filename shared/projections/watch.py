"""Anomaly watch: velocity checks on new entries, flags that hold a member's new points.

Each check counts distinct ids in a window item (one per check, key and window), with a set-add,
so a stream record delivered twice counts once. A stream batch whose entries cannot pass any limit
is added at once (`observe_quiet`), with the same result as entry by entry. Passing a program's
threshold flags the member (`shared.members.flags`): the ingest path makes a flagged member's earns
pending until an operator decides the flag. Every flag and every decision is a record of its own,
never overwritten.

Checks (thresholds in `ProgramConfig.anomaly`, None switches one off):
- many earns from one card in an hour (the card hash the adapter put on the event, which ingest
  copies to the entry's `details.card`; never the card number);
- the same order id from two channels (two sources posting one order id for two members: for one
  member ingest refuses the second before its points land, and flags it itself);
- a burst of exchanges (entries with a PARTNER posting) or of gifts (TRANSFER) by one member in
  an hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.ledger.models import Account, EntryKind
from shared.members.flags import Finding, raise_flag

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from shared.ledger.contract import Programs
    from shared.ledger.models import Entry
    from shared.members.store import MemberDirectory
    from shared.projections.store import WatchItems

WINDOW_SECONDS = 3600
ORDER_WINDOW = "all"  # one order id is one order, whenever it arrives
# ...within as long as an order can still arrive: no channel accepts an event older than 60 days
# (integrations.channels caps max_age) and a message waits at most 14 days in the ingest queue.
ORDER_WINDOW_SECONDS = 90 * 24 * 3600
EARNS = (EntryKind.EARN, EntryKind.EARN_PENDING)
# DynamoDB's limit of actions per TransactWriteItems: one window is one action.
MAX_WINDOWS_AT_ONCE = 100


@dataclass(frozen=True)
class Count:
    """One id to add to one window, and the size above which the window flags the member."""

    program: str
    check: str
    key: str
    window: str
    id: str
    expires: int
    limit: int
    member: str

    @property
    def window_key(self) -> tuple[str, str, str, str]:
        return (self.program, self.check, self.key, self.window)

    def finding(self, seen: int) -> Finding:
        if self.check == "card":
            return Finding(self.member, "card_velocity", f"{seen} earns from card {self.key} in the hour {self.window}")
        if self.check == "order":
            return Finding(self.member, "order_two_channels", f"order {self.key} arrived from {seen} channels")
        return Finding(self.member, self.check, f"{seen} {self.check.split('_')[0]}s in the hour {self.window}")


@dataclass(frozen=True)
class WindowAdd:
    """A batch's ids for one window, added at once only if the window stays within its limit."""

    program: str
    check: str
    key: str
    window: str
    ids: tuple[str, ...]  # distinct, in the batch's order
    expires: int  # the last entry's, as counting entry by entry leaves it
    limit: int

    @property
    def window_key(self) -> tuple[str, str, str, str]:
        return (self.program, self.check, self.key, self.window)

    @property
    def crowded(self) -> bool:
        """The batch alone takes the window past its limit: some entry flags, whatever was there."""
        return len(self.ids) > self.limit

    @property
    def room(self) -> int:
        """The most ids the window may hold before the batch's are added, whichever they are."""
        return self.limit - len(self.ids)


class Watch:
    def __init__(self, programs: Programs, windows: WatchItems, members: MemberDirectory) -> None:
        self._programs, self._windows, self._members = programs, windows, members

    def counts(self, entry: Entry) -> list[Count]:
        """The windows an entry is counted in (in the order `observe` counts them) and their limits."""
        rules = self._programs.get(entry.program).anomaly
        hour = entry.event_time.strftime("%Y-%m-%dT%H")
        # A window item is kept (TTL on `expires`) while events can still be counted in it: an hour's
        # for two hours after its events (or after they were recorded, for a late file's rows);
        # the order window for as long as a copy of the order can still arrive.
        latest = int(max(entry.event_time, entry.recorded_at).timestamp())
        hourly = latest + 2 * WINDOW_SECONDS
        counts: list[Count] = []
        card = entry.details.get("card")
        if entry.kind in EARNS and card and rules.max_earns_per_card_per_hour is not None:
            limit = rules.max_earns_per_card_per_hour
            counts.append(Count(entry.program, "card", card, hour, entry.entry_id, hourly, limit, entry.member))
        order = entry.details.get("order_id") or entry.external_id
        if entry.kind in EARNS and rules.same_order_two_channels:
            expires = latest + ORDER_WINDOW_SECONDS
            counts.append(Count(entry.program, "order", order, ORDER_WINDOW, entry.source, expires, 1, entry.member))
        for account, check, burst in (
            (Account.PARTNER, "exchange_burst", rules.max_exchanges_per_member_per_hour),
            (Account.TRANSFER, "gift_burst", rules.max_gifts_per_member_per_hour),
        ):
            if (
                burst is not None
                and any(p.account is account for p in entry.postings)
                and entry.kind is not EntryKind.EXPIRY
            ):
                member = entry.member
                counts.append(Count(entry.program, check, member, hour, entry.entry_id, hourly, burst, member))
        return counts

    def observe(self, entry: Entry) -> list[Finding]:
        """Count the entry in each window it belongs to; flag the member for each threshold passed."""
        findings: list[Finding] = []
        for count in self.counts(entry):
            seen = self._windows.count_in_window(
                count.program, count.check, count.key, count.window, count.id, count.expires
            )
            if seen > count.limit:
                findings.append(count.finding(seen))
        for finding in findings:
            self.flag(entry.program, finding, entry.recorded_at, entry.entry_id)
        return findings

    def observe_quiet(self, entries: Sequence[Entry]) -> set[tuple[str, str]]:
        """Count a batch's entries with one write per window, when none of them can flag; the (program,
        entry id) of those counted.

        Counted entry by entry, an entry flags when its window's size after its own add passes the
        limit, and every such size is at most the window's size once the whole batch is in. So each
        window takes the batch's ids in one action of one transaction, on condition that it ends
        within its limit (it had room for them all, or already held them all: a redelivery); then
        no entry of the batch flags, as counting them one by one would have found. When a window
        would pass (the batch alone takes it past its limit, or the transaction is refused), nothing
        more is counted here and the rest is left to `observe`, entry by entry and in order, as before.
        """
        planned: list[tuple[Entry, list[Count]]] = []
        for entry in entries:
            try:
                planned.append((entry, self.counts(entry)))
            except Exception:  # noqa: BLE001 - `observe` meets the error again (before any add) and reports it
                continue
        if any(add.crowded for add in _adds(c for _, counts in planned for c in counts)):
            return set()
        counted: set[tuple[str, str]] = set()
        chunk: list[tuple[Entry, list[Count]]] = []
        windows: set[tuple[str, str, str, str]] = set()
        for entry, counts in planned:
            if len(windows | {c.window_key for c in counts}) > MAX_WINDOWS_AT_ONCE:
                if not self._add_quietly(chunk):
                    return counted  # the later entries are counted after these, one by one
                counted.update((e.program, e.entry_id) for e, _ in chunk)
                chunk, windows = [], set()
            chunk.append((entry, counts))
            windows.update(c.window_key for c in counts)
        if self._add_quietly(chunk):
            counted.update((e.program, e.entry_id) for e, _ in chunk)
        return counted

    def _add_quietly(self, chunk: list[tuple[Entry, list[Count]]]) -> bool:
        adds = _adds(c for _, counts in chunk for c in counts)
        return not adds or self._windows.add_within_limits(adds)

    def flag(self, program: str, finding: Finding, at: datetime, cause: str) -> None:
        raise_flag(self._members, program, finding, at, cause)


def _adds(counts: Iterable[Count]) -> list[WindowAdd]:
    """The counts grouped by window, in order: each window's distinct ids, its last expiry, its lowest limit."""
    adds: dict[tuple[str, str, str, str], WindowAdd] = {}
    for c in counts:
        before = adds.get(c.window_key)
        ids = before.ids if before is not None else ()
        limit = min(before.limit, c.limit) if before is not None else c.limit
        adds[c.window_key] = WindowAdd(
            c.program, c.check, c.key, c.window, ids if c.id in ids else (*ids, c.id), c.expires, limit
        )
    return list(adds.values())
