"""DynamoDB's fast path (moto_dynamodb) answers byte for byte as moto as it ships.

Two WSGI stacks in this process, each with its own region: moto's server app with moto exactly as
it ships (`without_speedups()`), and the emulator's DynamoDB dispatch in front of the same app
with the speedups (the compiled request reader and reply writer among them). The same random
DynamoDB requests - successes, conditional check failures, validation errors, cancelled
transactions, unknown tables, binary and nested values - and then the stream's records through
DynamoDB Streams go to both; status, headers and bodies must match once the region, the request
id and the stream's own ids and times are blanked.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pointbridge.sandbox import moto_speedups
from pointbridge.sandbox.moto_dynamodb import DynamoDBDispatch, dynamodb_backend_of
from tests.support.moto_diff import call_wsgi, json_environ

if TYPE_CHECKING:
    from collections.abc import Iterator

REGIONS = {"stock": "eu-west-3", "fast": "eu-west-2"}  # one length: stream records count bytes
TABLE = "ledger"
OUTCOMES: Counter[tuple[str, str, str]] = Counter()  # what the random requests came to
KEYS = [("m#1", "balance"), ("m#1", "entry#1"), ("m#2", "balance"), ("m#3", "x")]


def _moto_app() -> Any:
    from moto.server import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


@pytest.fixture(scope="module")
def apps() -> dict[str, Any]:
    return {"stock": _moto_app(), "fast": DynamoDBDispatch(_moto_app())}


def _environ(variant: str, target: str, payload: Any, *, raw: bytes | None = None) -> dict[str, Any]:
    body = raw if raw is not None else json.dumps(payload).encode()
    return json_environ(target, body, region=REGIONS[variant], service="dynamodb")


# SizeBytes: moto measures each record with its creation time written as a float of varying length.
VOLATILE_KEYS = (
    "SizeBytes eventID ApproximateCreationDateTime SequenceNumber StartingSequenceNumber ShardIterator"
    " NextShardIterator LastEvaluatedShardId StreamLabel CreationRequestDateTime TableId CreationDateTime"
    " LatestStreamLabel LatestStreamArn StreamArn ShardId"
).split()
VOLATILE = re.compile(rf'"({"|".join(VOLATILE_KEYS)})": ("[^"]*"|[0-9.]+)')


def _normalised(variant: str, status: str, headers: list[tuple[str, str]], body: bytes) -> Any:
    text = body.decode()
    if status == "500 (raised)":
        return status, headers, text.replace(REGIONS[variant], "<region>")
    checked = []
    for name, value in headers:
        if name.lower() == "x-amz-crc32":
            assert value == str(binascii.crc32(body))  # moto's checksum of the very body sent
            value = "<crc>"
        elif name.lower() == "x-amzn-requestid":
            value = "<id>"
        elif name.lower() == "content-length":
            assert value == str(len(body))
            value = "<length>"
        checked.append((name, value))
    text = VOLATILE.sub(lambda m: f'"{m.group(1)}": "<volatile>"', text.replace(REGIONS[variant], "<region>"))
    return status, checked, text


def _both(apps: dict[str, Any], target: str, payload: Any, *, raw: bytes | None = None) -> Any:
    replies = {}
    for variant in ("stock", "fast"):
        environ = _environ(variant, target, payload, raw=raw)
        if variant == "stock":
            assert dynamodb_backend_of(environ) is not None  # the fast side does take this request
        with moto_speedups.without_speedups() if variant == "stock" else contextlib.nullcontext():
            replies[variant] = _normalised(variant, *call_wsgi(apps[variant], environ))
    assert replies["fast"] == replies["stock"], target
    OUTCOMES[(target.split(".")[-1], replies["fast"][0], _error_type(replies["fast"][2]))] += 1
    status, _, text = replies["fast"]
    return json.loads(text) if text and status != "500 (raised)" else None


def _first_difference(fast: str, stock: str) -> str:
    try:
        pairs = list(zip(json.loads(fast)["Records"], json.loads(stock)["Records"], strict=True))
    except (ValueError, KeyError, TypeError):
        return f"{fast[:300]} != {stock[:300]}"
    return next((f"{json.dumps(a)}\n!=\n{json.dumps(b)}" for a, b in pairs if a != b), "same records")


def _error_type(text: str) -> str:
    try:
        return str(json.loads(text).get("__type", "")).rpartition("#")[2]
    except ValueError:
        return text[:40]


def _ddb(apps: dict[str, Any], operation: str, payload: Any) -> Any:
    return _both(apps, f"DynamoDB_20120810.{operation}", payload)


@pytest.fixture(scope="module")
def table(apps: dict[str, Any]) -> str:
    _ddb(
        apps,
        "CreateTable",
        {
            "TableName": TABLE,
            "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            "AttributeDefinitions": [
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
                {"AttributeName": "day", "AttributeType": "S"},
            ],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "by-day",
                    "KeySchema": [{"AttributeName": "day", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        },
    )
    return TABLE


def _key(key: tuple[str, str]) -> dict[str, Any]:
    return {"PK": {"S": key[0]}, "SK": {"S": key[1]}}


values = st.one_of(
    st.integers(min_value=-5, max_value=5).map(lambda n: {"N": str(n)}),
    st.sampled_from(["a", "b", "", "ü"]).map(lambda s: {"S": s}),
    st.binary(max_size=4).map(lambda b: {"B": binascii.b2a_base64(b, newline=False).decode()}),
    st.just({"BOOL": True}),
    st.just({"NULL": True}),
    st.just({"SS": ["x", "y"]}),
    st.just({"NS": ["1", "2.5"]}),
    st.just({"L": [{"N": "1"}, {"S": "two"}, {"M": {"deep": {"BS": ["AAE="]}}}]}),
    st.just({"M": {"a": {"N": "1"}, "b": {"L": []}, "c": {"M": {}}}}),
)
conditions = st.sampled_from(
    [
        None,
        None,
        None,
        None,
        "attribute_not_exists(PK)",
        "attribute_exists(PK)",
        "v = :expected",
        "v < :expected AND attribute_exists(SK)",
        "begins_with(SK, :prefix)",
        "v = :missing",  # an unknown value placeholder: a validation error
        "(((",  # a syntax error
    ]
)
return_values = st.sampled_from([None, "NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW", "BOGUS"])


def _guard(condition: str | None, action: dict[str, Any], value: Any) -> dict[str, Any]:
    if condition is None:
        return action
    action["ConditionExpression"] = condition
    placeholders = {":expected": value, ":prefix": {"S": "bal"}}
    used = {name: v for name, v in placeholders.items() if name in condition}
    if used:
        action.setdefault("ExpressionAttributeValues", {}).update(used)
    return action


def _put_item_request(draw: st.DrawFn, key: tuple[str, str], table: str, value: Any, condition: Any) -> Any:
    item = {**_key(key), "v": value, "day": {"S": draw(st.sampled_from(["d1", "d2"]))}}
    payload: dict[str, Any] = {"TableName": table, "Item": item}
    if draw(st.booleans()):
        payload["ReturnValues"] = draw(return_values)
    return _guard(condition, payload, value)


def _update_item_request(draw: st.DrawFn, key: tuple[str, str], table: str, value: Any, condition: Any) -> Any:
    expression = draw(
        st.sampled_from(
            [
                "SET v = :v",
                "ADD n :one",
                "SET v = :v, w = if_not_exists(w, :v) ADD n :one",
                "REMOVE v",
                "SET #l = list_append(if_not_exists(#l, :empty), :list)",
                "SET PK = :v",  # updating a key attribute: a validation error
                "ADD v :v",  # type errors, depending on what v holds
            ]
        )
    )
    update_values = {":v": value, ":one": {"N": "1"}, ":empty": {"L": []}, ":list": {"L": [value]}}
    payload: dict[str, Any] = {
        "TableName": table,
        "Key": _key(key),
        "UpdateExpression": expression,
        "ExpressionAttributeValues": {k: v for k, v in update_values.items() if k in expression},
    }
    if "#l" in expression:
        payload["ExpressionAttributeNames"] = {"#l": "log"}
    if draw(st.booleans()):
        payload["ReturnValues"] = draw(return_values)
    if draw(st.booleans()):
        payload["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return _guard(condition, payload, value)


def _delete_item_request(draw: st.DrawFn, key: tuple[str, str], table: str, value: Any, condition: Any) -> Any:
    payload: dict[str, Any] = {
        "TableName": table,
        "Key": _key(key),
        "ReturnValues": draw(st.sampled_from(["NONE", "ALL_OLD"])),
    }
    return _guard(condition, payload, value)


def _get_item_request(draw: st.DrawFn, key: tuple[str, str], table: str, value: Any, condition: Any) -> Any:
    payload: dict[str, Any] = {"TableName": table, "Key": _key(key)}
    if draw(st.booleans()):
        payload["ProjectionExpression"] = draw(st.sampled_from(["v", "PK, v, n", "#l[0]", "v.deep"]))
        if "#l" in payload["ProjectionExpression"]:
            payload["ExpressionAttributeNames"] = {"#l": "log"}
    if draw(st.booleans()):
        payload["ReturnConsumedCapacity"] = draw(st.sampled_from(["TOTAL", "INDEXES", "NONE"]))
    if draw(st.booleans()):
        payload["Key"] = {"PK": key[0] and {"S": key[0]}}  # half a key: a validation error
    return payload


def _batch_get_item_request(draw: st.DrawFn, key: tuple[str, str], table: str, value: Any, condition: Any) -> Any:
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=draw(st.booleans())))
    return {"RequestItems": {table: {"Keys": [_key(k) for k in keys], "ConsistentRead": True}}}


def _transact_write_items_request(draw: st.DrawFn, key: tuple[str, str], table: str, value: Any, condition: Any) -> Any:
    actions = []
    action_keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=draw(st.booleans())))
    for action_key in action_keys:
        action_value = draw(values)
        action_kind = draw(st.sampled_from(["Put", "Update", "Delete", "ConditionCheck"]))
        action: dict[str, Any] = {"TableName": table}
        if action_kind == "Put":
            action["Item"] = {**_key(action_key), "v": action_value}
        else:
            action["Key"] = _key(action_key)
        if action_kind == "Update":
            action["UpdateExpression"] = "ADD n :one SET v = :v"
            action["ExpressionAttributeValues"] = {":one": {"N": "1"}, ":v": action_value}
        action_condition = draw(conditions)
        if action_kind == "ConditionCheck" and action_condition is None:
            action_condition = "attribute_exists(PK)"
        action = _guard(action_condition, action, action_value)
        if draw(st.booleans()):
            action["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        actions.append({action_kind: action})
    return {"TransactItems": actions, "ClientRequestToken": draw(st.sampled_from(["", "t1"])) or None}


def _query_request(draw: st.DrawFn, key: tuple[str, str], table: str, value: Any, condition: Any) -> Any:
    payload: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": key[0]}},
        "ScanIndexForward": draw(st.booleans()),
    }
    if draw(st.booleans()):
        payload["Limit"] = draw(st.integers(min_value=1, max_value=3))
    if draw(st.booleans()):
        payload["IndexName"] = "by-day"
        payload["KeyConditionExpression"] = "#d = :pk"
        payload["ExpressionAttributeNames"] = {"#d": "day"}
        payload["ExpressionAttributeValues"] = {":pk": {"S": "d1"}}
    return payload


def _scan_request(draw: st.DrawFn, key: tuple[str, str], table: str, value: Any, condition: Any) -> Any:
    return {"TableName": table, "Select": draw(st.sampled_from(["ALL_ATTRIBUTES", "COUNT"]))}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(
        st.sampled_from(
            ["PutItem", "UpdateItem", "DeleteItem", "GetItem", "BatchGetItem", "TransactWriteItems", "Query", "Scan"]
        )
    )
    key = draw(st.sampled_from(KEYS))
    table = draw(st.sampled_from([TABLE] * 7 + ["no-such-table"]))
    value = draw(values)
    condition = draw(conditions)
    builders = {
        "PutItem": _put_item_request,
        "UpdateItem": _update_item_request,
        "DeleteItem": _delete_item_request,
        "GetItem": _get_item_request,
        "BatchGetItem": _batch_get_item_request,
        "TransactWriteItems": _transact_write_items_request,
        "Query": _query_request,
        "Scan": _scan_request,
    }
    return kind, builders[kind](draw, key, table, value, condition)


def _clear(apps: dict[str, Any]) -> None:
    for item in _ddb(apps, "Scan", {"TableName": TABLE})["Items"]:
        _ddb(apps, "DeleteItem", {"TableName": TABLE, "Key": {"PK": item["PK"], "SK": item["SK"]}})


def _stream_records(apps: dict[str, Any]) -> None:
    """Every record of the table's stream, read through DynamoDB Streams on both sides."""
    iterators = {}
    for variant in ("stock", "fast"):
        environ = _environ(variant, "DynamoDB_20120810.DescribeTable", {"TableName": TABLE})
        with moto_speedups.without_speedups() if variant == "stock" else contextlib.nullcontext():
            described = json.loads(call_wsgi(apps[variant], environ)[2])
            arn = described["Table"]["LatestStreamArn"]
            environ = _environ(variant, "DynamoDBStreams_20120810.DescribeStream", {"StreamArn": arn})
            shard = json.loads(call_wsgi(apps[variant], environ)[2])["StreamDescription"]["Shards"][0]["ShardId"]
            environ = _environ(
                variant,
                "DynamoDBStreams_20120810.GetShardIterator",
                {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"},
            )
            iterators[variant] = json.loads(call_wsgi(apps[variant], environ)[2])["ShardIterator"]
    replies = {}
    for variant in ("stock", "fast"):
        environ = _environ(variant, "DynamoDBStreams_20120810.GetRecords", {"ShardIterator": iterators[variant]})
        assert dynamodb_backend_of(environ) == "dynamodbstreams"
        with moto_speedups.without_speedups() if variant == "stock" else contextlib.nullcontext():
            replies[variant] = _normalised(variant, *call_wsgi(apps[variant], environ))
    assert replies["fast"] == replies["stock"], _first_difference(replies["fast"][2], replies["stock"][2])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(requests(), min_size=1, max_size=12))
