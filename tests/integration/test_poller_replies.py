"""The pollers' direct reading of GetRecords and ReceiveMessage replies against botocore's parser."""

from __future__ import annotations

import random
import string
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from pointbridge.sandbox.sources import (
    _jsonable,
    botocore_sqs_messages,
    botocore_stream_records,
    sqs_messages,
    sqs_record,
    stream_records,
)
from tests.support.moto_diff import stream_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.literals import StreamViewTypeType

# mock_aws leaves the client's default endpoint for DynamoDB Streams unrouted; this one is routed.
STREAMS_ENDPOINT = "https://streams.dynamodb.us-east-1.amazonaws.com"


def _text(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + ' "\\/\n\té€😀'
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def _number(rng: random.Random) -> str:
    return rng.choice(["0", "-1", "3.25", "1e10", "123456789012345678901234567890", str(rng.randint(-999, 999))])


def _value(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kinds = ["S", "N", "B", "SS", "NS", "BS", "NULL", "BOOL"] + (["M", "L"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "S":
        return {"S": _text(rng)}
    if kind == "N":
        return {"N": _number(rng)}
    if kind == "B":
        return {"B": rng.randbytes(rng.randint(0, 9))}
    if kind == "SS":
        return {"SS": sorted({_text(rng) + "s" for _ in range(rng.randint(1, 3))})}
    if kind == "NS":
        return {"NS": sorted({str(rng.randint(0, 99)) for _ in range(rng.randint(1, 3))})}
    if kind == "BS":
        return {"BS": list({rng.randbytes(rng.randint(1, 5)) for _ in range(rng.randint(1, 3))})}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "M":
        return {"M": {_text(rng) or "k": _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}}
    return {"L": [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]}


def _item(rng: random.Random, key: str) -> dict[str, Any]:
    item = {"pk": {"S": key}}
    for _ in range(rng.randint(0, 6)):
        item[rng.choice(["a", "b", "B", "BS", "type", "nested", "_n"])] = _value(rng)
    return item


def _writes(client: Any, rng: random.Random, count: int) -> None:
    keys = [f"k{i}" for i in range(8)]
    for _ in range(count):
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.6:
            client.put_item(TableName="t", Item=_item(rng, key))
        elif roll < 0.85:
            client.update_item(
                TableName="t",
                Key={"pk": {"S": key}},
                UpdateExpression="SET #c = :v ADD tally :one",
                ExpressionAttributeNames={"#c": rng.choice(["a", "c", "B"])},
                ExpressionAttributeValues={":v": _value(rng), ":one": {"N": str(Decimal(rng.randint(1, 5)))}},
            )
        else:
            client.delete_item(TableName="t", Key={"pk": {"S": key}})


@pytest.mark.parametrize("view", ["NEW_AND_OLD_IMAGES", "NEW_IMAGE", "OLD_IMAGE", "KEYS_ONLY"])
@pytest.mark.parametrize("seed", range(6))
def test_records_read_from_the_reply_are_what_botocore_and_jsonable_give(seed: int, view: StreamViewTypeType) -> None:
    rng = random.Random(seed)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        stream_table(ddb, view)
        streams = boto3.client("dynamodbstreams", region_name="us-east-1", endpoint_url=STREAMS_ENDPOINT)
        bodies: list[bytes] = []

        def keep_body(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
            if operation_model.name == "GetRecords":
                bodies.append(response_dict["body"])

        streams.meta.events.register("before-parse", keep_body)
        arn = ddb.describe_table(TableName="t")["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        seen = 0
        for _ in range(4):
            _writes(ddb, rng, rng.randint(0, 25))
            page = streams.get_records(ShardIterator=iterator, Limit=rng.choice([5, 1000]))
            body = bodies[-1]

            direct, following = stream_records(body)

            assert direct == [_jsonable(r) for r in page["Records"]]
            assert (direct, following) == botocore_stream_records(body)
            assert following == page["NextShardIterator"]
            seen += len(direct)
            iterator = following
        assert seen > 0


def test_a_reply_with_members_botocore_does_not_keep_is_read_by_botocore() -> None:
    body = (
        b'{"Records": [{"eventID": "1", "eventName": "INSERT", "extra": 1, "dynamodb": {"SequenceNumber": "5",'
        b' "ApproximateCreationDateTime": 1733600000.5, "Keys": {"pk": {"S": "a"}}}}], "NextShardIterator": "it"}'
    )
    with pytest.raises(ValueError, match="does not keep"):
        stream_records(body)
    records, following = botocore_stream_records(body)
    assert records == [
        {
            "eventID": "1",
            "eventName": "INSERT",
            "dynamodb": {"SequenceNumber": "5", "ApproximateCreationDateTime": 1733600000, "Keys": {"pk": {"S": "a"}}},
        }
    ]
    assert following == "it"


def _attribute(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["String", "Number", "Binary", "String.custom", "Binary.png"])
    if kind.startswith("Binary"):
        return {"DataType": kind, "BinaryValue": rng.randbytes(rng.randint(1, 9))}
    return {"DataType": kind, "StringValue": str(rng.randint(-50, 50)) if kind == "Number" else _text(rng) + "v"}


@pytest.mark.parametrize("seed", range(6))
def test_messages_read_from_the_reply_are_what_botocore_gives(seed: int) -> None:
    rng = random.Random(seed)
    with mock_aws():
        sqs: Any = boto3.client("sqs", region_name="us-east-1")
        bodies: list[bytes] = []

        def keep_body(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
            if operation_model.name == "ReceiveMessage":
                bodies.append(response_dict["body"])

        sqs.meta.events.register("before-parse", keep_body)
        queue = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
        received = 0
        for _ in range(6):
            for _ in range(rng.randint(0, 12)):
                attributes = {f"a{i}": _attribute(rng) for i in range(rng.randint(0, 3))}
                body = rng.choice([_text(rng) + ".", '{"event": {"x": 1}}'])
                sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attributes)
            page = sqs.receive_message(
                QueueUrl=queue,
                MaxNumberOfMessages=rng.randint(1, 10),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )

            direct = sqs_messages(bodies[-1])

            assert direct == page.get("Messages", [])
            assert direct == botocore_sqs_messages(bodies[-1])
            assert [sqs_record(m, "arn", "us-east-1") for m in direct] == [
                sqs_record(m, "arn", "us-east-1") for m in page.get("Messages", [])
            ]
            received += len(direct)
        assert received > 0
