"""moto in server mode, in its own process, applying one request at a time.

In front of it, an IAM gate refuses what a function's policy does not allow (iam.py); the sandbox
gives it the functions' policies through `/_sandbox/iam` once they are provisioned.

moto is not thread-safe: two concurrent conditional writes can both succeed, which DynamoDB never
allows. The emulator's server (http11.Http11Server) runs every request to its last byte on one
thread, in the order requests complete, so each is atomic as the real services apply them; the
lock of LockedApp keeps that promise for any other server. Connections are kept alive (moto's
werkzeug server closed each one after its reply). The price of one request at a time: a
long-polling ReceiveMessage (WaitTimeSeconds > 0) would hold every other request for its whole
wait, so the sandbox's own pollers never long-poll. Instead the emulator tells the sandbox which
queues and streams got something new (`Arrivals`): after each request that added a message to a
queue or a record to a stream, it writes their ARNs to a one-way pipe, and the sandbox wakes the
pollers of those sources, so an idle poller need not keep asking an empty queue.

A separate process keeps moto's process-wide backends private to one sandbox, so two sandboxes
(or a test and a sandbox) never share state. Python runs one thread of it at a time anyway, so
the emulator uses one core: the workers and pollers have the other.
"""

from __future__ import annotations

import gc
import io
import json
import multiprocessing
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pointbridge.sandbox.iam import Enforcer, PolicySet
from pointbridge.sandbox.iam_requests import AwsRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess


@dataclass
class LoggedRequest:
    target: str  # X-Amz-Target, e.g. DynamoDB_20120810.GetItem ("" for REST-style services)
    body: bytes
    status: int = 0
    seconds: float = 0.0  # in moto's app, reply body included
    cpu_seconds: float = 0.0  # the emulator thread's CPU time for the same (not counting waits for a core)


class Arrivals:
    """The emulator's side of the arrivals pipe: the ARNs of the queues and streams that got a
    message or a record during the current request, written once each when the request ends.

    The pipe does not block the emulator: when the sandbox is slow to read and the pipe is full, a
    notice is dropped, which costs the poller concerned its idle pause (it still polls now and
    then), never a message.
    """

    def __init__(self, pipe: Connection) -> None:
        os.set_blocking(pipe.fileno(), False)
        self._pipe = pipe
        self._pending: set[str] = set()

    def note(self, arn: str) -> None:
        self._pending.add(arn)

    def announce(self) -> None:
        if not self._pending:
            return
        notice, self._pending = "\n".join(sorted(self._pending)).encode(), set()
        try:
            self._pipe.send_bytes(notice)
        except OSError:
            pass  # full (BlockingIOError) or closed: see the class's note


def _watch_arrivals(arrivals: Arrivals) -> None:
    """Note every message moto adds to a queue (sends, S3 and SNS deliveries, dead-letter moves)
    and every record it adds to a stream, whichever request caused it."""
    from moto.dynamodb.models.table import StreamShard
    from moto.sqs.models import Queue

    add_message, add_record = Queue.add_message, StreamShard.add

    def add_message_noted(queue: Any, message: Any) -> None:
        add_message(queue, message)
        arrivals.note(queue.queue_arn)

    def add_record_noted(shard: Any, old: Any, new: Any) -> None:
        add_record(shard, old, new)
        table = shard.table
        arrivals.note(f"{table.table_arn}/stream/{table.latest_stream_label}")

    setattr(Queue, "add_message", add_message_noted)  # noqa: B010 - moto's own signature is narrower
    setattr(StreamShard, "add", add_record_noted)  # noqa: B010


