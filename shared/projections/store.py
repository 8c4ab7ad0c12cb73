"""The projections' items: program figures (sharded counters with a marker per counted entry) and
the anomaly watch's velocity windows. Keys in `shared.infra.keys`.

Figures counters are numeric attributes named after the figure ("earned", "channel:pos",
"tier:gold"), on `F#<program>#<bucket>#<shard>` items; buckets are local dates (YYYY-MM-DD), local
months (YYYY-MM), ALL (program to date) and TIERS (written by tier moves, `shared.members.store`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.infra import keys
from shared.infra.codec import to_item
from shared.infra.counters import counters_update
from shared.infra.table import TransactionCanceledError
from shared.ledger.contract import ConcurrentUpdateError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shared.infra.table import Table

ALL = "ALL"  # the program-to-date bucket


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
        marker = keys.figures_marker(program, entry_id)
        values = {"PK": marker.pk, "SK": marker.sk, "type": "figures_marker", "day": buckets[0], "shard": shard}
        try:
            self._table.transact(
                [
                    self._table.put_action(values, "attribute_not_exists(PK)"),
                    *(self._update(program, bucket, shard, counters) for bucket in buckets),
                    self._update(program, ALL, shard, counters),
                ]
            )
        except TransactionCanceledError as error:
            if error.reasons and error.reasons[0] == "ConditionalCheckFailed":
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
