"""The sandbox's own mechanics, against a small fixture stack (tests/fixtures/sandbox)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from pointbridge.sandbox import InvocationError, Sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox" / "template.yaml"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(
        template=FIXTURE,
        stage="test",
        pool_size=1,
        queue_overrides={"WorkQueue": {"VisibilityTimeout": 2}},
        log_dir=tmp_path_factory.mktemp("function-logs"),
    ) as sandbox:
        # A cold start longer than the visibility timeout would redeliver a batch, as on AWS; one
        # warm worker (and so one poller) keeps the batch tests deterministic.
        sandbox.invoke("BatchFunction", {"Records": []})
        yield sandbox


def drain(sb: Sandbox, logical_id: str, timeout: float = 15, want: int = 1) -> list[dict[str, Any]]:
    """Every message currently in one of the fixture's report queues (deleted as read)."""
    sqs = sb.client("sqs")
    url = sb.resource(logical_id)
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in got:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not got and len(found) >= want:
            break
        if not got:
            time.sleep(0.1)
    return found


def send_work(sb: Sandbox, *modes: str) -> list[str]:
    tag = uuid.uuid4().hex
    sb.client("sqs").send_message_batch(
        QueueUrl=sb.resource("WorkQueue"),
        Entries=[
            {
                "Id": str(i),
                "MessageBody": json.dumps({"tag": tag, "n": i, "mode": mode}),
                "MessageAttributes": {"kind": {"DataType": "String", "StringValue": mode}},
            }
            for i, mode in enumerate(modes)
        ],
    )
    return [tag] * len(modes)


def dlq_bodies(sb: Sandbox, tag: str) -> list[dict[str, Any]]:
    return [body for body in drain(sb, "WorkDlq", timeout=3, want=0) if body["tag"] == tag]


def test_proxy_event_shape_and_reply_over_http(sb: Sandbox) -> None:
    # Given a GET route with a path parameter
    url = f"{sb.api_url}/members/42?x=1&x=2&y=z"

    # When it is called over HTTP
    response = requests.get(url, headers={"X-Trace": "t1"}, timeout=30)

    # Then the handler saw API Gateway's proxy event and its reply came back translated
    assert response.status_code == 201
    assert response.headers["X-Multi"] == "a, b"
    seen = response.json()
    event = seen["event"]
    assert event["resource"] == "/members/{id}"
    assert event["path"] == "/members/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"x": "2", "y": "z"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["z"]}
    assert event["headers"]["X-Trace"] == "t1"
    assert event["multiValueHeaders"]["X-Trace"] == ["t1"]
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "Prod" and context["resourcePath"] == "/members/{id}"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"]
    assert seen["function_name"] == "pointbridge-test-ApiFunction"
    assert 0 < seen["remaining_ms"] <= 20_000
    assert seen["table"] == "sbx-test-table"
    assert seen["powertools_context"] == {"function_name": "pointbridge-test-ApiFunction", "memory": 256}
    assert seen["endpoint"] == sb.endpoint_url


def test_greedy_proxy_body_and_api_gateway_errors(sb: Sandbox) -> None:
    # Given the catch-all route
    # When a POST with a body reaches a nested path
    posted = requests.post(f"{sb.api_url}/a/b/c", data=b'{"k": 1}', timeout=30).json()["event"]
    # And handlers fail or reply malformed
    boom = requests.get(f"{sb.api_url}/x/boom", timeout=30)
    malformed = requests.get(f"{sb.api_url}/x/malformed", timeout=30)

    # Then the proxy parameter holds the rest of the path and failures are API Gateway's 502
    assert posted["pathParameters"] == {"proxy": "a/b/c"}
    assert posted["resource"] == "/{proxy+}"
    assert posted["body"] == '{"k": 1}'
    for reply in (boom, malformed):
        assert reply.status_code == 502
        assert reply.json() == {"message": "Internal server error"}


def test_payload_over_10_mb_is_refused_with_413(sb: Sandbox) -> None:
    # Given a request announcing a body over API Gateway's 10 MB limit
    host, port = sb.api_url.removeprefix("http://").split(":")
    head = f"POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {10 * 1024 * 1024 + 1}\r\n\r\n"

    # When it is sent
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head.encode())
        status_line = conn.recv(4096).split(b"\r\n", 1)[0]

    # Then the stand-in refuses it before the function runs
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"


