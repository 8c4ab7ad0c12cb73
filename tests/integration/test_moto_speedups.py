"""The emulator's speedups (moto_speedups) answer exactly as moto's own code does.

Each case runs the same random requests against two identical tables (or queues), one through
moto as it ships (`without_speedups()`) and one through the speedups, and compares replies,
errors, items, stream records as GetRecords serializes them, and SQS replies and counts.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.utils import unix_time
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType

from pointbridge.sandbox import moto_speedups
from tests.support.moto_diff import keyed_tables, run_as

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

TABLES = ("stock", "fast")
KEYS = [("a", "1"), ("a", "2"), ("b", "1"), ("c", "9")]


@pytest.fixture
def client() -> Iterator[DynamoDBClient]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        keyed_tables(dynamodb, TABLES)
        yield dynamodb


def _state(client: DynamoDBClient, table: str) -> tuple[list[Any], list[Any]]:
    """The table's items, and its stream records as moto holds them (event, keys, new image)."""
    items = sorted(client.scan(TableName=table)["Items"], key=lambda i: (i["PK"]["S"], i["SK"]["S"]))
    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[table].stream_shard
    assert shard is not None
    records = [r.to_json() for r in shard.items]
    return items, [(r["eventName"], r["dynamodb"].get("Keys"), r["dynamodb"].get("NewImage")) for r in records]


def _action(kind: str, key: tuple[str, str], value: int, guard: str, table: str) -> Any:
    ident = {"PK": {"S": key[0]}, "SK": {"S": key[1]}}
    condition: dict[str, Any] = {}
    if guard == "absent":
        condition = {"ConditionExpression": "attribute_not_exists(PK)"}
    elif guard == "present":
        condition = {"ConditionExpression": "attribute_exists(PK)"}
    elif guard == "value":
        condition = {
            "ConditionExpression": "v = :expected",
            "ExpressionAttributeValues": {":expected": {"N": str(value - 1)}},
        }
    if kind == "Put":
        return {"Put": {"TableName": table, "Item": {**ident, "v": {"N": str(value)}}, **condition}}
    if kind == "Update":
        values = {**condition.pop("ExpressionAttributeValues", {}), ":add": {"N": "1"}}
        return {
            "Update": {
                "TableName": table,
                "Key": ident,
                "UpdateExpression": "ADD v :add",
                "ExpressionAttributeValues": values,
                **condition,
            }
        }
    if kind == "Delete":
        return {"Delete": {"TableName": table, "Key": ident, **condition}}
    return {"ConditionCheck": {"TableName": table, "Key": ident, **(condition or {"ConditionExpression": "1 = 1"})}}


