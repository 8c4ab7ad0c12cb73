"""Anomaly watch: velocity checks on new entries, flags that hold a member's new points.

Each check counts distinct ids in a window item (one per check, key and window), with a set-add,
so a stream record delivered twice counts once. Passing a program's threshold flags the member
(`shared.members.flags`): the ingest path makes a flagged member's earns pending until an operator
decides the flag. Every flag and every decision is a record of its own, never overwritten.

Checks (thresholds in `ProgramConfig.anomaly`, None switches one off):
- many earns from one card in an hour (the card hash the adapter put on the event, which ingest
  copies to the entry's `details.card`; never the card number);
- the same order id from two channels (two sources posting one order id for two members: for one
  member ingest refuses the second before its points land, and flags it itself);
- a burst of exchanges (entries with a PARTNER posting) or of gifts (TRANSFER) by one member in
  an hour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.ledger.models import Account, EntryKind
from shared.members.flags import Finding, raise_flag

if TYPE_CHECKING:
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


class Watch:
    def __init__(self, programs: Programs, windows: WatchItems, members: MemberDirectory) -> None:
        self._programs, self._windows, self._members = programs, windows, members

    def observe(self, entry: Entry) -> list[Finding]:
        """Count the entry in each window it belongs to; flag the member for each threshold passed."""
        rules = self._programs.get(entry.program).anomaly
        hour = entry.event_time.strftime("%Y-%m-%dT%H")
        # A window item is kept (TTL on `expires`) while events can still be counted in it: an hour's
        # for two hours after its events (or after they were recorded, for a late file's rows);
        # the order window for as long as a copy of the order can still arrive.
        latest = int(max(entry.event_time, entry.recorded_at).timestamp())
        findings: list[Finding] = []

        def count(check: str, key: str, window: str, member_id: str) -> int:
            kept = ORDER_WINDOW_SECONDS if window == ORDER_WINDOW else 2 * WINDOW_SECONDS
            return self._windows.count_in_window(entry.program, check, key, window, member_id, latest + kept)

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
        raise_flag(self._members, program, finding, at, cause)