def test_lambda_authorizer_allows_denies_and_passes_context(sb: Sandbox) -> None:
    # Given an API whose default authorizer checks the X-Token header
    url = f"{sb.api_url}/secure/thing"

    # When called without, with a denied and with an allowed token
    missing = requests.get(url, timeout=30)
    denied = requests.get(url, headers={"X-Token": "nope"}, timeout=30)
    allowed = requests.get(url, headers={"X-Token": "allow"}, timeout=30)

    # Then API Gateway's answers come back and the context reaches the function
    assert (missing.status_code, missing.json()) == (401, {"message": "Unauthorized"})
    assert denied.status_code == 403
    assert denied.json()["message"] == "User is not authorized to access this resource with an explicit deny"
    assert allowed.status_code == 201
    context = allowed.json()["event"]["requestContext"]
    assert context["stage"] == "v1"
    assert context["authorizer"] == {"tier": "gold", "vip": "true", "limit": "5", "principalId": "member-1"}


def test_control_endpoints_do_not_reach_the_api(sb: Sandbox) -> None:
    # When the reserved prefix is called
    resources = requests.get(f"{sb.api_url}/_sandbox/resources", timeout=30).json()
    unknown = requests.get(f"{sb.api_url}/_sandbox/nothing", timeout=30)

    # Then the sandbox answers, not the catch-all route
    assert resources["Table"]["physical_id"] == "sbx-test-table"
    assert resources["WorkQueue"]["arn"].endswith(":sbx-test-work")
    assert unknown.status_code == 404


def test_partial_batch_failure_returns_only_the_failed_record_then_dlq(sb: Sandbox) -> None:
    # Given a batch where one record fails and is reported
    tag = send_work(sb, "ok", "fail", "ok")[0]

    # When the poller has delivered everything (visibility 2 s, maxReceiveCount 2)
    sb.wait_for_idle(timeout=30)

    # Then the good records were processed once and only the failed one went to the DLQ
    processed = [r for r in drain(sb, "BatchOut", want=2) if json.loads(r["body"])["tag"] == tag]
    assert sorted(json.loads(r["body"])["n"] for r in processed) == [0, 2]
    record = processed[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == sb.arn("WorkQueue")
    assert record["awsRegion"] == "us-east-1"
    assert record["messageAttributes"]["kind"]["stringValue"] == "ok"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    } <= set(record["attributes"])
    assert len(record["md5OfBody"]) == 32
    assert [b["n"] for b in dlq_bodies(sb, tag)] == [1]


def test_malformed_batch_reply_fails_the_whole_batch(sb: Sandbox) -> None:
    # Given a batch whose reply names an empty item identifier
    tag = send_work(sb, "malformed", "ok")[0]

    # When it has been tried maxReceiveCount times
    sb.wait_for_idle(timeout=30)

    # Then every record of it, the good one too, ended in the DLQ
    assert sorted(b["n"] for b in dlq_bodies(sb, tag)) == [0, 1]
    assert "malformed" in [i.outcome for i in sb.invocations if i.function == "BatchFunction"]


def test_handler_exception_fails_the_batch_and_is_recorded(sb: Sandbox) -> None:
    # Given a record that makes the handler raise
    before = len(sb.invocations)
    tag = send_work(sb, "raise")[0]

    # When it has been tried
    sb.wait_for_idle(timeout=30)

    # Then the invocation errors were recorded and the message was redriven
    errors = [i for i in sb.invocations[before:] if i.function == "BatchFunction" and i.outcome == "error"]
    assert all(i.batch_size == 1 for i in errors)
    assert errors and "ValueError: asked to raise" in (errors[0].error or "")
    assert [b["n"] for b in dlq_bodies(sb, tag)] == [0]
    with pytest.raises(InvocationError):
        sb.invoke("BatchFunction", {"Records": [{"messageId": "m", "body": '{"mode": "raise"}'}]})