actions = st.tuples(
    st.sampled_from(["Put", "Update", "Delete", "ConditionCheck"]),
    st.sampled_from(KEYS),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["none", "absent", "present", "value"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(transactions=st.lists(st.lists(actions, min_size=1, max_size=4), min_size=1, max_size=6))
def test_transactions_answer_and_roll_back_as_moto_does(client: DynamoDBClient, transactions: list[Any]) -> None:
    # Given two empty tables (cleared between examples)
    for table in TABLES:
        for item in client.scan(TableName=table)["Items"]:
            client.delete_item(TableName=table, Key={"PK": item["PK"], "SK": item["SK"]})
    before = {table: len(_state(client, table)[1]) for table in TABLES}
    # When the same transactions run through moto's code and through the speedups
    for transaction in transactions:
        replies = {
            table: run_as(
                table,
                lambda table=table, transaction=transaction: client.transact_write_items(  # type: ignore[misc]
                    TransactItems=[_action(kind, key, value, guard, table) for kind, key, value, guard in transaction]
                ),
            )
            for table in TABLES
        }
        # Then every reply, cancellation reason, item and stream record is the same
        assert replies["stock"] == replies["fast"]
    stock_items, stock_records = _state(client, "stock")
    fast_items, fast_records = _state(client, "fast")
    assert stock_items == fast_items
    assert stock_records[before["stock"] :] == fast_records[before["fast"] :]


def test_a_cancelled_transaction_leaves_no_item_and_no_stream_record(client: DynamoDBClient) -> None:
    # Given an item with v = 1
    client.put_item(TableName="fast", Item={"PK": {"S": "a"}, "SK": {"S": "1"}, "v": {"N": "1"}})
    _, records_before = _state(client, "fast")
    # When a transaction updates it, creates another, and then fails a condition
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(
            TransactItems=[
                _action("Update", ("a", "1"), 0, "none", "fast"),
                _action("Put", ("b", "1"), 5, "none", "fast"),
                _action("Delete", ("c", "9"), 0, "present", "fast"),
            ]
        )
    # Then nothing changed, no stream record was added, and each action has its reason
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    items, records = _state(client, "fast")
    assert items == [{"PK": {"S": "a"}, "SK": {"S": "1"}, "v": {"N": "1"}}]
    assert records == records_before


def test_two_actions_on_one_item_are_refused_and_nothing_is_written(client: DynamoDBClient) -> None:
    with pytest.raises(ClientError) as refused:
        client.transact_write_items(
            TransactItems=[
                _action("Put", ("b", "1"), 1, "none", "fast"),
                _action("Put", ("a", "1"), 1, "none", "fast"),
                _action("Update", ("a", "1"), 1, "none", "fast"),
            ]
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert client.scan(TableName="fast")["Items"] == []


def test_table_queries_read_one_partition_with_the_same_pages(client: DynamoDBClient) -> None:
    for table in TABLES:
        for pk in ("a", "b", "c"):
            for n in range(7):
                client.put_item(TableName=table, Item={"PK": {"S": pk}, "SK": {"S": f"{n:02d}"}, "v": {"N": str(n)}})

    def pages(table: str, forward: bool) -> list[Any]:
        out: list[Any] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            status, page = run_as(
                table,
                lambda kwargs=kwargs: client.query(  # type: ignore[misc]
                    TableName=table,
                    KeyConditionExpression="PK = :pk AND SK > :from",
                    ExpressionAttributeValues={":pk": {"S": "b"}, ":from": {"S": "01"}},
                    ScanIndexForward=forward,
                    Limit=2,
                    **kwargs,
                ),
            )
            assert status == "ok"
            out.append(page["Items"])
            start = page.get("LastEvaluatedKey")
            if not start:
                return out

    for forward in (True, False):
        assert pages("stock", forward) == pages("fast", forward)
        assert sum(len(p) for p in pages("fast", forward)) == 5


# --- Index queries: handed the items of the queried index partition ------------------------

INDEX_PKS = ["X#p#2026-01-01", "X#p#2026-01-01#1", "H#p#2026-01-01"]
INDEX_SKS = ["2026-01-01T00:00:00Z#m1#l1", "2026-01-01T00:00:00Z#m2#l1", "2026-01-01T06:00:00Z#m1#l2", "K#a"]
index_items = st.lists(
    st.tuples(
        st.sampled_from(["M#1", "M#2", "M#3"]),
        st.sampled_from(["P#p#LOT#1", "P#p#LOT#2", "P#p#HOLD#1", "P#p#BAL"]),
        # An item may be out of the index (no GSI1PK), or half in it (no GSI1SK): moto skips both.
        st.one_of(st.none(), st.sampled_from(INDEX_PKS)),
        st.one_of(st.none(), st.sampled_from(INDEX_SKS)),
        st.integers(min_value=0, max_value=3),
    ),
    max_size=25,
)
# The key conditions and filters the code's index queries use (shared/*/store.py).
INDEX_RANGES = [
    (None, {}),
    ("GSI1SK < :below", {":below": {"S": "2026-01-01T00:00:00Z$"}}),
    ("GSI1SK <= :until", {":until": {"S": "2026-01-01T06:00:00Z#m1#l2"}}),
    ("GSI1SK > :after", {":after": {"S": "2026-01-01T00:00:00Z#m1#l1"}}),
    ("begins_with(GSI1SK, :prefix)", {":prefix": {"S": "K#"}}),
]
INDEX_FILTERS = [None, "v > :zero"]
index_queries = st.tuples(
    st.sampled_from(INDEX_PKS),
    st.sampled_from(INDEX_RANGES),
    st.sampled_from(INDEX_FILTERS),
    st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
    st.booleans(),
)


@pytest.fixture
def indexed_client() -> Iterator[DynamoDBClient]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        for name in TABLES:
            dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
                AttributeDefinitions=[
                    {"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "GSI1PK", "GSI1SK")
                ],
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": "GSI1",
                        "KeySchema": [
                            {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                            {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        yield dynamodb


def _index_pages(client: DynamoDBClient, table: str, query: tuple[Any, ...]) -> list[Any]:
    """Every page of one index query, following LastEvaluatedKey, with each page's counts and key."""
    pk, (range_condition, range_values), filter_expression, limit, forward = query
    condition = "GSI1PK = :pk" + (f" AND {range_condition}" if range_condition else "")
    kwargs: dict[str, Any] = {
        "IndexName": "GSI1",
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": {":pk": {"S": pk}, **range_values},
        "ScanIndexForward": forward,
    }
    if filter_expression:
        kwargs["FilterExpression"] = filter_expression
        kwargs["ExpressionAttributeValues"][":zero"] = {"N": "0"}
    if limit:
        kwargs["Limit"] = limit
    pages: list[Any] = []
    start: dict[str, Any] | None = None
    while len(pages) < 40:
        more = {"ExclusiveStartKey": start} if start else {}
        reply = run_as(table, lambda more=more: client.query(TableName=table, **kwargs, **more))  # type: ignore[misc]
        pages.append(reply)
        start = reply[1].get("LastEvaluatedKey") if reply[0] == "ok" else None
        if not start:
            break
    return pages


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=index_items, queries=st.lists(index_queries, min_size=1, max_size=6))
def test_index_queries_answer_as_moto_does(
    indexed_client: DynamoDBClient, items: list[Any], queries: list[tuple[Any, ...]]
) -> None:
    # Given the same items in both tables (cleared between examples), some outside the index
    for table in TABLES:
        for old in indexed_client.scan(TableName=table)["Items"]:
            indexed_client.delete_item(TableName=table, Key={"PK": old["PK"], "SK": old["SK"]})
        for pk, sk, index_pk, index_sk, value in items:
            item: dict[str, Any] = {"PK": {"S": pk}, "SK": {"S": sk}, "v": {"N": str(value)}}
            if index_pk:
                item["GSI1PK"] = {"S": index_pk}
            if index_sk:
                item["GSI1SK"] = {"S": index_sk}
            indexed_client.put_item(TableName=table, Item=item)
    for query in queries:
        # When the same index query runs through moto's own code and through the speedups
        stock, fast = _index_pages(indexed_client, "stock", query), _index_pages(indexed_client, "fast", query)
        # Then every page is the same: items, order, counts, LastEvaluatedKey and errors
        assert stock == fast, query
    # And the speedups leave the table's own listing in place afterwards
    assert "all_items" not in vars(dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables["fast"])


INDEX_KEYS = [("M#1", "P#p#LOT#1"), ("M#1", "P#p#LOT#2"), ("M#2", "P#p#LOT#1"), ("M#3", "P#p#BAL")]
index_writes = st.lists(
    st.tuples(
        st.sampled_from(["put", "set", "remove", "delete", "transact", "cancelled", "batch_put", "batch_delete"]),
        st.sampled_from(INDEX_KEYS),
        st.one_of(st.none(), st.sampled_from(INDEX_PKS)),
    ),
    min_size=1,
    max_size=30,
)


def _index_write(client: DynamoDBClient, write: tuple[str, tuple[str, str], str | None]) -> None:
    kind, (pk, sk), index_pk = write
    key = {"PK": {"S": pk}, "SK": {"S": sk}}
    item: dict[str, Any] = {**key, "v": {"N": "1"}}
    if index_pk:
        item |= {"GSI1PK": {"S": index_pk}, "GSI1SK": {"S": f"2026-01-01T00:00:00Z#{pk}#{sk}"}}
    with contextlib.suppress(ClientError):
        if kind == "put":
            client.put_item(TableName="fast", Item=item)
        elif kind == "set" and index_pk:
            client.update_item(
                TableName="fast",
                Key=key,
                UpdateExpression="SET GSI1PK = :p, GSI1SK = :s",
                ExpressionAttributeValues={":p": item["GSI1PK"], ":s": item["GSI1SK"]},
            )
        elif kind in ("set", "remove"):
            client.update_item(TableName="fast", Key=key, UpdateExpression="REMOVE GSI1PK")
        elif kind == "delete":
            client.delete_item(TableName="fast", Key=key)
        elif kind in ("transact", "cancelled"):
            # A put and a condition on another item: "cancelled" fails the condition, so the put
            # is rolled back.
            other = {"PK": {"S": "M#9"}, "SK": {"S": "none"}}
            condition = "attribute_exists(PK)" if kind == "cancelled" else "attribute_not_exists(PK)"
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "fast", "Item": item}},
                    {"ConditionCheck": {"TableName": "fast", "Key": other, "ConditionExpression": condition}},
                ]
            )
        elif kind == "batch_put":
            client.batch_write_item(RequestItems={"fast": [{"PutRequest": {"Item": item}}]})
        else:
            client.batch_write_item(RequestItems={"fast": [{"DeleteRequest": {"Key": key}}]})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=index_writes)
def test_index_values_follow_every_write(indexed_client: DynamoDBClient, writes: list[Any]) -> None:
    """The map an index query finds its items through stays what a walk of the table finds, through
    puts, updates that set or remove the index key in place, deletes, transactions (cancelled ones
    rolled back) and batch writes, with no rebuild in between; and the queries answer as moto's."""
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    for old in indexed_client.scan(TableName="fast")["Items"]:
        indexed_client.delete_item(TableName="fast", Key={"PK": old["PK"], "SK": old["SK"]})
    indexed_client.query(
        TableName="fast",
        IndexName="GSI1",
        KeyConditionExpression="GSI1PK = :pk",
        ExpressionAttributeValues={":pk": {"S": INDEX_PKS[0]}},
    )
    table = backend.tables["fast"]
    index = moto_speedups.indexed_values(table, create=False)
    assert index is not None
    for write in writes:
        _index_write(indexed_client, write)
        assert moto_speedups.indexed_values(table, create=False) is index  # kept, not rebuilt
        for value in INDEX_PKS:
            wanted = DynamoType({"S": value})
            walked = [
                item
                for partition in table.items.values()
                for item in partition.values()
                if item.attrs.get("GSI1PK") is not None and item.attrs["GSI1PK"] == wanted
            ]
            found = index.candidates("GSI1PK", wanted)
            assert sorted(found, key=moto_speedups._primary_order) == sorted(walked, key=moto_speedups._primary_order)
    # And the same queries through moto's own code answer alike.
    for value in INDEX_PKS:
        kwargs = _index_kwargs("fast", (value, INDEX_RANGES[0], None, None, True))
        fast = indexed_client.query(**kwargs)["Items"]
        with moto_speedups.without_speedups():
            stock = indexed_client.query(**kwargs)["Items"]
        assert fast == stock


def _index_kwargs(table: str, query: tuple[Any, ...]) -> dict[str, Any]:
    pk, (range_condition, range_values), _, _, forward = query
    condition = "GSI1PK = :pk" + (f" AND {range_condition}" if range_condition else "")
    return {
        "TableName": table,
        "IndexName": "GSI1",
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": {":pk": {"S": pk}, **range_values},
        "ScanIndexForward": forward,
    }


# --- Reads, updates and their replies (expression trees and serializer keys remembered) -------

UPDATES = [
    ("SET v = :v", {":v"}),
    ("ADD n :one", {":one"}),
    ("SET v = if_not_exists(v, :v), n = n + :one", {":v", ":one"}),
    ("REMOVE v", set()),
    ("SET #m.#k = :v", {":v"}),
    ("SET l = list_append(if_not_exists(l, :empty), :l)", {":empty", ":l"}),
]
CONDITIONS = [None, "attribute_exists(PK)", "attribute_not_exists(PK)", "v = :v"]
VALUES = st.one_of(
    st.integers(min_value=-5, max_value=5).map(lambda n: {"N": str(n)}),
    st.text(alphabet="abc é", min_size=1, max_size=4).map(lambda t: {"S": t}),
    st.binary(min_size=1, max_size=4).map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.just({"M": {"k": {"S": "x"}, "n": {"N": "1"}}}),
    st.just({"L": [{"S": "a"}, {"N": "2"}]}),
    st.just({"SS": ["a", "b"]}),
)
requests = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), VALUES, st.sampled_from(CONDITIONS)),
    st.tuples(
        st.just("update"),
        st.sampled_from(KEYS),
        st.tuples(st.sampled_from(UPDATES), VALUES, st.sampled_from(["NONE", "ALL_NEW", "UPDATED_OLD", "ALL_OLD"])),
        st.sampled_from(CONDITIONS),
    ),
    st.tuples(st.just("get"), st.sampled_from(KEYS), st.none(), st.none()),
    st.tuples(st.just("delete"), st.sampled_from(KEYS), st.none(), st.sampled_from(CONDITIONS)),
    st.tuples(st.just("query"), st.sampled_from(KEYS), st.booleans(), st.none()),
    st.tuples(st.just("batch_get"), st.sampled_from(KEYS), st.none(), st.none()),
)


