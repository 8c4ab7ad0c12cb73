"""Event source mappings: SQS, S3 (through a hidden SQS queue) and DynamoDB streams.

moto's own event-source mapping needs Docker and invokes one record at a time, ignoring
`batchItemFailures`, so the sandbox polls like Lambda's pollers do and follows AWS's batch rules.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote_plus, unquote_plus

from pointbridge.sandbox.runtime import InvocationError

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("pointbridge.sandbox")

EMPTY_POLL_PAUSE = 0.2


class Invoker(Protocol):
    def __call__(self, logical_id: str, event: Any, source: str, batch_size: int) -> Any: ...


class Poller:
    """One thread per mapping. `epoch` counts polls that found nothing to do, for wait_for_idle."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.epoch = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poller-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.poll_once()
            except Exception:
                # The emulator is going away during stop, or a transient error: keep polling.
                if self._stop.is_set():
                    return
                log.exception("sandbox: poller %s failed; retrying", self.name)
                busy = False
            if not busy:
                self.epoch += 1
                self._stop.wait(EMPTY_POLL_PAUSE)

    def poll_once(self) -> bool:
        raise NotImplementedError

    def drained(self) -> bool:
        return True


def _message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Lambda's shape: lower-camel keys, binary as base64, list fields always present."""
    shaped = {}
    for name, value in attributes.items():
        item: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            item["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        shaped[name] = item
    return shaped


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_item_ids(reply: Any, known: set[str]) -> set[str] | None:
    """The identifiers a partial batch reply lists, or None when the reply fails the whole batch."""
    if reply is None:
        return set()
    if not isinstance(reply, dict):
        return None
    failures = reply.get("batchItemFailures")
    if failures is None:
        return set()  # Lambda treats a reply without the key as complete success
    if not isinstance(failures, list):
        return None
    ids: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or not identifier or identifier not in known:
            return None
        ids.add(identifier)
    return ids


class SqsPoller(Poller):
    def __init__(
        self,
        *,
        sqs: Any,
        function: str,
        queue_url: str,
        queue_arn: str,
        region: str,
        invoke: Invoker,
        batch_size: int = 10,
        window_s: float = 0,
        report_failures: bool = False,
        source: str = "sqs",
        shape: Callable[[list[dict[str, Any]]], list[Any]] | None = None,
    ) -> None:
        super().__init__(f"{function}<-{queue_arn.rsplit(':', 1)[-1]}")
        self.sqs = sqs
        self.function = function
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self.invoke = invoke
        self.batch_size = batch_size
        self.window_s = window_s
        self.report_failures = report_failures
        self.source = source
        self.shape = shape

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.window_s
        while len(messages) < self.batch_size and not self._stop.is_set():
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                # Never long-poll: the emulator's lock would be held for the whole wait.
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            # A message whose visibility ran out during the window comes back: keep its newest receipt.
            seen = {m["MessageId"] for m in got}
            messages = [m for m in messages if m["MessageId"] not in seen] + got
            if time.monotonic() >= deadline or (not got and not messages):
                break
            if not got:
                time.sleep(EMPTY_POLL_PAUSE)
        return messages

    def poll_once(self) -> bool:
        messages = self._receive()
        if not messages:
            return False
        records = [sqs_record(m, self.queue_arn, self.region) for m in messages]
        if self.shape is not None:
            self._deliver_each(messages)
            return True
        by_id = {r["messageId"]: r for r in records}
        try:
            reply = self.invoke(self.function, {"Records": records}, self.source, len(records))
        except InvocationError:
            return True  # the whole batch becomes visible again after the visibility timeout
        failed = failed_item_ids(reply, set(by_id)) if self.report_failures else set()
        if failed is None:
            log.warning("sandbox: %s returned a malformed batch reply; the whole batch fails", self.function)
            return True
        done = [r for r in records if r["messageId"] not in failed]
        self._delete(done)
        return True

    def _deliver_each(self, messages: list[dict[str, Any]]) -> None:
        # Asynchronous sources (S3): one invocation per notification, retried twice, then dropped.
        assert self.shape is not None
        for message in messages:
            events = self.shape([message])
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            ok = True
            for event in events:
                try:
                    self.invoke(self.function, event, self.source, len(event.get("Records", [])))
                except InvocationError:
                    ok = False
            if ok or count >= 3:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            if chunk:
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
                )

    def drained(self) -> bool:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            attributes["ApproximateNumberOfMessages"] == "0"
            and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
        )


def s3_events(messages: list[dict[str, Any]]) -> list[Any]:
    events = []
    for message in messages:
        body = json.loads(message["Body"])
        if "Records" not in body:  # moto also sends an s3:TestEvent when notifications are configured
            continue
        for record in body["Records"]:
            # moto encodes '/' as %2F; AWS form-encodes the key but leaves the slashes.
            obj = record["s3"]["object"]
            obj["key"] = quote_plus(unquote_plus(obj["key"]), safe="/")
        events.append(body)
    return events


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class StreamPoller(Poller):
    """One DynamoDB stream; records not yet processed stay in `pending` (the checkpoint)."""

    def __init__(
        self,
        *,
        streams: Any,
        function: str,
        stream_arn: str,
        region: str,
        invoke: Invoker,
        batch_size: int = 100,
        report_failures: bool = False,
        max_retries: int = -1,
    ) -> None:
        super().__init__(f"{function}<-stream")
        self.streams = streams
        self.function = function
        self.stream_arn = stream_arn
        self.region = region
        self.invoke = invoke
        self.batch_size = batch_size
        self.report_failures = report_failures
        self.max_retries = max_retries
        self.pending: list[dict[str, Any]] = []
        self._iterators: dict[str, str] = {}
        self._attempts = 0

    def position_at_latest(self) -> None:
        """Start after what is already in the stream (restored items are not new writes)."""
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            self._iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]

    def _fetch(self) -> None:
        for shard_id, iterator in list(self._iterators.items()):
            page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = page.get("NextShardIterator", iterator)
            for record in page.get("Records", []):
                shaped = _jsonable(record)
                shaped["eventSourceARN"] = self.stream_arn
                shaped.setdefault("awsRegion", self.region)
                self.pending.append(shaped)

    def poll_once(self) -> bool:
        if len(self.pending) < self.batch_size:
            self._fetch()
        if not self.pending:
            return False
        batch = self.pending[: self.batch_size]
        by_seq = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
        try:
            reply = self.invoke(self.function, {"Records": batch}, "dynamodb", len(batch))
            failed = failed_item_ids(reply, set(by_seq)) if self.report_failures else set()
        except InvocationError:
            failed = None
        if failed == set():
            self.pending = self.pending[len(batch) :]
            self._attempts = 0
            return True
        self._attempts += 1
        if 0 <= self.max_retries < self._attempts:
            log.warning("sandbox: %s dropped a stream batch after %d retries", self.function, self.max_retries)
            self.pending = self.pending[len(batch) :]
            self._attempts = 0
            return True
        if failed:
            # Lambda checkpoints before the lowest failed sequence number and retries from there.
            self.pending = self.pending[min(by_seq[s] for s in failed) :]
        self._stop.wait(0.5)
        return True

    def drained(self) -> bool:
        return not self.pending
