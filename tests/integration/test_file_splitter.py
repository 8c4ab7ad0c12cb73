"""The file splitter under moto (issue 12, "Big files"): chunked, checkpointed, resumable, reported.

A file is queued a chunk at a time behind a checkpoint per chunk; a run stopped at any step of any
chunk (before the send, during it, after it but before the checkpoint) or by the clock is resumed
by the next invocation without queueing a finished chunk again, and the report is written every
time, with every refused line and why.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from functions.services import reset, services
from shared.files.splitter import FileNotFinishedError, SplitterLimits, file_id
from tests.integration.channel_fixtures import SOURCES, acme
from tests.support.aws import create_table
from tests.support.iam import template_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from shared.earning.core import Event

KEY = "partners/skyair/feed-2026-12-07.csv"
CHUNK_LINES = 40


@dataclass
class Context:
    """What the handler reads of Lambda's context; `seconds_left` plays the clock."""

    seconds_left: float = 300.0
    function_name: str = "files"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:files"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds_left * 1000)


@dataclass
class Bucket:
    s3: Any
    sqs: Any
    name: str
    queue: str

    def drop(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.name, Key=key, Body=body)

    def report(self, key: str = KEY) -> dict[str, Any]:
        return dict(json.loads(self.s3.get_object(Bucket=self.name, Key=f"reports/{key}.json")["Body"].read()))

    def queued(self) -> Counter[str]:
        """How many times each event id was queued (the queue is emptied)."""
        seen: Counter[str] = Counter()
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
            for message in got.get("Messages", []):
                event = json.loads(message["Body"])["event"]
                seen[event["external_id"]] += 1
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
            if not got.get("Messages"):
                return seen

    def checkpoints(self, key: str = KEY) -> dict[int, Any]:
        etag = self.s3.head_object(Bucket=self.name, Key=key)["ETag"].strip('"')
        return services().file_runs.checkpoints(file_id(self.name, key, etag))


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    with mock_aws():
        create_table(boto3.client("dynamodb"), "points-test")
        sqs, s3 = boto3.client("sqs"), boto3.client("s3")
        queue = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        name = template_name("FilesBucket")
        s3.create_bucket(Bucket=name)
        for variable, value in {
            "TABLE_NAME": "points-test",
            "INGEST_QUEUE_URL": queue,
            "INGEST_DLQ_URL": queue,
            "IDENTITY_HASH_KEY": "identity-key",
            "SOURCES": json.dumps(SOURCES),
            "FILES_CHUNK_LINES": str(CHUNK_LINES),
            "FILES_PARALLEL_CHUNKS": "3",
            "FILES_TIME_MARGIN_S": "60",
        }.items():
            monkeypatch.setenv(variable, value)
        from shared.infra.settings import get_settings

        get_settings.cache_clear()
        reset()
        services().programs.publish(acme())
        yield Bucket(s3, sqs, name, queue)
        reset()


def feed(rows: int, *, bad_every: int = 0, multiline: bool = True) -> bytes:
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    lines = ["partner_member_id,external_id,occurred_at,points,reason"]
    for i in range(rows):
        points = "-5" if bad_every and i % bad_every == bad_every - 1 else str(1 + i % 9)
        reason = '"two\nlines"' if multiline and i % 17 == 0 else "flight"
        lines.append(f"AIR-{i % 23},tx-{i},{at},{points},{reason}")
    return ("\n".join(lines) + "\n").encode()


def s3_event(bucket: str, key: str = KEY) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}},
            }
        ]
    }


def run(bucket: Bucket, context: Context | None = None, key: str = KEY) -> dict[str, Any]:
    from functions.files import app

    return dict(app.handler(s3_event(bucket.name, key), context or Context()))  # type: ignore[arg-type]