def _request(client: DynamoDBClient, table: str, request: tuple[str, Any, Any, Any]) -> Any:
    kind, key, detail, condition = request
    ident = {"PK": {"S": key[0]}, "SK": {"S": key[1]}}
    guard: dict[str, Any] = {"ConditionExpression": condition} if condition else {}
    if kind == "get":
        return client.get_item(TableName=table, Key=ident, ConsistentRead=True)
    if kind == "query":
        return client.query(
            TableName=table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": key[0]}},
            ScanIndexForward=detail,
        )
    if kind == "batch_get":
        keys = [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in KEYS]
        return client.batch_get_item(RequestItems={table: {"Keys": keys}})
    if kind == "put":
        if condition == "v = :v":
            guard["ExpressionAttributeValues"] = {":v": detail}
        return client.put_item(TableName=table, Item={**ident, "v": detail}, **guard)
    if kind == "delete":
        if condition == "v = :v":
            guard["ExpressionAttributeValues"] = {":v": {"N": "1"}}
        return client.delete_item(TableName=table, Key=ident, ReturnValues="ALL_OLD", **guard)
    (expression, placeholders), value, returns = detail
    offered = {":v": value, ":one": {"N": "1"}, ":empty": {"L": []}, ":l": {"L": [value]}}
    used = {p: offered[p] for p in placeholders | ({":v"} if condition == "v = :v" else set())}
    if used:
        guard["ExpressionAttributeValues"] = used
    if "#m" in expression:
        guard["ExpressionAttributeNames"] = {"#m": "m", "#k": "k"}
    return client.update_item(TableName=table, Key=ident, UpdateExpression=expression, ReturnValues=returns, **guard)