def test_random_requests_answer_as_moto_does(apps: dict[str, Any], table: str, batch: list[Any]) -> None:
    _clear(apps)
    for operation, payload in batch:
        _ddb(apps, operation, payload)
    _stream_records(apps)


def test_malformed_and_odd_requests_answer_as_moto_does(apps: dict[str, Any], table: str) -> None:
    target = "DynamoDB_20120810.GetItem"
    _both(apps, target, None, raw=b"{not json")
    _both(apps, target, None, raw=b"")
    _both(apps, target, None, raw=b"null")
    _both(apps, target, {"TableName": TABLE, "Key": {"PK": {"S": "m#1"}, "SK": {"S": "balance"}}, "Unknown": 1})
    _both(apps, target, {"TableName": TABLE, "Key": {"PK": {"S": "m#1"}, "SK": {"N": "1"}}})
    _both(apps, "DynamoDB_20120810.NoSuchOperation", {"TableName": TABLE})
    _both(apps, "DynamoDB_20120810.DescribeTable", {"TableName": "no-such-table"})
    _both(apps, "DynamoDB_20120810.ListTables", {})
    _both(apps, "DynamoDB_20120810.PutItem", {"TableName": TABLE, "Item": {"PK": {"S": ""}, "SK": {"S": "x"}}})
    _both(
        apps,
        "DynamoDB_20120810.PutItem",
        {"TableName": TABLE, "Item": {"PK": {"S": "k"}, "SK": {"S": "x"}, "s": {"SS": []}}},
    )
    _both(apps, "DynamoDB_20120810.BatchGetItem", {"RequestItems": {}})
    # Conditions and filters, each twice (the second is remembered), unused names and values too.
    key = _key(KEYS[0])
    for _ in range(2):
        for extra_names, extra_values in (({}, {}), ({"#x": "x"}, {}), ({}, {":x": {"N": "1"}})):
            condition = {
                "ConditionExpression": "attribute_not_exists(#p) OR #v < :limit",
                "ExpressionAttributeNames": {"#p": "PK", "#v": "v", **extra_names},
                "ExpressionAttributeValues": {":limit": {"N": "3"}, **extra_values},
            }
            _both(
                apps, "DynamoDB_20120810.PutItem", {"TableName": TABLE, "Item": {**key, "v": {"N": "1"}}, **condition}
            )
            _both(
                apps,
                "DynamoDB_20120810.UpdateItem",
                {"TableName": TABLE, "Key": key, "UpdateExpression": "SET #v = #v + :limit", **condition},
            )
            _both(
                apps,
                "DynamoDB_20120810.Query",
                {
                    "TableName": TABLE,
                    "KeyConditionExpression": "PK = :pk",
                    "FilterExpression": "#v < :limit",
                    "ExpressionAttributeNames": {"#v": "v", **extra_names},
                    "ExpressionAttributeValues": {":pk": {"S": KEYS[0][0]}, ":limit": {"N": "9"}, **extra_values},
                },
            )


