"""The projections' items: program figures (sharded counters with a marker per counted entry), the
anomaly watch's velocity windows, and notes of the stream records the watch failed on. Keys in
`shared.infra.keys`.

Figures counters are numeric attributes named after the figure ("earned", "channel:pos",
"tier:gold"), on `F#<program>#<bucket>#<shard>` items; buckets are local dates (YYYY-MM-DD), local
months (YYYY-MM), ALL (program to date) and TIERS (written by tier moves, `shared.members.store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.infra import keys
from shared.infra.codec import to_item
from shared.infra.counters import counters_update
from shared.infra.table import TransactionCanceledError
from shared.ledger.contract import ConcurrentUpdateError

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from datetime import datetime

    from shared.infra.table import Table
    from shared.projections.watch import WindowAdd

ALL = "ALL"  # the program-to-date bucket
# Notes outlive the stream's 24 hours and the DLQ's 14 days, for a redrive that comes late.
FAILURE_NOTE_DAYS = 30


class FigureItems:
    """Implements `shared.projections.figures.FigureStore`: markers, sharded counters and their batch reads."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def _update(self, program: str, bucket: str, shard: int, counters: Mapping[str, int]) -> dict[str, Any]:
        labels = {"type": "figures", "program": program, "bucket": bucket}
        return {"Update": counters_update(self._table.name, keys.figures(program, bucket, shard), counters, labels)}

    def add_entry(
        self, program: str, entry_id: str, buckets: Sequence[str], shard: int, counters: Mapping[str, int]
    ) -> bool:
        return self.add_entries(program, [entry_id], buckets, shard, counters)

    def add_entries(
        self, program: str, entry_ids: Sequence[str], buckets: Sequence[str], shard: int, counters: Mapping[str, int]
    ) -> bool:
        markers = [keys.figures_marker(program, entry_id) for entry_id in entry_ids]
        day = buckets[0]
        try:
            self._table.transact(
                [
                    *(
                        self._table.put_action(
                            {"PK": m.pk, "SK": m.sk, "type": "figures_marker", "day": day, "shard": shard},
                            "attribute_not_exists(PK)",
                        )
                        for m in markers
                    ),
                    *(self._update(program, bucket, shard, counters) for bucket in buckets),
                    self._update(program, ALL, shard, counters),
                ]
            )
        except TransactionCanceledError as error:
            if "ConditionalCheckFailed" in error.reasons[: len(markers)]:
                return False  # counted before: a redelivered stream record
            raise ConcurrentUpdateError() from error
        return True

    def read_buckets(self, program: str, buckets: Sequence[str], shards: int) -> dict[str, dict[str, int]]:
        """Every shard of every bucket, summed per bucket; missing items are zeros."""
        found = self._table.batch_get(
            [keys.figures(program, b, s) for b in buckets for s in range(shards)], consistent=False
        )
        summed: dict[str, dict[str, int]] = {}
        for item in found.values():
            into = summed.setdefault(str(item["bucket"]), {})
            for name, value in item.items():
                if isinstance(value, Decimal):
                    into[name] = into.get(name, 0) + int(value)
        return summed


