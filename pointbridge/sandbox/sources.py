"""Event source mappings: SQS, S3 (through a hidden SQS queue) and DynamoDB streams.

moto's own event-source mapping needs Docker and invokes one record at a time, ignoring
`batchItemFailures`, so the sandbox polls like Lambda's pollers do and follows AWS's batch rules.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote_plus, unquote_plus, urlsplit

from pointbridge.sandbox.runtime import InvocationError

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("pointbridge.sandbox")

# A poller polls again at once while its source may hold more (its last poll filled a batch or
# left records pending); otherwise it waits until `poke()`: the sandbox pokes a source's pollers
# when the emulator reports a new message or stream record in it (emulator.Arrivals), and
# wait_for_idle pokes the waiting ones. IDLE_POLL_PAUSE only bounds what no arrival announces: a
# message whose visibility timeout ran out (a poller that left messages in flight polls again
# when they are due, see SqsPoller), a delayed message coming due, a notice lost because the
# pipe was full. Idle, template.yaml's pollers made 16 ReceiveMessages and 4 GetRecords in 10 s.
IDLE_POLL_PAUSE = 2.0


class Invoker(Protocol):
    def __call__(self, logical_id: str, event: Any, source: str, batch_size: int) -> Any: ...


class Poller:
    """One thread per mapping. `epoch` counts polls that found nothing to do, for wait_for_idle."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.epoch = 0
        self.waiting = False  # between polls, waiting for a poke or the idle pause
        # Set by poll_once: the source may hold more than the poll took (poll again at once).
        self.more = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poller-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    @property
    def source_arn(self) -> str:
        raise NotImplementedError

    def poke(self) -> None:
        """Poll now if waiting (something arrived, or someone waits for the sandbox to be idle)."""
        self._wake.set()

    def due_in(self) -> float | None:
        """Seconds until something this poller knows of comes due in its source, if any."""
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.more = False
            try:
                busy = self.poll_once()
            except Exception:
                # The emulator is going away during stop, or a transient error: keep polling.
                if self._stop.is_set():
                    return
                log.exception("sandbox: poller %s failed; retrying", self.name)
                busy = False
            if busy and self.more:
                continue
            if not busy:
                self.epoch += 1
            due = self.due_in()
            self.waiting = True
            self._wake.wait(IDLE_POLL_PAUSE if due is None else min(IDLE_POLL_PAUSE, max(due, 0.0)))
            self.waiting = False
            self._wake.clear()

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
        keep: Callable[[dict[str, Any]], bool] | None = None,
        attempts: int = 3,
        on_exhausted: Callable[[Any, InvocationError, int], None] | None = None,
        requests: SignedJson | None = None,
    ) -> None:
        super().__init__(f"{function}<-{queue_arn.rsplit(':', 1)[-1]}")
        self.sqs = sqs
        # ReceiveMessage and DeleteMessageBatch sent and read directly (the sandbox's own emulator);
        # without it, through the boto3 client (any endpoint, mock_aws included).
        self.requests = requests
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
        # The mapping's FilterCriteria: Lambda deletes the messages it does not keep, unseen.
        self.keep = keep
        # Asynchronous sources: attempts per event (1 + EventInvokeConfig's retries, each after the
        # hidden queue's visibility timeout), then `on_exhausted(event, last error, attempts)`.
        self.attempts = attempts
        self.on_exhausted = on_exhausted
        # When messages this poller received and left in flight (a failed invocation, failed items,
        # a retried notification) become visible again: no arrival announces them.
        self._in_flight_due: float | None = None
        self._visibility_timeout: float | None = None

    @property
    def source_arn(self) -> str:
        return self.queue_arn

    def due_in(self) -> float | None:
        if self._in_flight_due is None:
            return None
        return self._in_flight_due - time.monotonic()

    def _left_in_flight(self) -> None:
        if self._visibility_timeout is None:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"])
            self._visibility_timeout = float(attributes["Attributes"]["VisibilityTimeout"])
        # Visible again a little after the timeout (moto compares whole milliseconds).
        self._in_flight_due = time.monotonic() + self._visibility_timeout + 0.05

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.window_s
        if self._in_flight_due is not None and time.monotonic() >= self._in_flight_due:
            self._in_flight_due = None
        while len(messages) < self.batch_size and not self._stop.is_set():
            got = self._receive_batch(min(10, self.batch_size - len(messages)))
            # A message whose visibility ran out during the window comes back: keep its newest receipt.
            seen = {m["MessageId"] for m in got}
            messages = [m for m in messages if m["MessageId"] not in seen] + got
            if time.monotonic() >= deadline or (not got and not messages):
                break
            if not got:
                # Gathering a batch within its window: receive again when a message arrives.
                self._wake.wait(max(deadline - time.monotonic(), 0.0))
                self._wake.clear()
        return messages

    def _receive_batch(self, count: int) -> list[dict[str, Any]]:
        request = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": count,
            # Never long-poll: the emulator's lock would be held for the whole wait.
            "WaitTimeSeconds": 0,
            "AttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if self.requests is not None:
            status, reply = self.requests.post("AmazonSQS.ReceiveMessage", request)
            if status == 200:
                try:
                    return sqs_messages(reply)
                except UnexpectedReply:
                    return botocore_sqs_messages(reply)
            # Refused (nothing was received): asked again through boto3, which raises it as usual.
        return list(self.sqs.receive_message(**request).get("Messages", []))

    def stop(self) -> None:
        super().stop()
        if self.requests is not None:
            self.requests.close()

    def poll_once(self) -> bool:
        messages = self._receive()
        if not messages:
            return False
        # moto answers a receive with every visible message up to the batch: fewer means it is empty.
        self.more = len(messages) >= self.batch_size
        records = [sqs_record(m, self.queue_arn, self.region) for m in messages]
        if self.shape is not None:
            self._deliver_each(messages)
            return True
        if self.keep is not None:
            keep = self.keep
            self._delete([r for r in records if not keep(_sqs_filterable(r))])
            records = [r for r in records if keep(_sqs_filterable(r))]
            if not records:
                return True
        by_id = {r["messageId"]: r for r in records}
        try:
            reply = self.invoke(self.function, {"Records": records}, self.source, len(records))
        except InvocationError:
            self._left_in_flight()
            return True  # the whole batch becomes visible again after the visibility timeout
        failed = failed_item_ids(reply, set(by_id)) if self.report_failures else set()
        if failed is None:
            log.warning("sandbox: %s returned a malformed batch reply; the whole batch fails", self.function)
            self._left_in_flight()
            return True
        done = [r for r in records if r["messageId"] not in failed]
        self._delete(done)
        if failed:
            self._left_in_flight()
        return True

    def _deliver_each(self, messages: list[dict[str, Any]]) -> None:
        # Asynchronous sources (S3): one invocation per notification, retried, then handed over.
        assert self.shape is not None
        for message in messages:
            events = self.shape([message])
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            failures: list[tuple[Any, InvocationError]] = []
            for event in events:
                try:
                    self.invoke(self.function, event, self.source, len(event.get("Records", [])))
                except InvocationError as exc:
                    failures.append((event, exc))
            if failures and count >= self.attempts and self.on_exhausted is not None:
                for event, error in failures:
                    self.on_exhausted(event, error, count)
            if not failures or count >= self.attempts:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                self._left_in_flight()

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            if not chunk:
                continue
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
            if self.requests is not None:
                status, _ = self.requests.post(
                    "AmazonSQS.DeleteMessageBatch", {"QueueUrl": self.queue_url, "Entries": entries}
                )
                if status == 200:
                    continue
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)

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


