"""Stream records packed and trimmed after 24 hours (moto_streams) against moto as it ships."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.utils import unix_time
from moto.dynamodb.models import dynamodb_backends
from moto.moto_api._internal import mock_random

from pointbridge.sandbox import moto_streams
from tests.support.moto_diff import stream_table

if TYPE_CHECKING:
    from collections.abc import Iterator

# mock_aws leaves the client's default endpoint for DynamoDB Streams unrouted; this one is routed.
STREAMS_ENDPOINT = "https://streams.dynamodb.us-east-1.amazonaws.com"


def _value(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kind = rng.choice(["S", "N", "B", "SS", "NS", "BS", "NULL", "BOOL"] + (["M", "L"] if depth < 2 else []))
    values: dict[str, Any] = {
        "S": lambda: rng.choice(["", "a", "é€😀", 'q"uote\\']),
        "N": lambda: rng.choice(["0", "-1.5", "1e10", str(rng.randint(-99, 99))]),
        "B": lambda: rng.randbytes(rng.randint(0, 6)),
        "SS": lambda: ["x", "y"][: rng.randint(1, 2)],
        "NS": lambda: ["1", "2"][: rng.randint(1, 2)],
        "BS": lambda: [b"\x00", b"\xff"][: rng.randint(1, 2)],
        "NULL": lambda: True,
        "BOOL": lambda: rng.random() < 0.5,
        "M": lambda: {k: _value(rng, depth + 1) for k in rng.sample(["a", "b", "c"], rng.randint(0, 3))},
        "L": lambda: [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
    }
    return {kind: values[kind]()}


def _write(ddb: Any, rng: random.Random) -> None:
    key = {"pk": {"S": f"k{rng.randint(0, 5)}"}}
    roll = rng.random()
    if roll < 0.55:
        ddb.put_item(TableName="t", Item=key | {rng.choice("abc"): _value(rng) for _ in range(rng.randint(0, 4))})
    elif roll < 0.8:
        ddb.update_item(
            TableName="t",
            Key=key,
            UpdateExpression="SET #c = :v",
            ExpressionAttributeNames={"#c": rng.choice("abc")},
            ExpressionAttributeValues={":v": _value(rng)},
        )
    elif roll < 0.9:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "tx"}, "a": _value(rng)}}},
                {"Delete": {"TableName": "t", "Key": key}},
            ]
        )
    else:
        ddb.delete_item(TableName="t", Key=key)


def _shard_id(streams: Any, arn: str) -> str:
    return str(streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"])


def _comparable(records: list[dict[str, Any]], held: bool = False) -> list[dict[str, Any]]:
    """Creation times differ between two runs, and moto's SizeBytes counts the time's printed length
    (1.5 vs 1.25): compared without both, SizeBytes less that length where the exact time is known
    (the records held), else not at all (botocore rounds the time to microseconds)."""

    def size(stream: dict[str, Any]) -> int | None:
        if not held:
            return None
        return int(stream["SizeBytes"]) - len(json.dumps(unix_time(stream["ApproximateCreationDateTime"])))

    return [
        {**r, "dynamodb": {**r["dynamodb"], "ApproximateCreationDateTime": None, "SizeBytes": size(r["dynamodb"])}}
        for r in records
    ]


def _run(seed: int, view: str) -> list[Any]:
    rng = random.Random(seed)
    mock_random.seed(seed)
    replies: list[Any] = []
    with mock_aws():
        ddb: Any = boto3.client("dynamodb", region_name="us-east-1")
        streams: Any = boto3.client("dynamodbstreams", region_name="us-east-1", endpoint_url=STREAMS_ENDPOINT)
        arn = stream_table(ddb, view)
        shard = _shard_id(streams, arn)
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        iterator = iterator["ShardIterator"]
        for _ in range(5):
            for _ in range(rng.randint(0, 12)):
                _write(ddb, rng)
            page = streams.get_records(ShardIterator=iterator, Limit=rng.choice([3, 1000]))
            replies.append(_comparable(page["Records"]))
            iterator = page["NextShardIterator"]
        held = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables["t"].stream_shard
        assert held is not None
        replies.append(_comparable([r.to_json() for r in held.items], held=True))
        replies.append(streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"])
    return replies


@pytest.fixture
def moto_as_shipped() -> Iterator[None]:
    moto_streams.uninstall()
    try:
        yield
    finally:
        moto_streams.install()


@pytest.mark.parametrize("view", ["NEW_AND_OLD_IMAGES", "KEYS_ONLY", "NEW_IMAGE"])
@pytest.mark.parametrize("seed", range(5))
def test_packed_records_read_as_moto_keeps_them(
    seed: int, view: str, moto_as_shipped: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = _run(seed, view)
    # Every record packed as soon as it is written, or all but the newest three.
    monkeypatch.setattr(moto_streams, "UNPACKED_TAIL", seed % 2 * 3)
    moto_streams.install()
    try:
        packed = _run(seed, view)
    finally:
        moto_streams.uninstall()
    assert packed == shipped
    assert sum(len(r) for r in shipped[:5]) > 0


def test_a_record_is_packed_and_unpacked_as_moto_built_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_streams, "UNPACKED_TAIL", 0)
    with mock_aws():
        ddb: Any = boto3.client("dynamodb", region_name="us-east-1")
        stream_table(ddb)
        ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "b": {"B": b"\x01"}, "m": {"M": {"x": {"NULL": True}}}})
        (record,) = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables["t"].stream_shard.items  # type: ignore[union-attr]
        assert "record" not in vars(record)  # kept as bytes
        first = record.to_json()
        first["dynamodb"]["NewImage"]["pk"]["S"] = "changed by a reader"
        assert record.to_json()["dynamodb"]["NewImage"]["pk"] == {"S": "a"}
        assert list(record.to_json()["dynamodb"]) == [
            "StreamViewType",
            "ApproximateCreationDateTime",
            "SequenceNumber",
            "SizeBytes",
            "Keys",
            "NewImage",
        ]


def _read(streams: Any, iterator: str) -> list[dict[str, Any]] | str:
    try:
        return list(streams.get_records(ShardIterator=iterator, Limit=1000)["Records"])
    except ClientError as error:
        return str(error.response["Error"]["Code"])


def _age(record: Any, by: timedelta) -> None:
    if "_packed" in vars(record):
        record._created -= by
    else:
        record.record["dynamodb"]["ApproximateCreationDateTime"] -= by


def test_reads_after_a_trim_return_what_they_did_for_every_iterator_still_valid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(moto_streams, "UNPACKED_TAIL", 10)  # some records packed, the newest not
    rng = random.Random(7)
    with mock_aws():
        ddb: Any = boto3.client("dynamodb", region_name="us-east-1")
        streams: Any = boto3.client("dynamodbstreams", region_name="us-east-1", endpoint_url=STREAMS_ENDPOINT)
        arn = stream_table(ddb)
        shard_id = _shard_id(streams, arn)
        described = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        for _ in range(30):
            ddb.put_item(TableName="t", Item={"pk": {"S": f"k{rng.randint(0, 9)}"}, "a": _value(rng)})
        shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables["t"].stream_shard
        assert shard is not None
        first = shard.starting_sequence_number
        sequence = [str(first + i) for i in range(30)]

        def iterator(kind: str, at: str | None = None) -> str:
            extra = {"SequenceNumber": at} if at is not None else {}
            reply = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType=kind, **extra)
            return str(reply["ShardIterator"])

        iterators: dict[tuple[str, str | None], str] = {
            ("TRIM_HORIZON", None): iterator("TRIM_HORIZON"),
            ("LATEST", None): iterator("LATEST"),
        }
        for i in (0, 5, 11, 12, 13, 29):
            for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
                iterators[(kind, sequence[i])] = iterator(kind, sequence[i])
        for _ in range(5):
            ddb.put_item(TableName="t", Item={"pk": {"S": "late"}, "a": _value(rng)})
        before = {name: _read(streams, it) for name, it in iterators.items()}
        everything = before[("TRIM_HORIZON", None)]
        assert isinstance(everything, list) and len(everything) == 35

        # The first 12 records were written over a day ago: the next stream request trims them.
        assert any("_packed" in vars(r) for r in shard.items) and "_packed" not in vars(shard.items[-1])
        for record in shard.items[:12]:
            _age(record, timedelta(hours=24, seconds=1))
        after = {name: _read(streams, it) for name, it in iterators.items()}

        assert len(shard.items) == 23 and shard.starting_sequence_number == first + 12
        for (kind, at), records in after.items():
            position = {"TRIM_HORIZON": first, "LATEST": first + 30}.get(kind) or int(at or 0) + (
                kind == "AFTER_SEQUENCE_NUMBER"
            )
            if position >= first + 12:
                assert records == before[(kind, at)], (kind, at)
            else:
                assert records == "TrimmedDataAccessException", (kind, at)
        assert _read(streams, iterator("TRIM_HORIZON")) == everything[12:]
        assert _read(streams, iterator("AT_SEQUENCE_NUMBER", sequence[3])) == "TrimmedDataAccessException"
        assert streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"] == described
        # New records go on numbering from where the stream stood.
        ddb.put_item(TableName="t", Item={"pk": {"S": "next"}})
        assert _read(streams, iterator("AT_SEQUENCE_NUMBER", str(first + 35)))[0]["dynamodb"]["Keys"] == {  # type: ignore[index]
            "pk": {"S": "next"}
        }


def test_records_younger_than_a_day_are_kept() -> None:
    with mock_aws():
        ddb: Any = boto3.client("dynamodb", region_name="us-east-1")
        stream_table(ddb)
        ddb.put_item(TableName="t", Item={"pk": {"S": "a"}})
        shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables["t"].stream_shard
        assert shard is not None
        now = moto_streams.created_at(shard.items[0])
        assert moto_streams.trim(shard, now + timedelta(hours=23, minutes=59)) == 0
        assert moto_streams.trim(shard, now + timedelta(hours=24, microseconds=1)) == 1


def test_the_newest_records_stay_unpacked_and_older_ones_are_packed_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_streams, "UNPACKED_TAIL", 4)
    with mock_aws():
        ddb: Any = boto3.client("dynamodb", region_name="us-east-1")
        stream_table(ddb)
        shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables["t"].stream_shard
        assert shard is not None

        def packed() -> list[bool]:
            return ["_packed" in vars(r) for r in shard.items]

        for i in range(7):
            ddb.put_item(TableName="t", Item={"pk": {"S": f"k{i}"}})
        assert packed() == [False] * 7  # three behind the newest four: not yet a batch of four
        ddb.put_item(TableName="t", Item={"pk": {"S": "k7"}})
        assert packed() == [True] * 4 + [False] * 4
        assert [r.to_json()["dynamodb"]["Keys"]["pk"]["S"] for r in shard.items] == [f"k{i}" for i in range(8)]
