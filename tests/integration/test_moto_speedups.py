"""The emulator's cheaper transactions and table queries answer exactly as moto's own code does.

Each case runs the same requests against two identical tables, one through moto's original
methods and one through `moto_speedups`, and compares replies, errors, items and stream records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.table import Table

from pointbridge.sandbox import moto_speedups

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_dynamodb import DynamoDBClient

TABLES = ("stock", "fast")
KEYS = [("a", "1"), ("a", "2"), ("b", "1"), ("c", "9")]


@pytest.fixture
def client() -> Iterator[DynamoDBClient]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        for name in TABLES:
            dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
                AttributeDefinitions=[
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
        yield dynamodb


def _as(variant: str, call: Callable[[], Any]) -> tuple[str, Any]:
    """Run a request with moto's own methods ("stock") or the speedups ("fast"); the reply or error."""
    patched = DynamoDBBackend.transact_write_items, Table.query
    if variant == "stock":
        DynamoDBBackend.transact_write_items = moto_speedups.originals["transact_write_items"]  # type: ignore[method-assign]
        Table.query = moto_speedups.originals["query"]  # type: ignore[method-assign]
    try:
        reply = call()
        reply.pop("ResponseMetadata", None)
        return "ok", reply
    except ClientError as error:
        return error.response["Error"]["Code"], error.response.get("CancellationReasons")
    finally:
        DynamoDBBackend.transact_write_items, Table.query = patched  # type: ignore[method-assign]


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
            table: _as(
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
            status, page = _as(
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