class FilterPatternError(ValueError):
    """A FilterCriteria pattern the sandbox cannot read (malformed, or an operator it lacks)."""


def _numeric_matches(conditions: list[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    checks = {"=": float.__eq__, "<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}
    for operator, bound in zip(conditions[::2], conditions[1::2], strict=True):
        if operator not in checks or isinstance(bound, bool) or not isinstance(bound, int | float):
            raise FilterPatternError(f"numeric condition {operator!r} {bound!r} is not supported")
        if not checks[operator](float(value), float(bound)):
            return False
    return True


def _value_matches(rule: Any, value: Any, present: bool) -> bool:
    """One entry of a pattern's list against one field value (AWS event filtering's rules)."""
    if isinstance(rule, bool) or rule is None:
        return present and value is rule
    if isinstance(rule, int | float):
        return present and not isinstance(value, bool) and isinstance(value, int | float) and value == rule
    if isinstance(rule, str):
        return present and value == rule
    if not isinstance(rule, dict):
        raise FilterPatternError(f"a filter rule cannot be {rule!r}")
    if len(rule) != 1:
        raise FilterPatternError(f"a filter rule has one operator, got {sorted(rule)}")
    ((operator, operand),) = rule.items()
    if operator == "exists":
        return present is bool(operand)
    if not present:
        return False  # every operator but `exists` needs the field (EventBridge's matching)
    if operator == "prefix":
        return isinstance(value, str) and value.startswith(operand)
    if operator == "suffix":
        return isinstance(value, str) and value.endswith(operand)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(operand).lower()
    if operator == "anything-but":
        excluded = operand if isinstance(operand, list) else [operand]
        return not any(_value_matches(x, value, present) for x in excluded)
    if operator == "numeric":
        return _numeric_matches(list(operand), value)
    raise FilterPatternError(f"filter operator {operator!r} is not supported by the sandbox")


def _pattern_matches(pattern: dict[str, Any], event: Any) -> bool:
    for key, rule in pattern.items():
        present = isinstance(event, dict) and key in event
        value = event.get(key) if isinstance(event, dict) else None
        if isinstance(rule, dict):
            if not (present and _pattern_matches(rule, value)):
                return False
            continue
        if not isinstance(rule, list) or not rule:
            raise FilterPatternError(f"the rule for {key!r} must be a non-empty list or an object")
        values = value if isinstance(value, list) else [value]
        if not any(_value_matches(r, v, present) for r in rule for v in values):
            return False
    return True


def _check_pattern(pattern: dict[str, Any]) -> None:
    for key, rule in pattern.items():
        if isinstance(rule, dict):
            _check_pattern(rule)
            continue
        if not isinstance(rule, list) or not rule:
            raise FilterPatternError(f"the rule for {key!r} must be a non-empty list or an object")
        for entry in rule:
            if isinstance(entry, dict):
                # Each operator is tried on a value of every kind; only unreadable rules raise.
                for sample in ("", 0, None):
                    _value_matches(entry, sample, True)
                _value_matches(entry, None, False)
            elif isinstance(entry, list):
                raise FilterPatternError(f"a filter rule cannot be {entry!r}")


def event_filter(criteria: dict[str, Any] | None) -> Callable[[dict[str, Any]], bool] | None:
    """A mapping's FilterCriteria as a test of one record (any filter matching keeps it), or None."""
    if not criteria or not criteria.get("Filters"):
        return None
    patterns = []
    for entry in criteria["Filters"]:
        try:
            pattern = json.loads(entry["Pattern"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FilterPatternError(f"a FilterCriteria pattern is not JSON: {exc}") from None
        if not isinstance(pattern, dict):
            raise FilterPatternError("a FilterCriteria pattern must be a JSON object")
        patterns.append(pattern)
    # A pattern the sandbox cannot apply fails at start, not at the first record.
    for pattern in patterns:
        _check_pattern(pattern)

    def keeps(record: dict[str, Any]) -> bool:
        return any(_pattern_matches(p, record) for p in patterns)

    return keeps


def _sqs_filterable(record: dict[str, Any]) -> dict[str, Any]:
    # Lambda matches an SQS body as JSON when it is JSON, else as the plain string.
    try:
        body = json.loads(record["body"])
    except ValueError:
        body = record["body"]
    return record | {"body": body}


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
        keep: Callable[[dict[str, Any]], bool] | None = None,
        on_failure: Callable[[dict[str, Any]], None] | None = None,
        function_arn: str = "",
        reader: GetRecordsReader | None = None,
    ) -> None:
        super().__init__(f"{function}<-stream")
        # GetRecords read straight from the reply's JSON (the sandbox's own emulator); without
        # one, through the boto3 client (any endpoint, mock_aws included).
        self.reader = reader
        # The mapping's DestinationConfig.OnFailure: where a record of a batch given up on is sent.
        self.on_failure = on_failure
        self.function_arn = function_arn
        # The mapping's FilterCriteria: records it does not keep are passed over, as Lambda does.
        self.keep = keep
        self.streams = streams
        self.function = function
        self.stream_arn = stream_arn
        self.region = region
        self.invoke = invoke
        self.batch_size = batch_size
        self.report_failures = report_failures
        self.max_retries = max_retries
        self.pending: list[dict[str, Any]] = []
        self._shard_of: dict[str, str] = {}  # sequence number -> shard, while the record is pending
        self._iterators: dict[str, str] = {}
        self._attempts = 0

    @property
    def source_arn(self) -> str:
        return self.stream_arn

    def stop(self) -> None:
        super().stop()
        if self.reader is not None:
            self.reader.close()

    def position_at_latest(self) -> None:
        """Start after what is already in the stream (restored items are not new writes)."""
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            self._iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]

    def _fetch(self) -> None:
        for shard_id, iterator in list(self._iterators.items()):
            if self.reader is not None:
                records, following = self.reader.read(iterator, 1000)
            else:
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                records = [_jsonable(record) for record in page.get("Records", [])]
                following = page.get("NextShardIterator")
            self._iterators[shard_id] = following or iterator
            for shaped in records:
                shaped["eventSourceARN"] = self.stream_arn
                shaped.setdefault("awsRegion", self.region)
                if self.keep is None or self.keep(shaped):
                    self.pending.append(shaped)
                    self._shard_of[shaped["dynamodb"]["SequenceNumber"]] = shard_id

    def poll_once(self) -> bool:
        if len(self.pending) < self.batch_size:
            self._fetch()
        if not self.pending:
            return False
        self.more = True  # what the batch leaves pending, or what arrived meanwhile: the next poll says
        batch = self.pending[: self.batch_size]
        by_seq = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
        try:
            reply = self.invoke(self.function, {"Records": batch}, "dynamodb", len(batch))
            failed = failed_item_ids(reply, set(by_seq)) if self.report_failures else set()
        except InvocationError:
            failed = None
        if failed == set():
            self._advance(len(batch))
            self._attempts = 0
            return True
        self._attempts += 1
        if 0 <= self.max_retries < self._attempts:
            if self.on_failure is not None:
                # Sent before the batch is passed over: if sending fails, the batch is tried again.
                self.on_failure(self.failure_record(batch, self._attempts))
                log.warning("sandbox: %s gave up on a stream batch; its record went to the destination", self.function)
            else:
                log.warning("sandbox: %s dropped a stream batch after %d retries", self.function, self.max_retries)
            self._advance(len(batch))
            self._attempts = 0
            return True
        if failed:
            # Lambda checkpoints before the lowest failed sequence number and retries from there.
            self._advance(min(by_seq[s] for s in failed))
        self._stop.wait(0.5)
        return True

    def _advance(self, count: int) -> None:
        """Checkpoint past the first `count` pending records."""
        for record in self.pending[:count]:
            self._shard_of.pop(record["dynamodb"]["SequenceNumber"], None)
        self.pending = self.pending[count:]

    def failure_record(self, batch: list[dict[str, Any]], invocations: int) -> dict[str, Any]:
        """What Lambda sends an on-failure destination for a stream batch: where it was, not the records."""
        arrivals = [int(r["dynamodb"].get("ApproximateCreationDateTime", time.time())) for r in batch]
        return {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "DDBStreamBatchInfo": {
                "shardId": self._shard_of.get(batch[0]["dynamodb"]["SequenceNumber"], ""),
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso_seconds(min(arrivals)),
                "approximateArrivalOfLastRecord": _iso_seconds(max(arrivals)),
                "batchSize": len(batch),
                "streamArn": self.stream_arn,
            },
        }

    def drained(self) -> bool:
        return not self.pending


def _iso_seconds(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


# GetRecords' reply, as botocore parses it and `_jsonable` then writes it for Lambda, is the reply's
# own JSON but for two members: ApproximateCreationDateTime (epoch seconds; botocore makes a
# datetime of it and `_jsonable` whole seconds again) and binary values (base64 decoded and
# encoded again). botocore also keeps only the members its shapes name and drops nulls; a reply
# with anything else is handed to botocore's parser. Reading it so costs a json.loads: botocore's
# walk over every record's old and new image was 80% of the stream poller's CPU, and the
# FilterCriteria then drop most of those records (tests/integration/test_poller_replies.py
# compares the two over random records).
_RECORD_MEMBERS = frozenset(("eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb"))
_STREAM_RECORD_MEMBERS = frozenset(
    ("ApproximateCreationDateTime", "Keys", "NewImage", "OldImage", "SequenceNumber", "SizeBytes", "StreamViewType")
)
_IMAGES = ("Keys", "NewImage", "OldImage")


class UnexpectedReply(ValueError):
    """A GetRecords reply the direct reading was not written for (botocore's parser reads it)."""


def _epoch_seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnexpectedReply(f"ApproximateCreationDateTime {value!r}")
    # As botocore's datetime (rounded to microseconds) and `_jsonable`'s int(timestamp()) give it.
    return int(datetime.fromtimestamp(value, UTC).timestamp())


def _rebased_binary(value: Any) -> Any:
    """An attribute value with its binaries decoded and encoded again (botocore, then `_jsonable`)."""
    if not isinstance(value, dict):
        raise UnexpectedReply(f"attribute value {value!r}")
    shaped = {}
    for kind, inner in value.items():
        if inner is None:
            raise UnexpectedReply(f"a null {kind}")
        if kind == "B":
            inner = base64.b64encode(base64.b64decode(inner)).decode()
        elif kind == "BS":
            inner = [base64.b64encode(base64.b64decode(b)).decode() for b in inner]
        elif kind == "M":
            inner = {name: _rebased_binary(v) for name, v in inner.items()}
        elif kind == "L":
            inner = [_rebased_binary(v) for v in inner]
        shaped[kind] = inner
    return shaped


def stream_records(body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """GetRecords' records as Lambda hands them over, read from the reply, and the next iterator."""
    reply = json.loads(body)
    if not isinstance(reply, dict):
        raise UnexpectedReply("the reply is not an object")
    records = reply.get("Records") or []
    binary = b'"B' in body  # a "B" or "BS" somewhere (also an attribute name B: then walked for nothing)
    for record in records:
        if not isinstance(record, dict) or not record.keys() <= _RECORD_MEMBERS:
            raise UnexpectedReply("a record member botocore does not keep")
        stream = record.get("dynamodb")
        if not isinstance(stream, dict) or not stream.keys() <= _STREAM_RECORD_MEMBERS:
            raise UnexpectedReply("a stream record member botocore does not keep")
        if None in record.values() or None in stream.values():
            raise UnexpectedReply("a null member")
        if "ApproximateCreationDateTime" in stream:
            stream["ApproximateCreationDateTime"] = _epoch_seconds(stream["ApproximateCreationDateTime"])
        if binary:
            for image in _IMAGES:
                if image in stream:
                    stream[image] = {name: _rebased_binary(v) for name, v in stream[image].items()}
    following = reply.get("NextShardIterator")
    return records, following if isinstance(following, str) else None


def botocore_stream_records(body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The same through botocore's parser and `_jsonable`, as the boto3 client's path gives them."""
    page = _get_records_parser().parse({"body": body, "headers": {}, "status_code": 200}, _get_records_shape())
    return [_jsonable(r) for r in page.get("Records", [])], page.get("NextShardIterator")


_botocore_parts: dict[str, Any] = {}


def _get_records_shape() -> Any:
    if "shape" not in _botocore_parts:
        import botocore.session

        model = botocore.session.get_session().get_service_model("dynamodbstreams")
        _botocore_parts["shape"] = model.operation_model("GetRecords").output_shape
    return _botocore_parts["shape"]


def _get_records_parser() -> Any:
    from botocore.parsers import create_parser

    return create_parser("json")


class SignedJson:
    """Requests of a JSON protocol (DynamoDB Streams, SQS) over one kept-alive connection, signed
    with SigV4 as the operator, the reply's status and bytes returned unparsed.

    The sandbox plays the Lambda service here, not a function: it may read its sources as it likes,
    and botocore's request building and reply parsing were most of the pollers' CPU. One per poller
    (a connection is not shared between threads).
    """

    def __init__(self, *, endpoint_url: str, region: str, access_key: str, secret_key: str, signing_name: str) -> None:
        from botocore.credentials import Credentials

        parts = urlsplit(endpoint_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._url = f"{parts.scheme}://{parts.netloc}/"
        self._region = region
        self._signing_name = signing_name
        self._credentials = Credentials(access_key, secret_key)
        self._connection: http.client.HTTPConnection | None = None

    def post(self, target: str, payload: dict[str, Any]) -> tuple[int, bytes]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        body = json.dumps(payload).encode()
        request = AWSRequest(
            method="POST",
            url=self._url,
            data=body,
            headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target},
        )
        SigV4Auth(self._credentials, self._signing_name, self._region).add_auth(request)
        headers = dict(request.headers.items())
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
            try:
                self._connection.request("POST", "/", body=body, headers=headers)
                response = self._connection.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                # A kept-alive connection the server closed meanwhile: once more on a new one.
                self._connection.close()
                self._connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class GetRecordsReader:
    """GetRecords through `SignedJson`, the reply read by `stream_records`. A reply other than 200
    is asked again through the boto3 client (`fallback`), so errors are raised as botocore raises
    them (a poller retries after any)."""

    def __init__(self, requests: SignedJson, fallback: Any) -> None:
        self._requests = requests  # signed for "dynamodb", as DynamoDB Streams' requests are
        self._fallback = fallback

    def read(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        status, reply = self._requests.post(
            "DynamoDBStreams_20120810.GetRecords", {"ShardIterator": iterator, "Limit": limit}
        )
        if status == 200:
            try:
                return stream_records(reply)
            except UnexpectedReply:
                return botocore_stream_records(reply)
        page = self._fallback.get_records(ShardIterator=iterator, Limit=limit)
        return [_jsonable(r) for r in page.get("Records", [])], page.get("NextShardIterator")

    def close(self) -> None:
        self._requests.close()


# ReceiveMessage's reply as botocore parses it is the reply's JSON but for binary message
# attributes (base64 decoded to bytes); botocore keeps only the members its shapes name and drops
# nulls, so a reply with anything else goes to botocore's parser
# (tests/integration/test_poller_replies.py compares the two over random messages).
_MESSAGE_MEMBERS = frozenset(
    ("MessageId", "ReceiptHandle", "MD5OfBody", "Body", "Attributes", "MD5OfMessageAttributes", "MessageAttributes")
)
_MESSAGE_ATTRIBUTE_MEMBERS = frozenset(
    ("StringValue", "BinaryValue", "StringListValues", "BinaryListValues", "DataType")
)


def sqs_messages(body: bytes) -> list[dict[str, Any]]:
    """ReceiveMessage's messages, as botocore's parser gives them, read from the reply."""
    reply = json.loads(body)
    if not isinstance(reply, dict):
        raise UnexpectedReply("the reply is not an object")
    messages = reply.get("Messages") or []
    for message in messages:
        if not isinstance(message, dict) or not message.keys() <= _MESSAGE_MEMBERS or None in message.values():
            raise UnexpectedReply("a message member botocore does not keep")
        attributes = message.get("Attributes", {})
        if not isinstance(attributes, dict) or None in attributes.values():
            raise UnexpectedReply("a null system attribute")
        for value in message.get("MessageAttributes", {}).values():
            if not value.keys() <= _MESSAGE_ATTRIBUTE_MEMBERS or None in value.values():
                raise UnexpectedReply("a message attribute member botocore does not keep")
            if "BinaryValue" in value:
                value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
            if "BinaryListValues" in value:
                value["BinaryListValues"] = [base64.b64decode(b) for b in value["BinaryListValues"]]
    return messages


def botocore_sqs_messages(body: bytes) -> list[dict[str, Any]]:
    """The same through botocore's parser, as the boto3 client's path gives them."""
    shape = _botocore_parts.get("receive")
    if shape is None:
        import botocore.session

        model = botocore.session.get_session().get_service_model("sqs")
        shape = _botocore_parts["receive"] = model.operation_model("ReceiveMessage").output_shape
    page = _get_records_parser().parse({"body": body, "headers": {}, "status_code": 200}, shape)
    return list(page.get("Messages", []))