class LockedApp:
    """A WSGI app that lets one request at a time into the wrapped app, body included.

    The emulator's server already runs one request at a time; the lock keeps the promise for any
    server this app is handed to. With `log` set to a list, every request's X-Amz-Target, body,
    reply status and time in moto are appended to it in the order they were applied (what the
    benchmarks replay, count and time).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], arrivals: Arrivals | None = None) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.log: list[LoggedRequest] | None = None
        self._arrivals = arrivals

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            try:
                return self._apply(environ, start_response)
            finally:
                if self._arrivals is not None:
                    self._arrivals.announce()

    def _apply(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if self.log is None:
            return self._drain(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        entry = LoggedRequest(environ.get("HTTP_X_AMZ_TARGET", ""), body)
        self.log.append(entry)

        def noting_status(status: str, *args: Any) -> Any:
            entry.status = int(status.split(" ", 1)[0])
            return start_response(status, *args)

        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            return self._drain(environ, noting_status)
        finally:
            entry.seconds = time.perf_counter() - started
            entry.cpu_seconds = time.thread_time() - cpu_started

    def _drain(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # Drain the body before the next request: some moto responses are generated lazily.
        result = self._app(environ, start_response)
        try:
            return [bytes(chunk) for chunk in result]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


IAM_CONTROL = "/_sandbox/iam"


def _wsgi_text(value: str) -> str:
    # WSGI hands the path over as latin-1 decoded bytes (PEP 3333); the bytes are UTF-8.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _request(environ: dict[str, Any]) -> AwsRequest:
    headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return AwsRequest(
        method=str(environ["REQUEST_METHOD"]).upper(),
        host=headers.get("host", ""),
        path=_wsgi_text(str(environ.get("PATH_INFO") or "/")),
        query=str(environ.get("QUERY_STRING") or ""),
        headers=headers,
    )


def _body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if type(stream) is io.BytesIO and not environ.get("wsgi.input_terminated") and stream.tell() == 0:
        # http11's own environ: the whole body, Content-Length long, in a stream nobody has read.
        whole = stream.getvalue()
        if str(len(whole)) == environ.get("CONTENT_LENGTH") and "HTTP_TRANSFER_ENCODING" not in environ:
            return whole
    from werkzeug.wsgi import get_input_stream

    body: bytes = get_input_stream(environ).read()
    # moto reads the body again after the gate.
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input_terminated"] = False
    return body


_SIGV2_REFUSED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRequest</Code><Message>The authorization '
    b"mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.</Message></Error>"
)


def _signed_v2(request: AwsRequest) -> bool:
    authorization = request.headers.get("authorization", "")
    if authorization.startswith("AWS ") and not authorization.startswith("AWS4-"):
        return True
    query = request.query.split("&")
    return any(part.startswith("AWSAccessKeyId=") for part in query) and any(
        part.startswith("Signature=") for part in query
    )


class IamGate:
    """Refuses a function's request that its policy does not allow, before moto sees it.

    Requests signed with any key that is not a function's pass untouched (bodies unread). `PUT
    /_sandbox/iam` sets the policies (a PolicySet as JSON), `GET` reports what each function used
    and was refused, `DELETE` forgets that report.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], enforcer: Enforcer) -> None:
        self._app = app
        self.enforcer = enforcer

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == IAM_CONTROL:
            return self._control(environ, start_response)
        request = _request(environ)
        if _signed_v2(request):
            # S3 buckets created since June 2020 accept only Signature Version 4, presigned URLs included.
            start_response("400 Bad Request", [("Content-Type", "application/xml")])
            return [_SIGV2_REFUSED]
        signer = self.enforcer.principal_for(request)
        if signer is None:
            return self._app(environ, start_response)
        _, _, service = signer
        query = request.query.split("&")
        # An S3 object's body is not needed to authorise it (a multi-object delete's list of keys is).
        if service != "s3" or "delete" in query or "delete=" in query:
            request = replace(request, body=_body(environ))
        refusal = self.enforcer.check(request, signer)
        if refusal is None:
            return self._app(environ, start_response)
        start_response(f"{refusal.status} {HTTPStatus(refusal.status).phrase}", list(refusal.headers.items()))
        return [refusal.body]

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = str(environ["REQUEST_METHOD"]).upper()
        if method == "PUT":
            query = str(environ.get("QUERY_STRING") or "")
            self.enforcer.configure(PolicySet.from_json(_body(environ).decode()), refuse="audit" not in query)
            payload: Any = {"functions": sorted(self.enforcer.policies.by_function())}
        elif method == "DELETE":
            self.enforcer.reset_report()
            payload = {}
        else:
            payload = self.enforcer.report()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(payload).encode()]


def _serve(conn: Connection, arrivals_pipe: Connection) -> None:
    from moto.server import DomainDispatcherApplication, create_backend_app

    from pointbridge.sandbox import moto_requests, moto_speedups
    from pointbridge.sandbox.http11 import Http11Server
    from pointbridge.sandbox.moto_dynamodb import DynamoDBDispatch

    moto_speedups.install()
    moto_requests.install()
    freeze_survivors_of_full_collections()
    arrivals = Arrivals(arrivals_pipe)
    _watch_arrivals(arrivals)

    # DynamoDB's, SQS's and EventBridge's JSON requests skip moto's domain dispatcher and Flask
    # (moto_dynamodb.DynamoDBDispatch).
    locked = LockedApp(DynamoDBDispatch(DomainDispatcherApplication(create_backend_app)), arrivals)
    server = Http11Server(IamGate(locked, Enforcer()))
    conn.send(server.server_port)
    watcher = threading.Thread(target=_obey_parent, args=(conn, server, locked), daemon=True)
    watcher.start()
    profile_path = os.environ.get(PROFILE_ENV)
    if profile_path:
        server.on_idle = _RequestLogProfiler(locked, profile_path).follow
    server.serve_forever()


def freeze_survivors_of_full_collections() -> Callable[[str, dict[str, Any]], None]:
    """Keep what outlived a full collection out of the next ones (`gc.freeze` after each).

    The emulator's heap is the tables, queues and streams, which only grow; CPython's full
    collections walk all of it, and took 13% of the emulator's CPU in a 1,200-event run (2 s of
    18, ten collections), more as a big file's items pile up. Frozen objects are still freed when
    their last reference goes; only a cycle that outlived a full collection and died later is kept
    (the young generations still collect the request-scoped cycles moto makes, a million objects
    in that run). Returns the callback, which `gc.callbacks` holds."""

    def after_full_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()

    gc.collect()
    gc.freeze()  # what start-up loaded (moto's modules, botocore's models)
    gc.callbacks.append(after_full_collection)
    return after_full_collection


PROFILE_ENV = "POINTBRIDGE_EMULATOR_PROFILE"


class _RequestLogProfiler:
    """With POINTBRIDGE_EMULATOR_PROFILE=<path>: cProfile of the server thread, on its CPU clock
    (time a core was not given to it is not counted), while the request log is on; the stats of
    each logged span are added to <path> (pstats) when it ends. For finding where the emulator's
    CPU goes; the profiler's own cost inflates small, frequent calls."""

    def __init__(self, app: LockedApp, path: str) -> None:
        import cProfile

        self._app = app
        self._path = path
        self._profile = cProfile.Profile(time.thread_time)
        self._on = False

    def follow(self) -> None:
        logging = self._app.log is not None
        if logging and not self._on:
            self._profile.enable()
        elif self._on and not logging:
            self._profile.disable()
            self._profile.dump_stats(self._path)
        self._on = logging


def _obey_parent(conn: Connection, server: Any, app: LockedApp) -> None:
    # "log-start" / "log-stop" (answered with the log) drive the request log; anything else, or
    # the pipe closing because the parent died, ends the server.
    try:
        while True:
            command = conn.recv()
            if command == "log-start":
                app.log = []
                conn.send(None)
            elif command == "log-stop":
                log, app.log = app.log, None
                conn.send(log or [])
            else:
                break
    except (EOFError, OSError):
        pass
    server.shutdown()


class Emulator:
    """`on_arrival(arn)` is called (on a thread of its own) for each queue or stream that got a
    message or a record, after the request that added it."""

    def __init__(self, on_arrival: Callable[[str], None] | None = None) -> None:
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._relay: threading.Thread | None = None
        self.on_arrival = on_arrival
        self.port = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        arrivals_in, arrivals_out = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_serve, args=(child, arrivals_out), name="pointbridge-emulator", daemon=True)
        self._process.start()
        child.close()
        arrivals_out.close()  # the emulator holds the only writing end: its exit ends the relay
        self._relay = threading.Thread(
            target=self._relay_arrivals, args=(arrivals_in,), name="emulator-arrivals", daemon=True
        )
        self._relay.start()
        if not parent.poll(timeout):
            self.stop()
            raise RuntimeError("the moto emulator did not start")
        self.port = int(parent.recv())
        self._conn = parent

    def _relay_arrivals(self, pipe: Connection) -> None:
        with pipe:
            while True:
                try:
                    notice = pipe.recv_bytes()
                except (EOFError, OSError):
                    return
                if self.on_arrival is None:
                    continue
                for arn in notice.decode().split("\n"):
                    self.on_arrival(arn)

    def iam(self, method: str, payload: str | None = None, query: str = "") -> Any:
        """Talk to the emulator's IAM gate (see IamGate)."""
        data = payload.encode() if payload is not None else None
        url = self.url + IAM_CONTROL + (f"?{query}" if query else "")
        request = urllib.request.Request(url, data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())

    def start_request_log(self) -> None:
        """From now on, remember every request (X-Amz-Target and body) in the order it was applied."""
        self._ask("log-start")

    def stop_request_log(self) -> list[LoggedRequest]:
        """The requests applied since `start_request_log`, in order; the log is then dropped."""
        log: list[LoggedRequest] = self._ask("log-stop")
        return log

    def _ask(self, command: str) -> Any:
        if self._conn is None:
            raise RuntimeError("the emulator is not started")
        self._conn.send(command)
        return self._conn.recv()

    def stop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send("stop")
            except OSError:
                pass
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        if self._relay is not None:
            self._relay.join(timeout=5)
        self._relay = None
        self._process = None
        self._conn = None
        self.port = 0
