"""The one DynamoDB table: reads, conditional writes and transactions, with a count of what they cost.

Every area's store module holds a `Table` and speaks in its items; nothing outside the stores
builds requests. Reads are consistent unless a caller says otherwise (indexes cannot be).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.infra import aws
from shared.infra.codec import from_item, to_item
from shared.infra.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from mypy_boto3_dynamodb import DynamoDBClient

    from shared.infra.keys import ItemKey

BATCH_GET_KEYS = 100  # DynamoDB's limit per BatchGetItem
BATCH_WRITE_ITEMS = 25  # and per BatchWriteItem


@dataclass
class RequestStats:
    """What this table was asked: requests by operation and the capacity DynamoDB reported."""

    requests: Counter[str] = field(default_factory=Counter)
    items_read: int = 0  # items returned by Query, Scan, GetItem and BatchGetItem: what jobs are judged on
    reported_wcu: float = 0.0
    reported_rcu: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, operation: str, response: dict[str, Any]) -> None:
        consumed = response.get("ConsumedCapacity")
        entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        with self._lock:
            self.requests[operation] += 1
            self.items_read += len(response.get("Items", [])) + (1 if response.get("Item") else 0)
            for c in entries:
                self.reported_wcu += float(c.get("WriteCapacityUnits", 0) or 0)
                self.reported_rcu += float(c.get("ReadCapacityUnits", 0) or 0)

    def add_items_read(self, count: int) -> None:
        with self._lock:
            self.items_read += count

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.items_read = 0
            self.reported_wcu = self.reported_rcu = 0.0


class TransactionCanceledError(Exception):
    """A transaction was refused as a whole; `reasons` are DynamoDB's codes, one per action, in order."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons


class Table:
    def __init__(self, name: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.name = name or get_settings().table_name
        self._client = client
        self.stats = RequestStats()
        # Sets that collect the key of every item written from now on (`note_writes`).
        self._write_notes: list[set[ItemKey]] = []

    def note_writes(self) -> set[ItemKey]:
        """A set that collects the key of every item this table writes (or tries to) until
        `stop_noting` it: what a reader that keeps items across writes checks them against."""
        noted: set[ItemKey] = set()
        self._write_notes.append(noted)
        return noted

    def stop_noting(self, noted: set[ItemKey]) -> None:
        self._write_notes = [n for n in self._write_notes if n is not noted]

    def _noting(self, keys: Iterator[ItemKey]) -> None:
        # Noted before the request is sent: a write whose outcome is unknown (a timeout) counts too.
        if self._write_notes:
            written = set(keys)
            for noted in self._write_notes:
                noted |= written

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.dynamodb()
        return self._client

    # Reads

    def get(self, key: ItemKey, *, consistent: bool = True) -> dict[str, Any] | None:
        """One item by key, as plain Python values."""
        response = self.client.get_item(
            TableName=self.name,
            Key=to_item({"PK": key.pk, "SK": key.sk}),
            ConsistentRead=consistent,
            ReturnConsumedCapacity="TOTAL",
        )
        self.stats.record("GetItem", dict(response))
        item = response.get("Item")
        return from_item(item) if item else None

    def query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item a Query matches, page after page, as plain values (stop early by breaking)."""
        kwargs = {"TableName": self.name, "ReturnConsumedCapacity": "TOTAL", **kwargs}
        while True:
            page = self.client.query(**kwargs)
            self.stats.record("Query", dict(page))
            for item in page.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def query_page(self, **kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a Query and where the next one starts (None: it was the last)."""
        page = self.client.query(TableName=self.name, ReturnConsumedCapacity="TOTAL", **kwargs)
        self.stats.record("Query", dict(page))
        return [from_item(i) for i in page.get("Items", [])], page.get("LastEvaluatedKey")

    def partition(self, pk: str, sk_prefix: str | None = None, *, consistent: bool = True) -> Iterator[dict[str, Any]]:
        """A partition's items (those whose sort key starts with `sk_prefix`, if given), in sort order."""
        if sk_prefix is None:
            return self.query(
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues=to_item({":pk": pk}),
                ConsistentRead=consistent,
            )
        return self.query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
            ExpressionAttributeValues=to_item({":pk": pk, ":prefix": sk_prefix}),
            ConsistentRead=consistent,
        )

    def batch_get(self, keys: Sequence[ItemKey], *, consistent: bool = True) -> dict[ItemKey, dict[str, Any]]:
        """Items by key, 100 keys a request; keys DynamoDB leaves unprocessed are asked again."""
        found: dict[ItemKey, dict[str, Any]] = {}
        pending = [to_item({"PK": k.pk, "SK": k.sk}) for k in dict.fromkeys(keys)]
        while pending:
            chunk, pending = pending[:BATCH_GET_KEYS], pending[BATCH_GET_KEYS:]
            response = self.client.batch_get_item(
                RequestItems={self.name: {"Keys": chunk, "ConsistentRead": consistent}}, ReturnConsumedCapacity="TOTAL"
            )
            self.stats.record("BatchGetItem", dict(response))
            returned = response.get("Responses", {}).get(self.name, [])
            self.stats.add_items_read(len(returned))
            for raw in returned:
                item = from_item(raw)
                found[_key_of(item)] = item
            left: Any = response.get("UnprocessedKeys", {}).get(self.name, {})
            unprocessed = list(left.get("Keys", []))
            if unprocessed:
                time.sleep(0.05)  # throttled: ask again after a pause, as DynamoDB's contract says
            pending = unprocessed + pending
        return found

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every item, for the audit and snapshots. Costs a full read of the table."""
        kwargs: dict[str, Any] = {"TableName": self.name, "ConsistentRead": True}
        while True:
            page = self.client.scan(**kwargs)
            self.stats.record("Scan", dict(page))
            for item in page.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # Writes

    def put(
        self,
        values: dict[str, Any],
        condition: str | None = None,
        *,
        names: dict[str, str] | None = None,
        values_: dict[str, Any] | None = None,
    ) -> bool:
        """Put an item; False when its condition failed (someone else got there first)."""
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": to_item(values), "ReturnConsumedCapacity": "TOTAL"}
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values_:
            kwargs["ExpressionAttributeValues"] = to_item(values_)
        self._noting(iter([_key_of(values)]))
        try:
            response = self.client.put_item(**kwargs)
        except ClientError as error:
            self.stats.record("PutItem", {})
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        self.stats.record("PutItem", dict(response))
        return True

    def batch_put(self, items: Sequence[dict[str, Any]]) -> None:
        """Unconditional puts, 25 a request; items DynamoDB leaves unprocessed are sent again."""
        pending: list[Any] = [{"PutRequest": {"Item": to_item(values)}} for values in items]
        self._noting(_key_of(values) for values in items)
        while pending:
            chunk, pending = pending[:BATCH_WRITE_ITEMS], pending[BATCH_WRITE_ITEMS:]
            response = self.client.batch_write_item(
                RequestItems={self.name: chunk},
                ReturnConsumedCapacity="TOTAL",
            )
            self.stats.record("BatchWriteItem", dict(response))
            unprocessed = list(response.get("UnprocessedItems", {}).get(self.name, []))
            if unprocessed:
                time.sleep(0.05)  # throttled: send again after a pause, as DynamoDB's contract says
            pending = unprocessed + pending

    def put_new(self, values: dict[str, Any]) -> bool:
        """Put unless the key exists; False when it did (the caller reads what is there)."""
        return self.put(values, "attribute_not_exists(PK)")

    def update(self, key: ItemKey, expression: str, **kwargs: Any) -> dict[str, Any] | None:
        """An UpdateItem; returns the attributes asked for with ReturnValues, None when its condition failed."""
        self._noting(iter([key]))
        try:
            response = self.client.update_item(
                TableName=self.name,
                Key=to_item({"PK": key.pk, "SK": key.sk}),
                UpdateExpression=expression,
                ReturnConsumedCapacity="TOTAL",
                **kwargs,
            )
        except ClientError as error:
            self.stats.record("UpdateItem", {})
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        self.stats.record("UpdateItem", dict(response))
        return from_item(response.get("Attributes", {}))

    def delete(
        self,
        key: ItemKey,
        condition: str | None = None,
        *,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool:
        """Delete an item, if its condition (when given) holds; False when it did not. Deleting what is
        not there is not an error."""
        kwargs: dict[str, Any] = {"ConditionExpression": condition} if condition else {}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = to_item(values)
        self._noting(iter([key]))
        try:
            response = self.client.delete_item(
                TableName=self.name, Key=self.key(key), ReturnConsumedCapacity="TOTAL", **kwargs
            )
        except ClientError as error:
            self.stats.record("DeleteItem", {})
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        self.stats.record("DeleteItem", dict(response))
        return True

    def transact(self, items: Sequence[Any]) -> None:
        """One TransactWriteItems; a refusal raises `TransactionCanceledError` with DynamoDB's reasons."""
        if self._write_notes:
            self._noting(_written_by(action) for action in items if "ConditionCheck" not in action)
        try:
            response = self.client.transact_write_items(TransactItems=list(items), ReturnConsumedCapacity="TOTAL")
        except ClientError as error:
            self.stats.record("TransactWriteItems", {})
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
            raise TransactionCanceledError(reasons) from error
        self.stats.record("TransactWriteItems", dict(response))

    # Pieces of requests

    def key(self, key: ItemKey) -> dict[str, Any]:
        return to_item({"PK": key.pk, "SK": key.sk})

    def put_action(self, values: dict[str, Any], condition: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """A Put for `transact`."""
        put: dict[str, Any] = {"TableName": self.name, "Item": to_item(values), **kwargs}
        if condition:
            put["ConditionExpression"] = condition
        return {"Put": put}


def _written_by(action: dict[str, Any]) -> ItemKey:
    """The key of the item a transaction's Put, Update or Delete writes."""
    request = action.get("Put") or action.get("Update") or action["Delete"]
    typed = request["Item"] if "Item" in request else request["Key"]
    return _key_of({"PK": typed["PK"]["S"], "SK": typed["SK"]["S"]})


def _key_of(item: dict[str, Any]) -> ItemKey:
    from shared.infra.keys import ItemKey

    return ItemKey(str(item["PK"]), str(item["SK"]))