def test_every_good_row_is_queued_once_and_every_bad_line_reported(bucket: Bucket) -> None:
    # Given a 600-row partner feed (rows over two lines among them) with every 50th row refused
    bucket.drop(KEY, feed(600, bad_every=50))
    # When the splitter runs, in chunks of 40 lines, 3 at a time
    reply = run(bucket)
    # Then each good row is queued once, and the report names each refused physical line
    queued = bucket.queued()
    assert len(queued) == 588 and set(queued.values()) == {1}
    report = bucket.report()
    assert report["status"] == "complete" and report["accepted"] == 588
    assert report["chunks"] == report["chunks_done"] > 10 and report["invocations"] == 1
    assert [r["code"] for r in report["rejected"]] == ["amount_out_of_range"] * 12
    lines = feed(600, bad_every=50).decode().split("\n")
    assert all("tx-" in lines[r["line"] - 1] and ",-5," in lines[r["line"] - 1] for r in report["rejected"])
    assert reply["files"][0] == {"file": KEY, "status": "complete", "accepted": 588, "rejected": 12}
    assert all(c.status == "done" and c.attempts == 1 for c in bucket.checkpoints().values())


class Crash(Exception):
    """The process dying at a step boundary, as far as this run is concerned."""


def crashing_send(real: Callable[[Sequence[Event]], int], at_call: int, *, after: bool) -> Callable[..., int]:
    calls = 0

    def send(events: Sequence[Event]) -> int:
        nonlocal calls
        calls += 1
        if calls == at_call and not after:
            raise Crash(f"crash before chunk send {at_call}")
        sent = real(events)
        if calls == at_call:
            raise Crash(f"crash after chunk send {at_call}, before its checkpoint")
        return sent

    return send


@pytest.mark.parametrize("at_call", [1, 4, 9])
@pytest.mark.parametrize("after", [False, True])
def test_a_run_that_crashes_at_a_chunk_boundary_resumes_without_requeueing_finished_chunks(
    bucket: Bucket, at_call: int, after: bool
) -> None:
    # Given a 400-row feed (10 chunks of 40 rows), queued one chunk at a time: the crash point is exact
    bucket.drop(KEY, feed(400, multiline=False))
    limits = SplitterLimits(parallel_chunks=1, time_margin_s=0)
    splitter = services().file_splitter(bucket.name, limits)
    splitter.send = crashing_send(services().ingest_queue.send, at_call, after=after)
    from integrations.files import file_reader

    def reader() -> Any:
        return file_reader(KEY, services().sources, chunk_lines=CHUNK_LINES)

    # When the run crashes before (or just after) queueing its at_call-th chunk
    with pytest.raises(FileNotFinishedError):
        splitter.split(KEY, reader, datetime.now(UTC), lambda: 300.0)
    # Then the report says how far it got and why it stopped
    stopped = bucket.report()
    assert stopped["status"] == "incomplete" and stopped["chunks_done"] == at_call - 1
    assert "Crash" in stopped["reason"] and f"after {at_call - 1} of 10 chunks" in stopped["reason"]
    first = bucket.queued()
    # And when the event is delivered again
    run(bucket)
    # Then the finished chunks are not queued again; only the chunk caught mid-send is, whole
    again = bucket.queued()
    total = first + again
    assert len(total) == 400
    assert not set(first) & set(again) - {f"tx-{i}" for i in range((at_call - 1) * 40, at_call * 40)}
    assert sum(total.values()) == 400 + (40 if after else 0)
    checkpoints = bucket.checkpoints()
    assert [c.attempts for _, c in sorted(checkpoints.items())] == [2 if i == at_call - 1 else 1 for i in range(10)]
    report = bucket.report()
    assert report["status"] == "complete" and report["accepted"] == 400 and report["invocations"] == 2


def test_a_run_short_of_time_stops_at_a_chunk_boundary_and_the_retries_finish_it(bucket: Bucket) -> None:
    # Given a 400-row feed (10 chunks), and invocations that always seem about to time out
    bucket.drop(KEY, feed(400, multiline=False))
    short = Context(seconds_left=1)
    # When the event is delivered: each invocation queues one wave of 3 chunks, then stops
    reports = []
    for _ in range(3):
        with pytest.raises(FileNotFinishedError):
            run(bucket, short)
        reports.append(bucket.report())
    run(bucket, short)
    # Then every row is queued exactly once, over four invocations
    assert [r["chunks_done"] for r in reports] == [3, 6, 9]
    assert all(r["status"] == "incomplete" and "less than 60 s left" in r["reason"] for r in reports)
    queued = bucket.queued()
    assert len(queued) == 400 and set(queued.values()) == {1}
    final = bucket.report()
    assert final["status"] == "complete" and final["invocations"] == 4 and final["accepted"] == 400