def _unnamed(reply: Any, table: str) -> Any:
    """The reply with its table's name (which differs on purpose) taken out."""
    if isinstance(reply, dict):
        return {("<table>" if k == table else k): _unnamed(v, table) for k, v in reply.items()}
    if isinstance(reply, list | tuple):
        return type(reply)(_unnamed(v, table) for v in reply)
    return "<table>" if reply == table else reply


STREAMS_ENDPOINT = "https://streams.dynamodb.us-east-1.amazonaws.com"


def _stream_replies(table: str, since: int) -> list[Any]:
    """The table's stream as GetRecords answers it (through moto's serializer), from record `since`."""
    # The endpoint is given: mock_aws leaves the client's default endpoint for this service unrouted
    # (every call answers 404 "Not yet implemented", the same on both sides of a comparison).
    streams = boto3.client("dynamodbstreams", region_name="us-east-1", endpoint_url=STREAMS_ENDPOINT)
    arn = boto3.client("dynamodb", region_name="us-east-1").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]
    held = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[table].stream_shard
    assert held is not None and len(held.items) == len(records)
    created = [r.to_json()["dynamodb"]["ApproximateCreationDateTime"] for r in held.items]
    # Random event ids and creation times differ between any two runs; the rest must not. moto's
    # SizeBytes is the length of the record's JSON, its creation time (seconds as a float) included,
    # and that number's printed length varies with the time (1.5 vs 1.25): it is taken out too.
    return [
        {
            **r,
            "eventID": None,
            "dynamodb": {
                **r["dynamodb"],
                "ApproximateCreationDateTime": None,
                "SizeBytes": r["dynamodb"]["SizeBytes"] - len(json.dumps(unix_time(stamp))),
            },
        }
        for r, stamp in zip(records[since:], created[since:], strict=True)
    ]


