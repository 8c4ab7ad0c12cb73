"""The emulator's HTTP/1.1 server: what moto answers through it is what moto's own server answers,
and the connection handling (kept alive, pipelined, chunked, 100-continue, slow readers) holds."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from pointbridge.sandbox.http11 import Http11Server, parse_request

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


# --- moto through the two servers --------------------------------------------------------------


def _moto_app() -> Any:
    from moto.server import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


@pytest.fixture
def servers() -> Iterator[dict[str, str]]:
    """moto's own server (werkzeug, moto's request handler) and ours, each on a free port."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    stock = make_server("127.0.0.1", 0, _moto_app(), threaded=True, request_handler=MotoRequestHandler)
    ours = Http11Server(_moto_app())
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (stock, ours)]
    for thread in threads:
        thread.start()
    try:
        yield {"stock": f"http://127.0.0.1:{stock.server_port}", "ours": f"http://127.0.0.1:{ours.server_port}"}
    finally:
        stock.shutdown()
        ours.shutdown()
        for thread in threads:
            thread.join(timeout=10)
        stock.server_close()


# moto's backends are per process: each server's requests go to their own region.
REGIONS = {"stock": "eu-west-1", "ours": "eu-central-1"}
VOLATILE = {
    "ResponseMetadata",
    "CreationDateTime",
    "LastModified",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "MessageId",
    "ReceiptHandle",
    "SentTimestamp",
    "ApproximateFirstReceiveTimestamp",
    "TableId",
    "LatestStreamLabel",
    "LatestStreamArn",
}


def _normalised(reply: Any, variant: str, url: str) -> Any:
    text = json.dumps(reply, default=lambda v: v.read().decode() if hasattr(v, "read") else str(v), sort_keys=True)
    text = text.replace(REGIONS[variant], "<region>").replace(url.removeprefix("http://"), "<host>")
    text = text.replace(f"files-{variant}", "<bucket>")

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(text))


def _scenario(url: str, variant: str) -> Iterator[tuple[str, Callable[[], Any]]]:
    """The same calls for either server: DynamoDB, SQS and S3, successes and errors."""
    region = REGIONS[variant]
    bucket = f"files-{variant}"  # bucket names are global, regions or not
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    ddb = session.client("dynamodb", endpoint_url=url, config=config)
    sqs = session.client("sqs", endpoint_url=url, config=config)
    s3: Any = session.client("s3", endpoint_url=url, config=config)
    key = {"PK": {"S": "m#1"}, "SK": {"S": "balance"}}
    yield (
        "create_table",
        lambda: ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        ),
    )
    yield "put_item", lambda: ddb.put_item(TableName="t", Item={**key, "n": {"N": "5"}, "b": {"B": b"\x00\xff"}})
    yield "get_item", lambda: ddb.get_item(TableName="t", Key=key)
    yield (
        "update_item refused",
        lambda: ddb.update_item(
            TableName="t",
            Key=key,
            UpdateExpression="ADD n :d",
            ConditionExpression="n >= :need",
            ExpressionAttributeValues={":d": {"N": "-9"}, ":need": {"N": "9"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
    )
    yield (
        "transaction cancelled",
        lambda: ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"PK": {"S": "m#2"}, "SK": {"S": "x"}}}},
                {"ConditionCheck": {"TableName": "t", "Key": key, "ConditionExpression": "attribute_not_exists(PK)"}},
            ]
        ),
    )
    yield (
        "query",
        lambda: ddb.query(
            TableName="t", KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "m#1"}}
        ),
    )
    yield "unknown table", lambda: ddb.get_item(TableName="missing", Key=key)
    queue: dict[str, str] = {}

    def create_queue() -> Any:
        reply = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "30"})
        queue["url"] = reply["QueueUrl"]
        return reply

    yield "create_queue", create_queue
    yield (
        "send_message_batch",
        lambda: sqs.send_message_batch(
            QueueUrl=queue["url"],
            Entries=[
                {"Id": str(i), "MessageBody": json.dumps({"n": i, "text": "é"}), "DelaySeconds": 0} for i in range(3)
            ],
        ),
    )
    yield (
        "receive_message",
        lambda: sqs.receive_message(
            QueueUrl=queue["url"], MaxNumberOfMessages=2, AttributeNames=["All"], MessageAttributeNames=["All"]
        ),
    )
    yield (
        "get_queue_attributes",
        lambda: sqs.get_queue_attributes(
            QueueUrl=queue["url"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        ),
    )
    yield (
        "create_bucket",
        lambda: s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}),
    )
    odd_key = "partners/air/a b+c%d é.csv"
    yield (
        "put_object",
        lambda: s3.put_object(Bucket=bucket, Key=odd_key, Body=b"x,y\n1,2\n", Metadata={"my_key": "1", "plain": "2"}),
    )
    yield "get_object", lambda: s3.get_object(Bucket=bucket, Key=odd_key)
    yield "head_object", lambda: s3.head_object(Bucket=bucket, Key=odd_key)
    yield "list_objects", lambda: s3.list_objects_v2(Bucket=bucket, Prefix="partners/")
    yield "put_object 3 MB", lambda: s3.put_object(Bucket=bucket, Key="big.bin", Body=bytes(range(256)) * 12_288)
    yield "get_object 3 MB", lambda: {"Body": len(s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read())}
    yield "missing object", lambda: s3.get_object(Bucket=bucket, Key="nope")


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return {"ok": call()}
    except ClientError as error:
        return {"error": error.response.get("Error"), "status": error.response["ResponseMetadata"]["HTTPStatusCode"]}