def test_the_same_file_again_queues_nothing_and_new_bytes_start_a_new_run(bucket: Bucket) -> None:
    body = feed(100)
    bucket.drop(KEY, body)
    run(bucket)
    assert len(bucket.queued()) == 100
    # The same bytes dropped again (S3 redelivers, or the partner re-sends the file)
    bucket.drop(KEY, body)
    run(bucket)
    assert bucket.queued() == Counter()
    assert bucket.report()["invocations"] == 2 and bucket.report()["accepted"] == 100
    # A corrected file under the same name is a new run
    bucket.drop(KEY, feed(120))
    run(bucket)
    assert len(bucket.queued()) == 120 and bucket.report()["invocations"] == 1


def test_sqs_refusing_leaves_an_incomplete_report_and_the_retry_finishes(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket.drop(KEY, feed(100))
    queue = bucket.queue
    monkeypatch.setenv("INGEST_QUEUE_URL", queue.replace("/ingest", "/gone"))
    from shared.infra.settings import get_settings

    get_settings.cache_clear()
    reset()
    with pytest.raises(FileNotFinishedError):
        run(bucket)
    report = bucket.report()
    assert report["status"] == "incomplete" and report["chunks_done"] == 0
    assert "NonExistentQueue" in report["reason"] or "QueueDoesNotExist" in report["reason"]
    monkeypatch.setenv("INGEST_QUEUE_URL", queue)
    get_settings.cache_clear()
    reset()
    run(bucket)
    assert len(bucket.queued()) == 100 and bucket.report()["status"] == "complete"


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("partner_member_id,external_id,occurred_at,points\n".encode("utf-16"), 1, "file is UTF-16, not UTF-8"),
        (b"partner_member_id,external_id,occurred_at,points\xe9\nA,1,x,1\n", 1, "header line is not UTF-8 (byte 0xe9)"),
        (b"\n\n", 0, "file has no header row"),
        (b"", 0, "file has no header row"),
        (b"partner_member_id,points\nA,1\n", 1, "lacks required column(s) external_id, occurred_at"),
    ],
)
def test_a_file_that_cannot_be_read_as_a_whole_gets_a_report_saying_why(
    bucket: Bucket, body: bytes, line: int, reason: str
) -> None:
    bucket.drop(KEY, body)
    reply = run(bucket)
    report = bucket.report()
    assert report["status"] == "refused" and report["accepted"] == 0
    [refused] = report["rejected"]
    assert refused["line"] == line and reason in refused["reason"]
    assert reply["files"][0] == {"file": KEY, "status": "refused", "accepted": 0, "rejected": 1}
    assert bucket.queued() == Counter()


def test_a_row_that_is_not_utf8_costs_only_itself(bucket: Bucket) -> None:
    body = feed(100).replace(b"AIR-5,tx-5,", b"AIR-\xe95,tx-5,")
    bucket.drop(KEY, body)
    run(bucket)
    report = bucket.report()
    assert report["accepted"] == 99
    # tx-5 is on physical line 8: the header, then tx-0 over two lines, then tx-1..tx-4
    assert [(r["line"], r["reason"]) for r in report["rejected"]] == [(8, "line is not UTF-8 (byte 0xe9)")]


def test_a_file_with_no_feed_configured_is_reported_not_retried(bucket: Bucket) -> None:
    key = "partners/nobody/feed.csv"
    bucket.drop(key, feed(3))
    run(bucket, key=key)
    report = bucket.report(key)
    assert report["status"] == "refused" and report["rejected"][0]["code"] == "unknown_source"
    assert "nobody" in report["reason"]