def test_stream_replies_are_read_from_the_emulated_stream(client: DynamoDBClient) -> None:
    # Given one write to a table
    client.put_item(TableName="stock", Item={"PK": {"S": "a"}, "SK": {"S": "1"}, "n": {"N": "1"}})
    # When its stream is read as the comparisons read it
    records = _stream_replies("stock", 0)
    # Then GetRecords answered with the write's record (not an error shared by both sides)
    assert [(r["eventName"], r["dynamodb"]["Keys"]) for r in records] == [
        ("INSERT", {"PK": {"S": "a"}, "SK": {"S": "1"}})
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(requests, min_size=1, max_size=12))
def test_reads_and_updates_answer_as_moto_does(client: DynamoDBClient, sequence: list[Any]) -> None:
    # Given two empty tables (cleared between examples)
    for table in TABLES:
        for item in client.scan(TableName=table)["Items"]:
            client.delete_item(TableName=table, Key={"PK": item["PK"], "SK": item["SK"]})
    before = {table: len(_state(client, table)[1]) for table in TABLES}
    # When the same requests run through moto's own code and through the speedups
    for request in sequence:
        replies = {
            table: _unnamed(
                run_as(table, lambda table=table, request=request: _request(client, table, request)),  # type: ignore[misc]
                table,
            )
            for table in TABLES
        }
        # Then every reply and error is the same
        assert replies["stock"] == replies["fast"], request
    # And so are the items and the stream records, as GetRecords serializes them
    assert _state(client, "stock")[0] == _state(client, "fast")[0]
    stock_records = run_as("stock", lambda: {"Records": _stream_replies("stock", before["stock"])})
    fast_records = run_as("fast", lambda: {"Records": _stream_replies("fast", before["fast"])})
    assert stock_records == fast_records


# --- SQS: the retention check reads one attribute --------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    retention=st.integers(min_value=60, max_value=1_209_600),
    # How far past its retention period a message is: around the boundary, and anywhere.
    past_ms=st.one_of(st.integers(-2_000, 2_000), st.integers(-1_300_000_000, 1_300_000_000)),
)
def test_retention_check_agrees_with_moto(retention: int, past_ms: int) -> None:
    from moto.sqs.models import Message, SQSBackend

    now = 1_800_000_000.0
    with pytest.MonkeyPatch.context() as clock:
        # One frozen clock for both, so the boundary (age == retention) is compared exactly.
        clock.setattr("moto.sqs.models.unix_time", lambda *_: now)
        clock.setattr("moto.core.utils.unix_time", lambda *_: now)
        backend = SQSBackend("us-east-1", DEFAULT_ACCOUNT_ID)
        backend.create_queue("q", MessageRetentionPeriod=str(retention))
        message = Message("id", "body")
        sent_ms = int(now * 1000) - retention * 1000 - past_ms
        message.sent_timestamp = sent_ms  # type: ignore[assignment]
        ours = moto_speedups.sqs_message_within_retention(backend, "q", message)
        theirs = moto_speedups.originals["is_message_valid_based_on_retention_period"](backend, "q", message)
        assert ours is theirs


sqs_actions = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.text(alphabet='xyz{}"', min_size=1, max_size=5), st.integers(0, 2)),
        st.tuples(st.just("send_batch"), st.text(alphabet="xyz", min_size=1, max_size=3), st.integers(1, 10)),
        st.tuples(st.just("receive"), st.integers(1, 10), st.sampled_from([0, 30])),
        st.tuples(st.just("delete"), st.integers(0, 9), st.none()),
        # A handle from any earlier receive: the message's newest, an older one, or one deleted.
        st.tuples(st.just("delete_any"), st.integers(0, 40), st.none()),
        st.tuples(st.just("attributes"), st.none(), st.none()),
    ),
    min_size=1,
    max_size=25,
)


def _sqs_step(sqs: Any, url: str, action: tuple[str, Any, Any], handles: list[str], seen: list[str]) -> Any:
    kind, first, second = action
    if kind == "send":
        attributes = {"n": {"DataType": "Number", "StringValue": str(second)}} if second else {}
        reply = sqs.send_message(QueueUrl=url, MessageBody=first, MessageAttributes=attributes)
        return {k: v for k, v in reply.items() if k.startswith("MD5")}
    if kind == "send_batch":
        entries = [{"Id": f"e{n}", "MessageBody": f"{first}{n}"} for n in range(second)]
        reply = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        return sorted(entry["Id"] for entry in reply.get("Successful", []))
    if kind == "receive":
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=first,
            VisibilityTimeout=second,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        handles[:] = [m["ReceiptHandle"] for m in messages]
        seen.extend(handles)
        # Ids and receipt handles are random; bodies, digests and attributes are not.
        return [{k: v for k, v in m.items() if k not in ("MessageId", "ReceiptHandle")} for m in messages]
    if kind == "delete":
        if first >= len(handles):
            return None
        sqs.delete_message(QueueUrl=url, ReceiptHandle=handles.pop(first))
        return "deleted"
    if kind == "delete_any":
        if first >= len(seen):
            return None
        sqs.delete_message(QueueUrl=url, ReceiptHandle=seen[first])
        return "deleted"
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return {k: v for k, v in counts.items() if k.startswith("Approximate") or k == "MessageRetentionPeriod"}


