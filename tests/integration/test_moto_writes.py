"""DynamoDB writes through the speedups of moto_writes answer exactly as moto's own code does.

Random UpdateExpressions (the item-independent kind validated by four walks once moto's ten have
passed, and the kind always validated by ten), random values (wrong types, empty key strings,
missing placeholders) and random items run through moto as it ships (`without_speedups()`) and
through the speedups, on two identical tables: replies, errors, cancellation reasons, items and
stream records compared. Expressions repeat within an example, so the remembered validations are
used; every example also repeats its requests once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from pointbridge.sandbox import moto_speedups, moto_writes
from tests.support.moto_diff import keyed_tables, run_as

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_dynamodb import DynamoDBClient

TABLES = ("stock", "fast")
KEYS = [("a", "1"), ("a", "2"), ("b", "1")]
# (expression, whether moto_writes validates it by the four value walks once it has passed)
EXPRESSIONS = [
    ("SET #t = :s ADD #v :n, marks :ss, #c :n", True),
    ("ADD #n :n SET #t = :s", True),
    ("SET remaining = :n", True),
    ("SET #t = :s, v = :x", True),
    ("SET v = :x + :n", True),
    ("SET v = :x - :n REMOVE #d", True),
    ("REMOVE #d, marks", True),
    ("DELETE marks :ss", True),
    ("ADD marks :x", True),
    ("SET GSI1PK = :s", True),  # an index key: the type and empty-string checks read the values
    ("SET GSI1PK = :x", True),
    ("SET #k = :s", True),  # #k names the range key: refused before any value is read
    ("SET #t = :s, #t = :x", True),  # overlapping paths: refused by moto's first walks
    ("SET #t = :undefined", True),
    ("SET #undefined = :s", True),
    ("SET size = :s", True),  # a reserved word
    ("SET v = v + :n", False),
    ("SET provisional = if_not_exists(provisional, :s) ADD #v :n", False),
    ("SET m.#t = :s", False),
    ("SET l[0] = :s", False),
    ("SET l = list_append(if_not_exists(l, :empty), :list)", False),
]
NAMES = [
    {"#t": "type", "#v": "value", "#c": "earned", "#n": "used", "#d": "gone", "#k": "SK"},
    {"#t": "kind", "#v": "value", "#c": "spent", "#n": "used", "#d": "marks", "#k": "PK"},
]
SCALARS = st.one_of(
    st.integers(min_value=-3, max_value=3).map(lambda n: {"N": str(n)}),
    st.sampled_from(["", "x", "é"]).map(lambda t: {"S": t}),
    st.just({"SS": ["a", "b"]}),
    st.just({"BOOL": True}),
    st.just({"L": [{"S": "a"}]}),
    st.just({"M": {"type": {"S": "t"}}}),
)
updates = st.tuples(
    st.sampled_from(KEYS),
    st.sampled_from(range(len(EXPRESSIONS))),
    st.sampled_from(range(len(NAMES))),
    st.fixed_dictionaries(
        {
            ":s": st.sampled_from([{"S": "tally"}, {"S": ""}, {"N": "4"}]),
            ":n": st.integers(min_value=0, max_value=3).map(lambda n: {"N": str(n)}),
            ":ss": st.sampled_from([{"SS": ["e1"]}, {"SS": ["e1", "e2"]}, {"NS": ["1"]}]),
            ":x": SCALARS,
        }
    ),
    st.sampled_from([None, "attribute_not_exists(PK)", "attribute_exists(PK)", "#v = :n"]),
)
puts = st.tuples(
    st.sampled_from(KEYS),
    st.dictionaries(st.sampled_from(["v", "l", "m", "marks", "value", "used"]), SCALARS, max_size=3),
)


@pytest.fixture
def client() -> Iterator[DynamoDBClient]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        keyed_tables(dynamodb, TABLES, index="GSI1")
        yield dynamodb


def _unnamed(reply: Any, table: str) -> Any:
    """The reply with its table's name (which differs on purpose) taken out."""
    if isinstance(reply, dict):
        return {k: _unnamed(v, table) for k, v in reply.items()}
    if isinstance(reply, list | tuple):
        return type(reply)(_unnamed(v, table) for v in reply)
    return "<table>" if reply == table else reply


