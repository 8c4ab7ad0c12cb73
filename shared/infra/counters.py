"""Sharded counters: named numbers on a few items, so a busy counter is not one hot item.

One item takes about 1,000 writes a second; a counter spread over `SHARDS` items by a hash of
what is counted carries that many times more, and reading it back is one BatchGetItem of its shards.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from shared.infra.codec import to_item

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shared.infra.keys import ItemKey

# 32 items carry about 16,000 transactional updates a second (500 each), beyond the 10,000 earns a
# second of docs/capacity.md. Changing it keeps old items readable: reads sum every shard below
# SHARDS, and a counter's shards are only ever added to, so a change moves where new counts land only.
SHARDS = 32


def shard_of(key: str, shards: int = SHARDS) -> int:
    """A stable shard for a key (not Python's hash(): that changes between processes)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % shards


def counters_update(table: str, key: ItemKey, counters: Mapping[str, int], labels: Mapping[str, str]) -> dict[str, Any]:
    """One item's ADD of every named counter, setting its labels (the item is created by its first ADD)."""
    names = {f"#c{i}": name for i, name in enumerate(counters)}
    values: dict[str, Any] = {f":c{i}": value for i, value in enumerate(counters.values())}
    sets = []
    for i, (label, value) in enumerate(labels.items()):
        names[f"#l{i}"] = label
        values[f":l{i}"] = value
        sets.append(f"#l{i} = :l{i}")
    adds = ", ".join(f"#c{i} :c{i}" for i in range(len(counters)))
    return {
        "TableName": table,
        "Key": to_item({"PK": key.pk, "SK": key.sk}),
        "UpdateExpression": f"ADD {adds}" + (f" SET {', '.join(sets)}" if sets else ""),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_item(values),
    }