@settings(max_examples=60, deadline=None)
@given(actions=sqs_actions, redrive=st.booleans())
def test_sqs_answers_as_moto_does(actions: list[tuple[str, Any, Any]], redrive: bool) -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        urls = {}
        for variant in TABLES:
            attributes: dict[QueueAttributeNameType, str] = {}
            if redrive:
                # Received twice without a delete, a message moves to the dead-letter queue on the
                # next receive (moto applies the policy there).
                dlq = sqs.create_queue(QueueName=f"dlq-{variant}")["QueueUrl"]
                arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
            urls[variant] = sqs.create_queue(QueueName=f"q-{variant}", Attributes=attributes)["QueueUrl"]
        handles: dict[str, list[str]] = {variant: [] for variant in TABLES}
        seen: dict[str, list[str]] = {variant: [] for variant in TABLES}
        for action in [*actions, ("attributes", None, None)]:
            replies = {
                variant: run_as(
                    variant,
                    lambda variant=variant, action=action: {  # type: ignore[misc]
                        "reply": _sqs_step(sqs, urls[variant], action, handles[variant], seen[variant])
                    },
                )
                for variant in TABLES
            }
            assert replies["stock"] == replies["fast"], action
        if redrive:
            counts = {
                variant: sqs.get_queue_attributes(
                    QueueUrl=sqs.get_queue_url(QueueName=f"dlq-{variant}")["QueueUrl"],
                    AttributeNames=["ApproximateNumberOfMessages"],
                )["Attributes"]
                for variant in TABLES
            }
            assert counts["stock"] == counts["fast"]