class WatchItems:
    """The anomaly watch's windows: a set of ids per (check, key, window)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def count_in_window(self, program: str, check: str, key: str, window: str, member_id: str, expires: int) -> int:
        """Add an id to a window's set and return the set's size; re-adding the same id counts once."""
        attributes = self._table.update(
            keys.velocity_window(program, check, key, window),
            "ADD ids :id SET #t = :t, expires = :exp",
            ExpressionAttributeNames={"#t": "type"},
            ExpressionAttributeValues=to_item({":id": {member_id}, ":t": "velocity", ":exp": expires}),
            ReturnValues="ALL_NEW",
        )
        assert attributes is not None  # unconditional
        return len(attributes["ids"])

    def add_within_limits(self, adds: Sequence[WindowAdd]) -> bool:
        """Add each window's ids in one transaction, only if every window ends within its limit.

        A window qualifies when it had room for the ids whichever they are, or already held them all
        (a redelivered batch). False: some window did not, and nothing was written.
        """
        actions = []
        for add in adds:
            key = keys.velocity_window(add.program, add.check, add.key, add.window)
            held = [f"contains(ids, :i{n})" for n in range(len(add.ids))]
            values: dict[str, Any] = {
                ":ids": set(add.ids),
                ":t": "velocity",
                ":exp": add.expires,
                ":room": add.room,
                ":limit": add.limit,
                **{f":i{n}": member_id for n, member_id in enumerate(add.ids)},
            }
            actions.append(
                {
                    "Update": {
                        "TableName": self._table.name,
                        "Key": self._table.key(key),
                        "UpdateExpression": "ADD ids :ids SET #t = :t, expires = :exp",
                        "ConditionExpression": "attribute_not_exists(ids) OR size(ids) <= :room"
                        f" OR (size(ids) <= :limit AND {' AND '.join(held)})",
                        "ExpressionAttributeNames": {"#t": "type"},
                        "ExpressionAttributeValues": to_item(values),
                    }
                }
            )
        try:
            self._table.transact(actions)
        except TransactionCanceledError as error:
            if "ConditionalCheckFailed" in error.reasons:
                return False
            raise
        return True


@dataclass(frozen=True)
class FailureNote:
    """The last error of a stream record the watch failed on, by the entry it carried."""

    entry_pk: str  # the entry item's PK, `E#<program>#<entry id>`
    sequence_number: str  # the stream record's (the latest that failed)
    error: str
    attempts: int
    first_failed_at: str
    last_failed_at: str


# Markers of published events outlive any redelivery of their stream record (24 hours, a late redrive).
OUTBOUND_MARKER_DAYS = 30


class OutboundMarks:
    """Which outbound events were published: a redelivered stream record skips those (TTL'd markers)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def published(self, event_id: str) -> bool:
        return self._table.get(keys.outbound_marker(event_id), consistent=False) is not None

    def published_of(self, event_ids: Collection[str]) -> set[str]:
        """Those of `event_ids` already published (one BatchGetItem per 100)."""
        if not event_ids:
            return set()
        by_key = {keys.outbound_marker(event_id): event_id for event_id in event_ids}
        return {by_key[key] for key in self._table.batch_get(list(by_key), consistent=False) if key in by_key}

    def mark(self, event_id: str, detail_type: str, at: datetime) -> None:
        self._table.put(self._marker(event_id, detail_type, at))

    def mark_all(self, published: Sequence[tuple[str, str]], at: datetime) -> None:
        """Markers for (event id, detail type) pairs, 25 a request."""
        self._table.batch_put([self._marker(event_id, detail_type, at) for event_id, detail_type in published])

    @staticmethod
    def _marker(event_id: str, detail_type: str, at: datetime) -> dict[str, Any]:
        marker = keys.outbound_marker(event_id)
        expires = int(at.timestamp()) + OUTBOUND_MARKER_DAYS * 86_400
        return {
            "PK": marker.pk,
            "SK": marker.sk,
            "type": "outbound_marker",
            "detail_type": detail_type,
            "expires": expires,
        }


class FailureNotes:
    """Written by the stream consumer before it reports a record failed; read and cleared by the redrive."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def note(self, entry_pk: str, sequence_number: str, error: str, at: datetime) -> None:
        when = at.isoformat()
        self._table.update(
            keys.watch_failure(entry_pk),
            "SET #t = :t, sequence_number = :seq, #e = :error, last_failed_at = :at, expires = :exp, "
            "first_failed_at = if_not_exists(first_failed_at, :at) ADD attempts :one",
            ExpressionAttributeNames={"#t": "type", "#e": "error"},
            ExpressionAttributeValues=to_item(
                {
                    ":t": "watch_failure",
                    ":seq": sequence_number,
                    ":error": error[:1000],
                    ":at": when,
                    ":exp": int(at.timestamp()) + FAILURE_NOTE_DAYS * 86400,
                    ":one": 1,
                }
            ),
        )

    def all(self) -> list[FailureNote]:
        return [
            FailureNote(
                entry_pk=str(item["SK"]),
                sequence_number=str(item.get("sequence_number", "")),
                error=str(item.get("error", "")),
                attempts=int(item.get("attempts", 0)),
                first_failed_at=str(item.get("first_failed_at", "")),
                last_failed_at=str(item.get("last_failed_at", "")),
            )
            for item in self._table.partition(keys.WATCH_FAILURES)
        ]

    def clear(self, entry_pk: str) -> None:
        self._table.delete(keys.watch_failure(entry_pk))