def _state(client: DynamoDBClient, table: str) -> tuple[list[Any], list[Any]]:
    """The table's items, and its stream records as moto holds them (all but id and time)."""
    items = sorted(client.scan(TableName=table)["Items"], key=lambda i: (i["PK"]["S"], i["SK"]["S"]))
    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[table].stream_shard
    assert shard is not None
    records = [r.to_json() for r in shard.items]
    return items, [
        (
            r["eventName"],
            r["dynamodb"].get("Keys"),
            r["dynamodb"].get("OldImage"),
            r["dynamodb"].get("NewImage"),
            r["dynamodb"]["StreamViewType"],
        )
        for r in records
    ]


def _clear(client: DynamoDBClient) -> dict[str, int]:
    for table in TABLES:
        for item in client.scan(TableName=table)["Items"]:
            client.delete_item(TableName=table, Key={"PK": item["PK"], "SK": item["SK"]})
    return {table: len(_state(client, table)[1]) for table in TABLES}


def _update(table: str, update: tuple[Any, ...]) -> dict[str, Any]:
    key, expression, names, values, condition = update
    text = EXPRESSIONS[expression][0]
    request: dict[str, Any] = {
        "TableName": table,
        "Key": {"PK": {"S": key[0]}, "SK": {"S": key[1]}},
        "UpdateExpression": text,
    }
    offered = {**values, ":empty": {"L": []}, ":list": {"L": [{"S": "z"}]}}
    used_names = {k: v for k, v in NAMES[names].items() if k in text or (condition and k in condition)}
    used_values = {k: v for k, v in offered.items() if k in text or (condition and k in condition)}
    if condition:
        request["ConditionExpression"] = condition
    if used_names:
        request["ExpressionAttributeNames"] = used_names
    if used_values:
        request["ExpressionAttributeValues"] = used_values
    return request


def _put(table: str, put: tuple[Any, ...]) -> dict[str, Any]:
    key, attributes = put
    return {"TableName": table, "Item": {"PK": {"S": key[0]}, "SK": {"S": key[1]}, **attributes}}


def _compare(client: DynamoDBClient, calls: list[Callable[[str], Any]]) -> None:
    before = _clear(client)
    for call in calls:
        replies = {
            table: _unnamed(run_as(table, lambda table=table, call=call: call(table)), table)  # type: ignore[misc]
            for table in TABLES
        }
        assert replies["stock"] == replies["fast"]
    stock_items, stock_records = _state(client, "stock")
    fast_items, fast_records = _state(client, "fast")
    assert stock_items == fast_items
    assert stock_records[before["stock"] :] == fast_records[before["fast"] :]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(updates, puts), min_size=1, max_size=10))
def test_updates_answer_as_moto_does(client: DynamoDBClient, steps: list[Any]) -> None:
    # Given random updates (validation errors included) and puts, each run twice in a row
    calls: list[Callable[[str], Any]] = []
    for step in steps + steps:
        if len(step) == 5:
            calls.append(
                lambda table, step=step: client.update_item(**_update(table, step), ReturnValues="ALL_NEW")  # type: ignore[misc]
            )
        else:
            calls.append(lambda table, step=step: client.put_item(**_put(table, step)))  # type: ignore[misc]
    # When they run through moto's code and through the speedups
    # Then every reply and error, the items and the stream records are the same
    _compare(client, calls)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    transactions=st.lists(
        st.lists(st.one_of(updates, puts), min_size=1, max_size=5, unique_by=lambda step: step[0]),
        min_size=1,
        max_size=5,
    )
)
def test_transactions_of_updates_answer_as_moto_does(client: DynamoDBClient, transactions: list[Any]) -> None:
    # Given random transactions of updates and puts (one action per item), each run twice
    def transact(table: str, transaction: list[Any]) -> Any:
        actions: list[Any] = [
            {"Update": _update(table, step)} if len(step) == 5 else {"Put": _put(table, step)} for step in transaction
        ]
        return client.transact_write_items(TransactItems=actions)

    calls: list[Callable[[str], Any]] = [
        lambda table, transaction=transaction: transact(table, transaction)  # type: ignore[misc]
        for transaction in transactions + transactions
    ]
    # Then replies, validation errors, cancellation reasons, items and stream records are moto's
    _compare(client, calls)