@settings(max_examples=40, deadline=None)
@given(
    content_based=st.sampled_from([None, "true", "false"]),
    sends=st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([None, "d1", "d2"])), max_size=6),
)
def test_fifo_sends_deduplicate_as_moto_does(content_based: str | None, sends: list[tuple[str, str | None]]) -> None:
    """A FIFO send reads the queue's ContentBasedDeduplication through `Queue.attributes`; the
    speedup hands it that one setting instead of every attribute."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        urls = {}
        for variant in TABLES:
            attributes: dict[QueueAttributeNameType, str] = {"FifoQueue": "true"}
            if content_based is not None:
                attributes["ContentBasedDeduplication"] = content_based
            urls[variant] = sqs.create_queue(QueueName=f"q-{variant}.fifo", Attributes=attributes)["QueueUrl"]

        def run(variant: str) -> dict[str, Any]:
            sent = []
            for body, dedup in sends:
                extra: dict[str, Any] = {"MessageDeduplicationId": dedup} if dedup else {}
                try:
                    sqs.send_message(QueueUrl=urls[variant], MessageBody=body, MessageGroupId="g", **extra)
                    sent.append("ok")
                except ClientError as error:
                    sent.append(error.response["Error"]["Code"])
            received = sqs.receive_message(QueueUrl=urls[variant], MaxNumberOfMessages=10).get("Messages", [])
            return {"sent": sent, "bodies": [m["Body"] for m in received]}

        replies = {variant: run_as(variant, lambda variant=variant: run(variant)) for variant in TABLES}  # type: ignore[misc]
        assert replies["stock"] == replies["fast"]


def test_receive_walks_a_backlog_only_as_far_as_its_batch() -> None:
    """A receive from a queue of a big file's rows hands out the first visible messages without
    looking at the rest (moto listed every visible message for each receive)."""
    from moto.sqs.models import sqs_backends

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="backlog")["QueueUrl"]
        for first in range(0, 2_000, 10):
            sqs.send_message_batch(
                QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": f"row {first + n}"} for n in range(10)]
            )
        queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_queue("backlog")
        looked_at = []
        real_iter = moto_speedups.VisibleMessages.__iter__

        def counting_iter(view: moto_speedups.VisibleMessages) -> Iterator[Any]:
            for message in real_iter(view):
                looked_at.append(message)
                yield message

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(moto_speedups.VisibleMessages, "__iter__", counting_iter)
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in got] == [f"row {n}" for n in range(10)]
        assert len(looked_at) == 10
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        assert len(queue._messages) == 1_990
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert counts["ApproximateNumberOfMessages"] == "1990"
        assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"


@settings(max_examples=150, deadline=None)
@given(
    states=st.lists(
        st.tuples(st.integers(-2, 2), st.integers(-2, 2)),  # visible_at, delayed_until: ms around now
        max_size=8,
    )
)
def test_queue_scans_agree_with_moto_at_one_instant(states: list[tuple[int, int]]) -> None:
    from moto.sqs.models import Message, SQSBackend

    now_ms = 1_800_000_000_000.0
    with pytest.MonkeyPatch.context() as clock:
        clock.setattr("moto.sqs.models.unix_time_millis", lambda *_: now_ms)
        queue = SQSBackend("us-east-1", DEFAULT_ACCOUNT_ID).create_queue("q")
        for n, (visible, delayed) in enumerate(states):
            message = Message(str(n), "body")
            message.visible_at, message.delayed_until = now_ms + visible, now_ms + delayed
            queue._messages.append(message)
        fast = (queue.messages, queue.attributes)
        with moto_speedups.without_speedups():
            stock = (queue.messages, queue.attributes)
        assert fast == stock


# --- Copying an UpdateExpression's tree before validation -------------------------------------

paths = st.sampled_from(["a", "#n", "a.b", "a[1]", "#n.b[0].c", "l"])
operands = st.one_of(
    st.sampled_from([":v", ":w"]),
    paths,
    st.builds(lambda p, v: f"if_not_exists({p}, {v})", paths, st.sampled_from([":v", ":w"])),
    st.builds(lambda p, v: f"list_append({p}, {v})", paths, st.sampled_from([":v", ":w"])),
)
set_actions = st.builds(
    lambda p, o, op, v: f"{p} = {o}{op}{v}",
    paths,
    operands,
    st.sampled_from(["", " + ", " - "]),
    st.sampled_from(["", ":v"]),
)
clauses = st.one_of(
    st.lists(set_actions, min_size=1, max_size=3).map(lambda a: "SET " + ", ".join(x.rstrip(" +-") for x in a)),
    st.lists(paths, min_size=1, max_size=3).map(lambda p: "REMOVE " + ", ".join(p)),
    st.lists(paths, min_size=1, max_size=2).map(lambda p: "ADD " + ", ".join(f"{x} :v" for x in p)),
    st.lists(paths, min_size=1, max_size=2).map(lambda p: "DELETE " + ", ".join(f"{x} :w" for x in p)),
)


def _tree(node: Any, seen: dict[int, int]) -> Any:
    """A node tree as plain data; `parent` as the position of the node it points at in this tree."""
    if isinstance(node, list):
        return [_tree(item, seen) for item in node]
    if hasattr(node, "__dict__"):
        seen.setdefault(id(node), len(seen))
        return (
            type(node).__name__,
            {k: ("parent", seen.get(id(v))) if k == "parent" else _tree(v, seen) for k, v in vars(node).items()},
        )
    return node


@settings(max_examples=150, deadline=None)
@given(expression=st.lists(clauses, min_size=1, max_size=3).map(" ".join))
def test_update_expression_trees_are_copied_as_deepcopy_copies_them(expression: str) -> None:
    import copy

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    try:
        tree = UpdateExpressionParser.make(expression)
    except Exception:  # noqa: BLE001 - the grammar above also writes expressions moto refuses
        return
    ours, theirs = moto_speedups.tree_copy(tree), copy.deepcopy(tree)
    assert _tree(ours, {}) == _tree(theirs, {}) == _tree(tree, {})
    assert ours is not tree and all(a is not b for a, b in zip(ours.children, tree.children, strict=True))
    # The validators' copy of a remembered tree (unpickled): alike, and a fresh one each time.
    first, second = moto_speedups.validator_copy(tree), moto_speedups.validator_copy(tree)
    assert _tree(first, {}) == _tree(second, {}) == _tree(theirs, {})
    assert first is not tree and first is not second
    assert all(a is not b for a, b in zip(first.children, tree.children, strict=True))


# --- EventBridge: a target's input paths parsed once ---------------------------------------------

TRANSFORMERS = [
    None,
    {
        "InputPathsMap": {"kind": "$.detail-type", "who": "$.detail.member"},
        "InputTemplate": '{"k": "<kind>", "w": "<who>"}',
    },
    {
        "InputPathsMap": {"first": "$.detail.items[0]", "all": "$.detail.items"},
        "InputTemplate": '{"f": <first>, "a": <all>}',
    },
    {"InputPathsMap": {"missing": "$.detail.nowhere"}, "InputTemplate": '{"m": "<missing>"}'},
]


def _delivered(variant: str, details: list[dict[str, Any]]) -> list[Any]:
    """What one rule's targets (one queue per input transformer) receive for `details`, put through
    moto's own code or the speedups; the event ids and times, random or the clock's, taken out."""
    events: Any = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    events.put_rule(Name=f"r-{variant}", EventPattern=json.dumps({"source": [f"test.{variant}"]}))
    queues = []
    for n, transformer in enumerate(TRANSFORMERS):
        url = sqs.create_queue(QueueName=f"q-{variant}-{n}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        target: dict[str, Any] = {"Id": str(n), "Arn": arn}
        if transformer is not None:
            target["InputTransformer"] = transformer
        events.put_targets(Rule=f"r-{variant}", Targets=[target])
        queues.append(url)
    with moto_speedups.without_speedups() if variant == "stock" else contextlib.nullcontext():
        for detail in details:
            entry = {"Source": f"test.{variant}", "DetailType": "Noticed", "Detail": json.dumps(detail)}
            reply = events.put_events(Entries=[entry])
            assert reply["FailedEntryCount"] == 0
    received = []
    for url in queues:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            body: Any = message["Body"]
            with contextlib.suppress(ValueError):  # a template's text need not be JSON
                body = json.loads(body)
            if isinstance(body, dict):
                body = {k: v for k, v in body.items() if k not in ("id", "time", "source")}
            received.append(body)
    return received


@settings(max_examples=8, deadline=None)
@given(
    details=st.lists(
        st.fixed_dictionaries(
            {
                "member": st.text("abcXYZ-_ ", min_size=1, max_size=8),
                "items": st.lists(st.integers(0, 9), min_size=1, max_size=3),
            }
        ),
        min_size=1,
        max_size=3,
    )
)
def test_events_reach_their_targets_as_through_moto(details: list[dict[str, Any]]) -> None:
    with mock_aws():
        stock, fast = _delivered("stock", details), _delivered("fast", details)
    assert stock == fast
    assert len(fast) == len(details) * len(TRANSFORMERS)


def test_json_paths_are_parsed_once_and_find_as_moto_does() -> None:
    from jsonpath_ng import ext

    event = {"detail": {"a": [1, {"b": 2}], "c": None}, "id": "x"}
    for path in ("$.detail", "$.detail.a[1].b", "$.detail.c", "$.nowhere", "$.detail.a[*]"):
        assert ext.parse(path) is ext.parse(path)
        with moto_speedups.without_speedups():
            stock = [m.value for m in ext.parse(path).find(event)]
        assert [m.value for m in ext.parse(path).find(event)] == stock
    with pytest.raises(Exception, match="Parse error"):  # noqa: PT011 - jsonpath_ng's own error, as moto gets it
        ext.parse("$.[")


# --- Copying items -------------------------------------------------------------------------------

scalars = st.one_of(
    st.integers(min_value=-3, max_value=3).map(lambda n: {"N": str(n)}),
    st.sampled_from(["", "a", "ü"]).map(lambda s: {"S": s}),
    st.binary(max_size=3).map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.just({"SS": ["x", "y"]}),
    st.just({"NS": ["1", "2"]}),
    st.just({"BS": [b"\x00"]}),
)
attribute_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: {"L": v}),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3).map(lambda v: {"M": v}),
    ),
    max_leaves=8,
)


def _dynamo_tree(value: Any, seen: dict[int, int]) -> Any:
    """A DynamoType/Item as plain data, with each object's first position (sharing shows)."""
    position = seen.setdefault(id(value), len(seen))
    if isinstance(value, list):
        return ("list", position, [_dynamo_tree(v, seen) for v in value])
    if isinstance(value, dict):
        return (type(value).__name__, position, {k: _dynamo_tree(v, seen) for k, v in value.items()})
    if hasattr(value, "__dict__"):
        return (type(value).__name__, position, {k: _dynamo_tree(v, seen) for k, v in vars(value).items()})
    return value


