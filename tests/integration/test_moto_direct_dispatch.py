"""SQS's and EventBridge's JSON requests through the emulator's direct dispatch answer as through
moto's server (the domain dispatcher and Flask).

Two WSGI stacks in this process, each with its own region: moto's server app with moto exactly as
it ships (`without_speedups()`), and the emulator's dispatch in front of the same app. The same
requests the pipeline makes (SendMessageBatch, ReceiveMessage, DeleteMessageBatch,
GetQueueAttributes, PutEvents), with their errors (unknown queues and buses, bad batches,
receipt handles that are not, malformed bodies, unknown operations), go to both; status, headers
and bodies must match once the region, the request id, message ids, receipt handles and times
are blanked. DynamoDB's side of the same dispatch is tests/integration/test_moto_dynamodb.py.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from pointbridge.sandbox import moto_speedups
from pointbridge.sandbox.moto_dynamodb import DynamoDBDispatch, direct_backend_of
from tests.support.moto_diff import call_wsgi, json_environ

if TYPE_CHECKING:
    from collections.abc import Callable

REGIONS = {"stock": "ap-south-1", "fast": "ap-south-2"}
VARIANTS = ("stock", "fast")
VERSIONS = {"AmazonSQS": "1.0", "AWSEvents": "1.1"}
SIGNED_FOR = {"AmazonSQS": "sqs", "AWSEvents": "events"}


def _moto_app() -> Any:
    from moto.server import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


@pytest.fixture(scope="module")
def apps() -> dict[str, Any]:
    return {"stock": _moto_app(), "fast": DynamoDBDispatch(_moto_app())}


def _environ(variant: str, target: str, body: bytes) -> dict[str, Any]:
    prefix = target.split(".")[0]
    return json_environ(
        target,
        body,
        region=REGIONS[variant],
        service=SIGNED_FOR[prefix],
        json_version=VERSIONS[prefix],
        HTTP_X_AMZ_QUERY_MODE="true",
    )


VOLATILE = re.compile(
    r'"(MessageId|ReceiptHandle|EventId|SentTimestamp|ApproximateFirstReceiveTimestamp|CreatedTimestamp'
    r'|LastModifiedTimestamp)": ("[^"]*"|[0-9.]+)'
)
# Message ids and receipt handles inside error messages, and the request ids of SQS's errors.
VOLATILE_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _normalised(variant: str, status: str, headers: list[tuple[str, str]], body: bytes) -> Any:
    text = body.decode().replace(REGIONS[variant], "<region>")
    checked = []
    for name, value in headers:
        if name.lower() in ("x-amzn-requestid", "x-amz-crc32"):
            value = "<volatile>"
        elif name.lower() == "content-length":
            assert value == str(len(body))
            value = "<length>"
        checked.append((name, value))
    text = VOLATILE.sub(lambda m: f'"{m.group(1)}": "<volatile>"', text)
    return status, checked, VOLATILE_TEXT.sub("<uuid>", text)


def _both(
    apps: dict[str, Any], target: str, payload: Callable[[str, dict[str, Any]], Any], *, raw: bytes | None = None
) -> dict[str, Any]:
    """`payload(variant, earlier)` builds each side's request from that side's earlier replies; the
    decoded replies, by side, are returned (for the next requests)."""
    decoded: dict[str, Any] = {}
    normalised = {}
    for variant in VARIANTS:
        body = raw if raw is not None else json.dumps(payload(variant, _earlier[variant])).encode()
        environ = _environ(variant, target, body)
        if variant == "fast":
            assert direct_backend_of(environ) is not None  # the fast side does take this request
        with moto_speedups.without_speedups() if variant == "stock" else contextlib.nullcontext():
            status, headers, reply = call_wsgi(apps[variant], environ)
        normalised[variant] = _normalised(variant, status, headers, reply)
        try:
            decoded[variant] = json.loads(reply) if reply else None
        except ValueError:
            decoded[variant] = None
    assert normalised["fast"] == normalised["stock"], (target, normalised["fast"], normalised["stock"])
    return decoded


_earlier: dict[str, dict[str, Any]] = {variant: {} for variant in VARIANTS}


def _queue_url(variant: str, name: str = "ingest") -> str:
    return f"http://127.0.0.1:4566/123456789012/{name}"


def test_sqs_requests_answer_as_through_moto_s_server(apps: dict[str, Any]) -> None:
    def same(payload: Any) -> Callable[[str, dict[str, Any]], Any]:
        return lambda variant, earlier: payload

    for name in ("ingest", "dlq"):
        created = _both(apps, "AmazonSQS.CreateQueue", same({"QueueName": name}))
        for variant in VARIANTS:
            _earlier[variant][name] = created[variant]["QueueUrl"]
    _both(
        apps,
        "AmazonSQS.SetQueueAttributes",
        lambda v, e: {
            "QueueUrl": e["ingest"],
            "Attributes": {
                "VisibilityTimeout": "30",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": f"arn:aws:sqs:{REGIONS[v]}:123456789012:dlq", "maxReceiveCount": 2}
                ),
            },
        },
    )
    entries = [
        {"Id": f"m{i}", "MessageBody": json.dumps({"n": i, "text": "é ünïcode"}), "DelaySeconds": 0} for i in range(10)
    ]
    entries[3]["MessageAttributes"] = {"kind": {"DataType": "String", "StringValue": "earn"}}
    _both(apps, "AmazonSQS.SendMessageBatch", lambda v, e: {"QueueUrl": e["ingest"], "Entries": entries})
    # Errors: an empty batch, repeated ids, too many entries, an unknown queue.
    _both(apps, "AmazonSQS.SendMessageBatch", lambda v, e: {"QueueUrl": e["ingest"], "Entries": []})
    _both(apps, "AmazonSQS.SendMessageBatch", lambda v, e: {"QueueUrl": e["ingest"], "Entries": entries[:2] * 2})
    _both(apps, "AmazonSQS.SendMessageBatch", lambda v, e: {"QueueUrl": e["ingest"], "Entries": entries * 2})
    _both(apps, "AmazonSQS.SendMessageBatch", lambda v, e: {"QueueUrl": _queue_url(v, "nope"), "Entries": entries})
    for _ in range(2):
        received = _both(
            apps,
            "AmazonSQS.ReceiveMessage",
            lambda v, e: {
                "QueueUrl": e["ingest"],
                "MaxNumberOfMessages": 4,
                "MessageSystemAttributeNames": ["ApproximateReceiveCount", "MessageGroupId"],
                "MessageAttributeNames": ["All"],
                "VisibilityTimeout": 0,
            },
        )
    handles = {v: [m["ReceiptHandle"] for m in received[v]["Messages"]] for v in VARIANTS}
    _both(
        apps,
        "AmazonSQS.DeleteMessageBatch",
        lambda v, e: {
            "QueueUrl": e["ingest"],
            "Entries": [{"Id": f"d{i}", "ReceiptHandle": h} for i, h in enumerate(handles[v])]
            + [{"Id": "bad", "ReceiptHandle": "not-a-handle"}],
        },
    )
    _both(apps, "AmazonSQS.DeleteMessageBatch", lambda v, e: {"QueueUrl": e["ingest"], "Entries": []})
    _both(apps, "AmazonSQS.ReceiveMessage", lambda v, e: {"QueueUrl": e["ingest"], "MaxNumberOfMessages": 10})
    _both(apps, "AmazonSQS.ReceiveMessage", lambda v, e: {"QueueUrl": e["ingest"], "MaxNumberOfMessages": 11})
    _both(apps, "AmazonSQS.ReceiveMessage", lambda v, e: {"QueueUrl": _queue_url(v, "nope")})
    _both(
        apps,
        "AmazonSQS.GetQueueAttributes",
        lambda v, e: {"QueueUrl": e["ingest"], "AttributeNames": ["ApproximateNumberOfMessages", "QueueArn"]},
    )
    _both(apps, "AmazonSQS.GetQueueAttributes", lambda v, e: {"QueueUrl": e["dlq"], "AttributeNames": ["All"]})
    _both(apps, "AmazonSQS.GetQueueUrl", lambda v, e: {"QueueName": "ingest"})
    _both(apps, "AmazonSQS.NoSuchOperation", same({}))
    _both(apps, "AmazonSQS.ReceiveMessage", same({}), raw=b"{not json")
    _both(apps, "AmazonSQS.ReceiveMessage", same({}), raw=b"")


def test_eventbridge_requests_answer_as_through_moto_s_server(apps: dict[str, Any]) -> None:
    entry = {
        "Source": "pointbridge.ledger",
        "DetailType": "PointsEarned",
        "Detail": json.dumps({"member": "m#1", "points": 10}),
    }
    _both(apps, "AWSEvents.PutEvents", lambda v, e: {"Entries": [entry] * 3})
    _both(apps, "AWSEvents.PutEvents", lambda v, e: {"Entries": [entry, {**entry, "EventBusName": "default"}]})
    _both(apps, "AWSEvents.PutEvents", lambda v, e: {"Entries": [{**entry, "EventBusName": "no-such-bus"}]})
    _both(apps, "AWSEvents.PutEvents", lambda v, e: {"Entries": [{"Source": "x"}, {**entry, "Detail": "not json"}]})
    _both(apps, "AWSEvents.PutEvents", lambda v, e: {"Entries": []})
    _both(apps, "AWSEvents.PutEvents", lambda v, e: {"Entries": [entry] * 11})
    _both(apps, "AWSEvents.CreateEventBus", lambda v, e: {"Name": "partners"})
    _both(apps, "AWSEvents.PutEvents", lambda v, e: {"Entries": [{**entry, "EventBusName": "partners"}]})
    _both(apps, "AWSEvents.ListEventBuses", lambda v, e: {})
    _both(apps, "AWSEvents.PutEvents", lambda v, e: {}, raw=b"[1, 2")


def test_only_json_requests_to_the_root_signed_for_the_service_are_taken() -> None:
    environ = _environ("fast", "AmazonSQS.ReceiveMessage", b"{}")
    assert direct_backend_of(environ) == "sqs"
    assert direct_backend_of(_environ("fast", "AWSEvents.PutEvents", b"{}")) == "events"
    for change in (
        {"PATH_INFO": "/123456789012/ingest"},
        {"REQUEST_METHOD": "GET"},
        {"QUERY_STRING": "Action=ReceiveMessage"},
        {"HTTP_ORIGIN": "http://localhost"},
        {"HTTP_AUTHORIZATION": environ["HTTP_AUTHORIZATION"].replace("/sqs/", "/events/")},
        {"HTTP_X_AMZ_TARGET": "AmazonSQSv2.ReceiveMessage"},
    ):
        assert direct_backend_of({**environ, **change}) is None, change
    del environ["HTTP_AUTHORIZATION"]
    assert direct_backend_of(environ) is None


def test_the_remembered_url_is_moto_s_raw_url() -> None:
    from moto.moto_server.werkzeug_app import BackendRequest

    dispatch = DynamoDBDispatch(_moto_app())
    base = _environ("fast", "AmazonSQS.ReceiveMessage", b"{}")
    variants = [
        {},
        {"HTTP_HOST": "localhost:4566"},
        {"HTTP_HOST": "127.0.0.1:80"},
        {"HTTP_HOST": "sqs.eu-west-1.amazonaws.com"},
        {"RAW_URI": "/"},
        {"RAW_URI": "http://127.0.0.1:4566/", "REQUEST_URI": "http://127.0.0.1:4566/"},
        {"SERVER_PORT": "9999"},
    ]
    for _ in range(2):  # the second time from what was remembered
        for change in variants:
            environ = {**base, **change}
            assert dispatch._raw_url(BackendRequest(environ)) == BackendRequest(environ).raw_url, change  # noqa: SLF001