def test_s3_event_is_delivered(sb: Sandbox) -> None:
    # Given the uploads bucket notifies UploadFunction
    key = f"in/{uuid.uuid4().hex} file.csv"

    # When an object is created
    sb.client("s3").put_object(Bucket=sb.resource("Uploads"), Key=key, Body=b"a,b\n")
    sb.wait_for_idle(timeout=30)

    # Then the function got an S3 notification record, key URL-encoded as AWS does
    records = [r for r in drain(sb, "S3Out") if r["s3"]["object"]["key"] == key.replace(" ", "+")]
    assert len(records) == 1
    record = records[0]
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == "sbx-test-uploads"
    assert record["s3"]["object"]["size"] == 4
    assert record["s3"]["object"]["eTag"]
    assert record["eventTime"]


def test_stream_event_is_delivered(sb: Sandbox) -> None:
    # Given the table's stream feeds StreamFunction
    pk = f"S#{uuid.uuid4().hex}"

    # When an item is written
    sb.client("dynamodb").put_item(TableName=sb.resource("Table"), Item={"PK": {"S": pk}, "SK": {"S": "x"}})
    sb.wait_for_idle(timeout=30)

    # Then the function got the stream record with its images
    records = [r for r in drain(sb, "StreamOut") if r["dynamodb"]["Keys"]["PK"]["S"] == pk]
    assert len(records) == 1
    record = records[0]
    assert record["eventName"] == "INSERT"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"] == sb.resources["Table"].attributes["StreamArn"]
    assert record["dynamodb"]["NewImage"]["SK"] == {"S": "x"}
    assert record["dynamodb"]["SequenceNumber"]


def test_stream_partial_failure_retries_from_the_failed_record(sb: Sandbox) -> None:
    # Given an item the stream handler reports as failed the first time it sees it
    pk = f"S#{uuid.uuid4().hex}"
    before = len(sb.invocations)

    # When it is written
    sb.client("dynamodb").put_item(
        TableName=sb.resource("Table"), Item={"PK": {"S": pk}, "SK": {"S": "x"}, "failonce": {"BOOL": True}}
    )
    sb.wait_for_idle(timeout=30)

    # Then the batch was partially failed once, retried from that record, and processed once
    outcomes = [i.outcome for i in sb.invocations[before:] if i.function == "StreamFunction"]
    assert outcomes[0] == "partial" and outcomes[-1] == "ok"
    assert len([r for r in drain(sb, "StreamOut") if r["dynamodb"]["Keys"]["PK"]["S"] == pk]) == 1


def test_scheduled_run_with_a_chosen_now(sb: Sandbox) -> None:
    # Given a ScheduleV2 event whose Input uses the scheduler's context attributes
    now = datetime(2026, 3, 1, 0, 5, tzinfo=UTC)

    # When it is run for a chosen time, directly and through the control endpoint
    reply = sb.run_function("TickFunction", now=now)
    over_http = requests.post(
        f"{sb.api_url}/_sandbox/functions/TickFunction/invoke", params={"now": now.isoformat()}, timeout=30
    ).json()

    # Then the placeholders were substituted and the parsed JSON passed
    expected_arn = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/pointbridge-test-TickFunction-Hourly"
    assert reply["event"] == {
        "job": "tick",
        "at": "2026-03-01T00:05:00Z",
        "schedule": expected_arn,
        "attempt": "1",
    }
    assert over_http["reply"] == reply
    schedule = sb.client("scheduler").get_schedule(Name="pointbridge-test-TickFunction-Hourly")
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Paris"


def test_each_function_prints_to_its_own_log_file(sb: Sandbox) -> None:
    # Given the sandbox writes function output to log_dir
    assert sb.log_dir is not None
    # When a function prints to stdout and stderr
    sb.run_function("TickFunction", now=datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    # Then both lines are in that function's log, and in no other function's
    lines = (sb.log_dir / "TickFunction.log").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("tick {") and "2026-03-02T08:00:00Z" in line for line in lines)
    assert "tick done by pointbridge-test-TickFunction" in lines
    others = [p for p in sb.log_dir.glob("*.log") if p.name != "TickFunction.log"]
    assert all("tick" not in p.read_text(encoding="utf-8") for p in others)