def test_moto_answers_the_same_through_our_server_as_through_its_own(servers: dict[str, str]) -> None:
    # Given the same calls against moto's server and ours
    stock = _scenario(servers["stock"], "stock")
    ours = _scenario(servers["ours"], "ours")
    for (name, stock_call), (_, our_call) in zip(stock, ours, strict=True):
        # When each is made through both, Then the replies and errors are the same
        expected = _normalised(_outcome(stock_call), "stock", servers["stock"])
        actual = _normalised(_outcome(our_call), "ours", servers["ours"])
        assert actual == expected, name


# --- the connection handling, with a small app --------------------------------------------------


def _echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read()
    if environ["PATH_INFO"] == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * 8_000_000]
    seen = {
        key: environ.get(key)
        for key in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "RAW_URI", "REMOTE_PORT", "CONTENT_TYPE")
    }
    seen["headers"] = sorted(k for k in environ if k.startswith("HTTP_"))
    seen["body"] = body.decode("latin-1")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


@pytest.fixture
def echo() -> Iterator[Http11Server]:
    server = Http11Server(_echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(timeout=10)


def _raw(server: Http11Server, payload: bytes, *, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.server_port), timeout=timeout)
    sock.sendall(payload)
    return sock


def _read_replies(sock: socket.socket, count: int) -> list[tuple[str, dict[str, str], bytes]]:
    """`count` replies read off a raw socket (each sized by its Content-Length)."""
    buffer = b""
    replies: list[tuple[str, dict[str, str], bytes]] = []
    while len(replies) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            lines = buffer[:head_end].decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            length = int(headers.get("content-length", "0"))
            if len(buffer) >= head_end + 4 + length:
                replies.append((lines[0], headers, buffer[head_end + 4 : head_end + 4 + length]))
                buffer = buffer[head_end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    return replies


def test_a_connection_is_kept_alive_across_requests(echo: Http11Server) -> None:
    # Given one client connection
    connection = http.client.HTTPConnection("127.0.0.1", echo.server_port, timeout=10)
    # When it makes two requests
    ports = []
    for body in (b"one", b"two"):
        connection.request("POST", "/a%20b/c?x=1", body=body, headers={"Content-Type": "text/plain"})
        reply = connection.getresponse()
        seen = json.loads(reply.read())
        assert reply.status == 200 and reply.getheader("Connection") is None
        assert seen["body"] == body.decode()
        ports.append(seen["REMOTE_PORT"])
    # Then both came over the same socket, with the path unquoted and the raw target kept
    assert ports[0] == ports[1]
    assert seen["PATH_INFO"] == "/a b/c" and seen["RAW_URI"] == "/a%20b/c?x=1" and seen["QUERY_STRING"] == "x=1"
    connection.close()


def test_pipelined_requests_are_answered_in_order(echo: Http11Server) -> None:
    payload = b"".join(
        f"POST /{n} HTTP/1.1\r\nHost: h\r\nContent-Length: {len(str(n))}\r\n\r\n{n}".encode() for n in range(5)
    )
    sock = _raw(echo, payload)
    replies = _read_replies(sock, 5)
    assert [json.loads(body)["PATH_INFO"] for _, _, body in replies] == [f"/{n}" for n in range(5)]
    sock.close()


def test_a_chunked_body_arrives_whole(echo: Http11Server) -> None:
    sock = _raw(
        echo,
        b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: x\r\n\r\n",
    )
    ((status, _, body),) = _read_replies(sock, 1)
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["body"] == "Wikipedia "
    sock.close()


def test_expect_100_continue_is_answered_before_the_body(echo: Http11Server) -> None:
    sock = _raw(echo, b"PUT /e HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    sock.sendall(b"hello")
    ((status, _, body),) = _read_replies(sock, 1)
    assert json.loads(body)["body"] == "hello"
    sock.close()


def test_http_1_0_and_connection_close_end_the_connection(echo: Http11Server) -> None:
    for request in (b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"):
        sock = _raw(echo, request)
        ((_, headers, _),) = _read_replies(sock, 1)
        assert headers["connection"] == "close"
        assert sock.recv(10) == b""  # closed by the server
        sock.close()


@pytest.mark.parametrize(
    "request_bytes",
    [b"NONSENSE\r\n\r\n", b"GET / HTTP/1.1\r\nbad header\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"],
)
def test_a_malformed_request_gets_400_and_the_server_carries_on(echo: Http11Server, request_bytes: bytes) -> None:
    sock = _raw(echo, request_bytes)
    ((status, headers, _),) = _read_replies(sock, 1)
    assert status.startswith("HTTP/1.1 400") and headers["connection"] == "close"
    sock.close()
    connection = http.client.HTTPConnection("127.0.0.1", echo.server_port, timeout=10)
    connection.request("GET", "/after")
    assert connection.getresponse().status == 200
    connection.close()


def test_underscored_headers_are_dropped_except_s3_metadata(echo: Http11Server) -> None:
    sock = _raw(echo, b"GET / HTTP/1.1\r\nHost: h\r\nX_Spoof: 1\r\nx-amz-meta-my_key: v\r\nX-Real: 2\r\n\r\n")
    ((_, _, body),) = _read_replies(sock, 1)
    assert json.loads(body)["headers"] == ["HTTP_HOST", "HTTP_X_AMZ_META_MY_KEY", "HTTP_X_REAL"]
    sock.close()


def test_a_client_that_does_not_read_its_reply_does_not_stall_the_others(echo: Http11Server) -> None:
    # Given a client that asks for 8 MB and reads none of it
    slow = _raw(echo, b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
    time.sleep(0.2)
    # When another client asks for something
    connection = http.client.HTTPConnection("127.0.0.1", echo.server_port, timeout=5)
    connection.request("GET", "/quick")
    # Then it is answered, and the slow client still gets all of its reply afterwards
    assert connection.getresponse().status == 200
    ((_, _, body),) = _read_replies(slow, 1)
    assert len(body) == 8_000_000
    slow.close()
    connection.close()


# --- parsing does not depend on how the bytes arrive --------------------------------------------

requests_bytes = st.lists(
    st.tuples(
        st.sampled_from(["GET", "POST", "PUT"]),
        st.text(alphabet="abc/%20", min_size=0, max_size=8),
        st.binary(max_size=40),
        st.booleans(),
    ),
    min_size=1,
    max_size=4,
)


def _encode(method: str, path: str, body: bytes, chunked: bool) -> bytes:
    head = f"{method} /{path} HTTP/1.1\r\nHost: h\r\n"
    if chunked:
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7))
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@settings(max_examples=150, deadline=None)
@given(requests=requests_bytes, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_requests_parse_the_same_however_the_stream_is_cut(
    requests: list[tuple[str, str, bytes, bool]], cuts: list[int]
) -> None:
    stream = b"".join(_encode(*r) for r in requests)
    buffer = bytearray()
    parsed = []
    points = sorted({min(c, len(stream)) for c in cuts} | {len(stream)})
    start = 0
    for point in points:
        buffer += stream[start:point]
        start = point
        while (found := parse_request(buffer)) is not None:
            request, length = found
            del buffer[:length]
            parsed.append((request.method, request.target, request.body))
    assert parsed == [(m, f"/{p}", b) for m, p, b, _ in requests]
    assert not buffer


def test_the_request_log_names_each_request_in_order() -> None:
    from pointbridge.sandbox.emulator import Emulator

    emulator = Emulator()
    emulator.start()
    try:
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=emulator.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ddb.list_tables()
        emulator.start_request_log()
        ddb.list_tables()
        with pytest.raises(ClientError):
            ddb.describe_table(TableName="missing")
        log = emulator.stop_request_log()
        ddb.list_tables()
        assert [(r.target, r.status) for r in log] == [
            ("DynamoDB_20120810.ListTables", 200),
            ("DynamoDB_20120810.DescribeTable", 400),
        ]
        assert json.loads(log[1].body) == {"TableName": "missing"} and all(r.seconds > 0 for r in log)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emulator.url)
    finally:
        emulator.stop()


def test_the_emulator_reports_each_queue_and_stream_that_got_something() -> None:
    from pointbridge.sandbox.emulator import Emulator

    reported: list[str] = []
    arrived = threading.Condition()

    def note(arn: str) -> None:
        with arrived:
            reported.append(arn)
            arrived.notify_all()

    def wait_for(count: int) -> list[str]:
        with arrived:
            assert arrived.wait_for(lambda: len(reported) >= count, timeout=30), reported
            return list(reported)

    emulator = Emulator(on_arrival=note)
    emulator.start()
    try:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        sqs = session.client("sqs", endpoint_url=emulator.url)
        ddb = session.client("dynamodb", endpoint_url=emulator.url)
        quiet = sqs.create_queue(QueueName="quiet")["QueueUrl"]
        busy = sqs.create_queue(QueueName="busy")["QueueUrl"]
        busy_arn = sqs.get_queue_attributes(QueueUrl=busy, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        stream_arn = ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )["TableDescription"]["LatestStreamArn"]
        # Creating, reading and an empty receive add nothing
        sqs.receive_message(QueueUrl=quiet, WaitTimeSeconds=0)
        # A batch of three messages is one report for its queue, after the request
        sqs.send_message_batch(QueueUrl=busy, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(3)])
        assert wait_for(1) == [busy_arn]
        # A write is a report for the table's stream
        ddb.put_item(TableName="t", Item={"PK": {"S": "a"}})
        assert wait_for(2) == [busy_arn, stream_arn]
        assert sqs.receive_message(QueueUrl=quiet, WaitTimeSeconds=0).get("Messages") is None
    finally:
        emulator.stop()
    assert reported == [busy_arn, stream_arn]