@settings(max_examples=150, deadline=None)
@given(attributes=st.dictionaries(st.sampled_from(["v", "w", "x"]), attribute_values, max_size=3), share=st.booleans())
def test_items_are_copied_as_moto_copies_them(attributes: dict[str, Any], share: bool) -> None:
    import copy

    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    item = Item(DynamoType({"S": "h"}), DynamoType({"S": "r"}) if share else None, attributes)
    if share and item.attrs:
        # One value held by two attributes, as an update's SET a = b can leave it.
        dict.__setitem__(item.attrs, "shared", next(iter(item.attrs.values())))
    ours = copy.deepcopy(item)
    with moto_speedups.without_speedups():
        theirs = copy.deepcopy(item)
    assert _dynamo_tree(ours, {}) == _dynamo_tree(theirs, {})
    assert ours.to_json() == theirs.to_json() == item.to_json()
    assert ours is not item and all(ours.attrs[k] is not item.attrs[k] for k in item.attrs)
    for name, value in item.attrs.items():
        copied = copy.deepcopy(value)
        with moto_speedups.without_speedups():
            assert _dynamo_tree(copied, {}) == _dynamo_tree(copy.deepcopy(value), {}), name


# --- Validating an UpdateExpression --------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    # One clause of a kind at most (moto refuses two SETs as a whole, before any walk).
    expression=st.lists(clauses, min_size=1, max_size=3, unique_by=lambda c: c.split()[0]).map(" ".join),
    v=scalars,
    w=attribute_values,
    item_attributes=st.dictionaries(st.sampled_from(["a", "b", "l", "n"]), attribute_values, max_size=3),
)
def test_update_expressions_validate_as_moto_validates_them(
    expression: str, v: Any, w: Any, item_attributes: dict[str, Any]
) -> None:
    """The validators' walks (ten traversals of the tree) give moto's tree, or moto's error."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator

    class _Table:
        table_key_attrs = ["PK"]
        attr = [{"AttributeName": "PK", "AttributeType": "S"}]
        attribute_keys = ["PK"]

    def validated() -> Any:
        item = Item(DynamoType({"S": "h"}), None, {"PK": {"S": "h"}, **item_attributes})
        try:
            tree = UpdateExpressionParser.make(expression)
            result = UpdateExpressionValidator(
                tree,
                expression_attribute_names={"#n": "n"},
                expression_attribute_values={":v": v, ":w": w},
                item=item,
                table=_Table(),  # type: ignore[arg-type]
            ).validate()
        except Exception as error:  # noqa: BLE001 - moto's refusals are part of what is compared
            return type(error).__name__, str(error)
        return _tree(result, {})

    ours = validated()
    with moto_speedups.without_speedups():
        theirs = validated()
    assert ours == theirs