def test_conditional_writes_are_exact_under_concurrency(sb: Sandbox) -> None:
    # Given a balance of 100
    ddb = sb.client("dynamodb")
    table = sb.resource("Table")
    key = {"PK": {"S": f"LOCK#{uuid.uuid4().hex}"}, "SK": {"S": "BAL"}}
    ddb.put_item(TableName=table, Item=key | {"bal": {"N": "100"}})
    wins: list[bool] = []
    barrier = threading.Barrier(50)

    def spend() -> None:
        barrier.wait()
        try:
            ddb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET bal = bal - :a",
                ConditionExpression="bal >= :a",
                ExpressionAttributeValues={":a": {"N": "10"}},
            )
            wins.append(True)
        except ddb.exceptions.ConditionalCheckFailedException:
            wins.append(False)

    # When 50 threads spend 10 at once
    threads = [threading.Thread(target=spend) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly 10 succeed and the balance is 0, never negative
    assert wins.count(True) == 10
    assert ddb.get_item(TableName=table, Key=key)["Item"]["bal"] == {"N": "0"}


def _child_pids() -> set[int]:
    """This process's children from /proc, not from multiprocessing's own bookkeeping; the
    resource tracker multiprocessing keeps for the life of the process is not ours to stop."""
    me = str(os.getpid())
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[1] == me and b"resource_tracker" not in cmdline:
            children.add(int(stat.parent.name))
    return children


def _closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


def test_snapshot_survives_restart_and_stop_leaves_nothing_running(tmp_path: Path) -> None:
    # Given a sandbox with a state dir, an item, an object, and warm workers
    others = _child_pids()  # another test's sandbox may be running in this process
    threads_before = set(threading.enumerate())
    with Sandbox(template=FIXTURE, stage="snap", state_dir=tmp_path, pool_size=1) as first:
        first.client("dynamodb").put_item(
            TableName=first.resource("Table"),
            Item={"PK": {"S": "M#1"}, "SK": {"S": "BAL"}, "b": {"B": b"\x00"}},
        )
        first.client("s3").put_object(Bucket=first.resource("Uploads"), Key="kept.txt", Body=b"kept")
        assert first.invoke("TickFunction", {"n": 1})["event"] == {"n": 1}
        first.wait_for_idle(timeout=30)
        urls = [first.endpoint_url, first.api_url]
        # the emulator, and a worker each for Tick, Stream (the put) and Upload (the object)
        assert len(_child_pids() - others) == 4
        our_threads = set(threading.enumerate()) - threads_before

    # When it has stopped (twice: stop is idempotent)
    first.stop()
    # Then no worker, emulator, poller or socket is left
    assert _child_pids() <= others
    assert not [t for t in our_threads if t.is_alive()]
    assert all(_closed(url) for url in urls)

    # And the same sandbox, started again on its state dir, starts where it stopped
    with first as second:
        item = second.client("dynamodb").get_item(
            TableName=second.resource("Table"), Key={"PK": {"S": "M#1"}, "SK": {"S": "BAL"}}
        )["Item"]
        body = second.client("s3").get_object(Bucket=second.resource("Uploads"), Key="kept.txt")["Body"].read()
    assert item["b"] == {"B": b"\x00"}
    assert body == b"kept"
    assert _child_pids() <= others


def failures(sb: Sandbox, condition: str, timeout: float = 20) -> list[dict[str, Any]]:
    return [r for r in drain(sb, "Failures", timeout=timeout) if r["requestContext"]["condition"] == condition]


def test_a_failed_s3_invocation_is_retried_then_sent_to_its_destination(sb: Sandbox) -> None:
    # Given UploadFunction fails for keys under fail/ and retries once (EventInvokeConfig)
    key = f"fail/{uuid.uuid4().hex}.csv"
    before = len(sb.invocations)
    # When such an object is created
    sb.client("s3").put_object(Bucket=sb.resource("Uploads"), Key=key, Body=b"x")
    sb.wait_for_idle(timeout=30)
    # Then it was tried twice, and Lambda's destination record holds the event and the error
    tried = [i for i in sb.invocations[before:] if i.function == "UploadFunction"]
    assert [i.outcome for i in tried] == ["error", "error"]
    [record] = [r for r in failures(sb, "RetriesExhausted") if "Records" in r["requestPayload"]]
    assert record["requestPayload"]["Records"][0]["s3"]["object"]["key"] == key
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestContext"]["functionArn"].endswith("pointbridge-test-UploadFunction:$LATEST")
    assert record["responsePayload"] == {"errorType": "RuntimeError", "errorMessage": f"cannot take {key}"}


def test_a_failed_scheduled_run_goes_to_its_destination(sb: Sandbox) -> None:
    # Given the tick fails for 1999 and retries once
    # When the scheduler fires it (asynchronously) for that time
    assert sb.fire_schedule("TickFunction", now=datetime(1999, 1, 1, 0, 5, tzinfo=UTC)) is False
    # Then the destination has the scheduled event after two attempts
    [record] = [r for r in failures(sb, "RetriesExhausted") if r["requestPayload"].get("job") == "tick"]
    assert record["requestPayload"]["at"] == "1999-01-01T00:05:00Z"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    # And a run that succeeds sends nothing
    assert sb.fire_schedule("TickFunction", now=datetime(2026, 1, 1, 0, 5, tzinfo=UTC)) is True


def test_a_stream_batch_out_of_retries_goes_to_its_destination(sb: Sandbox) -> None:
    # Given an item the stream handler always fails, and a mapping that retries once
    pk = f"S#{uuid.uuid4().hex}"
    sb.client("dynamodb").put_item(
        TableName=sb.resource("Table"), Item={"PK": {"S": pk}, "SK": {"S": "x"}, "failalways": {"BOOL": True}}
    )
    sb.wait_for_idle(timeout=30)
    # Then the batch was passed over and its place in the stream sent to the destination
    [record] = failures(sb, "RetryAttemptsExhausted")
    info = record["DDBStreamBatchInfo"]
    assert info["streamArn"] == sb.resources["Table"].attributes["StreamArn"]
    assert info["batchSize"] >= 1 and info["startSequenceNumber"] <= info["endSequenceNumber"]
    assert record["requestContext"]["approximateInvokeCount"] == 2
    # And the stream went on: a later item is delivered
    later = f"S#{uuid.uuid4().hex}"
    sb.client("dynamodb").put_item(TableName=sb.resource("Table"), Item={"PK": {"S": later}, "SK": {"S": "x"}})
    sb.wait_for_idle(timeout=30)
    assert [r for r in drain(sb, "StreamOut") if r["dynamodb"]["Keys"]["PK"]["S"] == later]


def test_a_method_over_its_throttle_is_answered_429(sb: Sandbox) -> None:
    # Given GET /secure/slow allows a burst of 2 and refills one request per 100 seconds
    answers = [requests.get(f"{sb.api_url}/secure/slow", timeout=30).status_code for _ in range(3)]
    # Then the third request is refused by the gateway, before any function runs
    assert answers == [201, 201, 429]  # the fixture function answers 201


def test_parameters_conditions_log_groups_and_alarms_are_as_declared(sb: Sandbox) -> None:
    # Extras defaults to "no": the conditional queue is left out, and !If chose its other branch
    assert "ExtraQueue" not in sb.resources
    env = sb.functions["UploadFunction"].environment
    assert env["PLAIN"] == "plain" and "EXTRAS" not in env
    # The log group keeps RetentionDays' default
    [group] = sb.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/pointbridge-test-TickFunction")[
        "logGroups"
    ]
    assert group["retentionInDays"] == 7
    # The alarm exists and notifies the topic
    [alarm] = sb.client("cloudwatch").describe_alarms(AlarmNames=[sb.resource("FailuresAlarm")])["MetricAlarms"]
    assert alarm["AlarmActions"] == [sb.resource("Notices")]


def test_ttl_sweep_deletes_what_dynamodb_would_have(sb: Sandbox) -> None:
    table, ddb = sb.resource("Table"), sb.client("dynamodb")
    pk = f"TTL#{uuid.uuid4().hex}"
    now = int(time.time())
    for sk, expires in (("gone", {"N": str(now - 10)}), ("kept", {"N": str(now + 3600)}), ("text", {"S": "0"})):
        ddb.put_item(TableName=table, Item={"PK": {"S": pk}, "SK": {"S": sk}, "expires": expires})
    sb.sweep_ttl()
    left = ddb.query(TableName=table, KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": pk}})[
        "Items"
    ]
    # A number in the past goes; a future one, or a TTL attribute that is not a number, stays
    assert sorted(i["SK"]["S"] for i in left) == ["kept", "text"]
    sb.wait_for_idle(timeout=30)
