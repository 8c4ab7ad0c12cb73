"""DynamoDB stream records kept as DynamoDB Streams keeps them: compactly, and for 24 hours.

Measured in the emulator (objects counted after 1,000 and 3,000 earn events of a fresh sandbox):
its memory grew by 83 KB per event, 53 KB of it moto's stream records. moto keeps every stream
record for good, each as nested dicts of its keys and its old and new images (about 3 KB a
record, 17 records per first purchase), so a long run (a 100,000-row partner file) grew the
emulator to gigabytes. Two patches:

1. **Records are packed** once they are not among a shard's newest `UNPACKED_TAIL`: the record's
   dict is kept as `marshal` bytes (a quarter of the size) and `to_json()` unpacks a fresh copy
   for each read. The newest stay as moto built them, since the sandbox's pollers read each
   record right after it is written and unpacking would add about 15 us a record (a 2 KB record)
   to the emulator's one core; records are packed a thousand at a time as the stream grows
   (packing one costs about 5 us). The creation time, a datetime, is kept beside the bytes and put
   back in its place, so a reply is built from exactly what moto built, in its key order.
2. **Records older than 24 hours are trimmed** (by moto's clock, before a GetShardIterator or a
   GetRecords), as DynamoDB Streams does. The records' sequence numbers stay theirs: the shard's
   start moves past the trimmed ones (a TRIM_HORIZON iterator starts at the oldest record kept, as
   on AWS), the shard still reports its first sequence number, and reading from a trimmed
   position answers `TrimmedDataAccessException` as DynamoDB Streams does. Every iterator at or
   after the oldest record kept reads what it read before.

Not trimmed: records the sandbox's stream pollers have all read past. That is not safe for every
consumer: `pointbridge deadletters` reads a given-up batch's records back by sequence number after
the poller passed them (AWS keeps them 24 hours), and a TRIM_HORIZON reader (a test, a tool) would
miss them.

tests/integration/test_moto_streams.py runs random writes through moto as it ships and through
these patches and compares every GetRecords reply, and reads every kind of iterator before and
after a trim.
"""

from __future__ import annotations

import marshal
from datetime import timedelta
from typing import Any

RETENTION = timedelta(hours=24)
# How many of a shard's newest records stay unpacked (read at once by the pollers, cheaply).
UNPACKED_TAIL = 1000

_originals: dict[str, Any] = {}
_installed = False


def _pack(record: Any) -> None:
    stream = record.record["dynamodb"]
    created = stream["ApproximateCreationDateTime"]
    stream["ApproximateCreationDateTime"] = None
    try:
        record._packed = marshal.dumps(record.record)
    except ValueError:  # a value marshal cannot write: the record stays as moto built it
        stream["ApproximateCreationDateTime"] = created
        return
    record._created = created
    del record.record


def _unpacked(record: Any) -> dict[str, Any]:
    if "_packed" not in vars(record):
        return record.record
    unpacked: dict[str, Any] = marshal.loads(record._packed)  # noqa: S302 - bytes this process wrote
    unpacked["dynamodb"]["ApproximateCreationDateTime"] = record._created
    return unpacked


def created_at(record: Any) -> Any:
    """A record's creation time (moto's clock, a naive UTC datetime)."""
    if "_packed" in vars(record):
        return record._created
    return record.record["dynamodb"]["ApproximateCreationDateTime"]


def pack_behind_tail(shard: Any) -> None:
    """Pack the records that have fallen out of the shard's newest UNPACKED_TAIL (a thousand at a
    time: the list is walked only when that many are due)."""
    items = shard.items
    packed = min(getattr(shard, "packed_count", 0), len(items))
    end = len(items) - UNPACKED_TAIL
    if end - packed < max(UNPACKED_TAIL, 1):
        return
    for record in items[packed:end]:
        if "_packed" not in vars(record):
            _pack(record)
    shard.packed_count = end


def trim(shard: Any, now: Any) -> int:
    """Drop the shard's records created more than RETENTION before `now`; how many went."""
    items, cutoff, count = shard.items, now - RETENTION, 0
    while count < len(items) and created_at(items[count]) < cutoff:
        count += 1
    if count:
        if not hasattr(shard, "first_sequence_number"):
            shard.first_sequence_number = shard.starting_sequence_number
        del items[:count]
        shard.packed_count = max(0, getattr(shard, "packed_count", 0) - count)
        # moto numbers a record by its index from the start: the start moves with the trim.
        shard.starting_sequence_number += count
    return count


def install() -> None:
    """Patch moto in this process (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.core.exceptions import JsonRESTError
    from moto.core.utils import utcnow
    from moto.dynamodb.models.table import StreamRecord, StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    shard_add, shard_get, shard_json = StreamShard.add, StreamShard.get, StreamShard.to_json
    backend_iterator, backend_records = DynamoDBStreamsBackend.get_shard_iterator, DynamoDBStreamsBackend.get_records

    def add(self: Any, old: Any, new: Any) -> None:
        shard_add(self, old, new)
        # Within a transaction too: a cancelled one removes its own records, the newest, never packed.
        pack_behind_tail(self)

    def get(self: Any, start: int, quantity: int) -> list[dict[str, Any]]:
        first = getattr(self, "first_sequence_number", None)
        if first is not None and first <= start < self.starting_sequence_number:
            raise JsonRESTError(
                "TrimmedDataAccessException",
                "The operation attempted to read past the oldest stream record in a shard.",
            )
        return shard_get(self, start, quantity)

    def to_json(self: Any) -> dict[str, Any]:
        described = shard_json(self)
        first = getattr(self, "first_sequence_number", None)
        if first is not None:
            described["SequenceNumberRange"]["StartingSequenceNumber"] = str(first)
        return described

    def get_shard_iterator(self: Any, arn: str, *args: Any, **kwargs: Any) -> Any:
        shard = self._get_table_from_arn(arn).stream_shard
        if shard is not None:
            trim(shard, utcnow())
        return backend_iterator(self, arn, *args, **kwargs)

    def get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        iterator = self.shard_iterators.get(iterator_arn)
        if iterator is not None:
            trim(iterator.stream_shard, utcnow())
        return backend_records(self, iterator_arn, limit)

    _originals.update(
        {
            "StreamShard.add": shard_add,
            "StreamRecord.to_json": StreamRecord.to_json,
            "StreamShard.get": shard_get,
            "StreamShard.to_json": shard_json,
            "DynamoDBStreamsBackend.get_shard_iterator": backend_iterator,
            "DynamoDBStreamsBackend.get_records": backend_records,
        }
    )
    setattr(StreamShard, "add", add)  # noqa: B010 - moto's class, patched
    setattr(StreamRecord, "to_json", _unpacked)  # noqa: B010
    setattr(StreamShard, "get", get)  # noqa: B010
    setattr(StreamShard, "to_json", to_json)  # noqa: B010
    setattr(DynamoDBStreamsBackend, "get_shard_iterator", get_shard_iterator)  # noqa: B010
    setattr(DynamoDBStreamsBackend, "get_records", get_records)  # noqa: B010
    _installed = True


def uninstall() -> None:
    """moto's own stream code back (the tests compare the two); records packed meanwhile stay readable
    only through the patched `to_json`, so use it between fresh backends."""
    global _installed
    if not _installed:
        return
    from moto.dynamodb.models.table import StreamRecord, StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    owners = {
        "StreamRecord": StreamRecord,
        "StreamShard": StreamShard,
        "DynamoDBStreamsBackend": DynamoDBStreamsBackend,
    }
    for name, original in _originals.items():
        owner, attribute = name.split(".")
        setattr(owners[owner], attribute, original)
    _installed = False