def test_the_item_independent_expressions_are_those_the_module_names() -> None:
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    walks = [
        validators.ExpressionAttributeValueProcessor({}),
        validators.ExecuteOperations(),
        validators.TypeMismatchValidator([]),
        validators.EmptyStringKeyValueValidator([]),
    ]
    for text, independent in EXPRESSIONS:
        tree = UpdateExpressionParser.make(text)
        assert moto_writes.independent_of_item(tree) is independent, text
        # and each of those has its four value walks replayed at known places
        assert (moto_writes.value_walk_plan(tree, walks) is not None) or not independent, text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=0, max_value=210_000), min_size=1, max_size=4), wide=st.booleans())
def test_item_size_limit_is_moto_s(client: DynamoDBClient, sizes: list[int], wide: bool) -> None:
    # Given an item whose attributes together lie around DynamoDB's size limit (multi-byte or not)
    letter = "é" if wide else "x"
    attributes: dict[str, Any] = {f"a{n}": {"S": letter * size} for n, size in enumerate(sizes)}
    attributes["set"] = {"SS": [letter * (size // 3 + 1) for size in sizes]}

    # When it is put, alone and in a transaction, through moto's code and through the speedups
    def put(table: str) -> Any:
        return client.put_item(**_put(table, (KEYS[0], attributes)))

    def transact(table: str) -> Any:
        actions: list[Any] = [{"Put": _put(table, (KEYS[1], attributes))}]
        return client.transact_write_items(TransactItems=actions)

    # Then both store it or both refuse it alike
    _compare(client, [put, transact])


def test_item_reading_walks_run_until_moto_s_validation_passed_once(
    client: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.parsing.validators import ExpressionAttributeResolvingProcessor

    walks: list[Any] = []
    stock_traverse = ExpressionAttributeResolvingProcessor.traverse

    def counted(self: Any, node: Any) -> Any:
        walks.append(node)
        return stock_traverse(self, node)

    monkeypatch.setattr(ExpressionAttributeResolvingProcessor, "traverse", counted)

    def update(expression: str, value: str, *, table: str = "fast") -> None:
        client.update_item(
            TableName=table,
            Key={"PK": {"S": "a"}, "SK": {"S": value}},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#t": "type"},
            ExpressionAttributeValues={":s": {"S": value}},
        )

    # Given an item-independent expression validated once by moto's ten walks (a new item is
    # validated twice: empty, then as created; the second already goes by the four value walks)
    update("SET #t = :s REMOVE leftover", "first")
    assert len(walks) == 1
    # When it is used again, with other values, on other and existing items
    update("SET #t = :s REMOVE leftover", "second")
    update("SET #t = :s REMOVE leftover", "first")
    # Then the item-reading walks no longer run
    assert len(walks) == 1
    # But an expression reading the item on its value side runs them every time
    update("SET #t = if_not_exists(#t, :s)", "first")
    update("SET #t = if_not_exists(#t, :s)", "first")
    assert len(walks) == 3
    # And moto's own code runs them always (a new item in this table: twice)
    with moto_speedups.without_speedups():
        update("SET #t = :s REMOVE leftover", "first", table="stock")
    assert len(walks) == 5


MEMBERS = st.one_of(
    st.text(alphabet="aé€😀", max_size=4), st.integers(-(10**20), 10**20), st.booleans(), st.binary(max_size=4)
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["S", "N", "B", "SS", "NS", "BS", "BOOL", "NULL"]),
    value=st.one_of(MEMBERS, st.lists(MEMBERS, max_size=4)),
)
def test_values_are_sized_as_moto_sizes_them(kind: str, value: Any) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    # Given any value moto may hold under a type (well-formed or not: a boolean in a string set)
    dynamo = DynamoType({kind: value})

    def sized() -> tuple[str, Any]:
        try:
            return "ok", dynamo.size()
        except Exception as error:  # noqa: BLE001 - moto's refusals are compared too
            return type(error).__name__, str(error)

    # When it is sized through the speedups and through moto's code, then the answers are alike
    ours = sized()
    with moto_speedups.without_speedups():
        assert sized() == ours