def test_requests_moto_would_route_elsewhere_are_left_to_moto() -> None:
    environ = _environ("fast", "DynamoDB_20120810.GetItem", {})
    assert dynamodb_backend_of(environ) == "dynamodb"
    for change in (
        {"REQUEST_METHOD": "GET"},
        {"PATH_INFO": "/other"},
        {"QUERY_STRING": "Action=GetItem"},
        {"HTTP_ORIGIN": "http://localhost"},
        {"HTTP_X_AMZ_TARGET": "DynamoDB_20111205.GetItem"},
        {"HTTP_X_AMZ_TARGET": "AmazonSQS.SendMessage"},
        {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIA/20261207/eu-south-1/sqs/aws4_request, S=1"},
        {"HTTP_AUTHORIZATION": "AWS AKIA:signature"},
    ):
        assert dynamodb_backend_of({**environ, **change}) is None, change
    del environ["HTTP_AUTHORIZATION"]
    assert dynamodb_backend_of(environ) is None


def test_fast_path_is_taken(apps: dict[str, Any], table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast side does not quietly go through moto's Flask app (else the test above proves nothing)."""
    inner = apps["fast"]._app  # noqa: SLF001

    def refuse(*_: Any) -> Iterator[bytes]:
        raise AssertionError("routed through moto's server app")

    monkeypatch.setattr(apps["fast"], "_app", refuse)
    try:
        status, _, body = call_wsgi(
            apps["fast"], _environ("fast", "DynamoDB_20120810.GetItem", {"TableName": TABLE, "Key": _key(KEYS[0])})
        )
    finally:
        monkeypatch.setattr(apps["fast"], "_app", inner)
    assert status.startswith("200"), body


def test_compiled_reader_and_writer_serve_the_pipeline_s_requests(
    apps: dict[str, Any], table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's own shape walkers are not called for the requests the pipeline makes."""
    from moto.core.parse import JSONParser
    from moto.core.serialize import JSONSerializer

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("moto's own shape walk was used")

    monkeypatch.setattr(JSONParser, "parse", refuse)
    monkeypatch.setattr(JSONSerializer, "serialize", refuse)
    key = _key(KEYS[0])
    for operation, payload in (
        ("PutItem", {"TableName": TABLE, "Item": {**key, "b": {"B": "AAE="}, "l": {"L": [{"M": {"n": {"N": "1"}}}]}}}),
        ("GetItem", {"TableName": TABLE, "Key": key}),
        ("BatchGetItem", {"RequestItems": {TABLE: {"Keys": [key]}}}),
        (
            "UpdateItem",
            {
                "TableName": TABLE,
                "Key": key,
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
                "ReturnValues": "ALL_NEW",
            },
        ),
        ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": TABLE, "Item": {**key, "v": {"N": "1"}}}}]}),
    ):
        status, _, body = call_wsgi(apps["fast"], _environ("fast", f"DynamoDB_20120810.{operation}", payload))
        assert status.startswith("200"), body


def test_the_random_requests_reached_successes_and_errors_alike() -> None:
    """Runs after the random test (same module): the comparison covered every kind of answer."""
    if not OUTCOMES:
        pytest.skip("run with the random test")
    errors = {error for (_, _, error) in OUTCOMES if error}
    print(sorted(OUTCOMES.items()))
    assert {"ConditionalCheckFailedException", "TransactionCanceledException", "ValidationException"} <= errors
    assert "ResourceNotFoundException" in errors
    assert any(status.startswith("200") for (_, status, _) in OUTCOMES)
