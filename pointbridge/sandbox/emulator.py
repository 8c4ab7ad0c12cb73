"""moto in server mode, in its own process, with every request applied under one lock.

In front of the lock, an IAM gate refuses what a function's policy does not allow (iam.py); the
sandbox gives it the functions' policies through `/_sandbox/iam` once they are provisioned.

moto's threaded server is not thread-safe: two concurrent conditional writes can both succeed,
which DynamoDB never allows. One lock around the WSGI app makes each request atomic, as the real
services apply them. The price: a long-polling ReceiveMessage (WaitTimeSeconds > 0) would hold the
lock for its whole wait, so the sandbox's own pollers never long-poll.

A separate process keeps moto's process-wide backends private to one sandbox, so two sandboxes
(or a test and a sandbox) never share state.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import threading
import urllib.request
from dataclasses import replace
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pointbridge.sandbox.iam import Enforcer, PolicySet
from pointbridge.sandbox.iam_requests import AwsRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess


class LockedApp:
    """A WSGI app that lets one request at a time into the wrapped app, body included."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            # Drain the body inside the lock: some moto responses are generated lazily.
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
    from werkzeug.wsgi import get_input_stream

    body: bytes = get_input_stream(environ).read()
    # moto reads the body again after the gate.
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input_terminated"] = False
    return body


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
        signer = self.enforcer.principal_for(request)
        if signer is None:
            return self._app(environ, start_response)
        _, _, service = signer
        query = request.query.split("&")
        # An S3 object's body is not needed to authorise it (a multi-object delete's list of keys is).
        if service != "s3" or "delete" in query or "delete=" in query:
            request = replace(request, body=_body(environ))
        refusal = self.enforcer.check(request)
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


def _serve(conn: Connection) -> None:
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    from pointbridge.sandbox import moto_speedups

    moto_speedups.install()

    class QuietHandler(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
            return

    app = IamGate(LockedApp(DomainDispatcherApplication(create_backend_app)), Enforcer())
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    conn.send(server.server_port)
    watcher = threading.Thread(target=_stop_when_parent_says, args=(conn, server), daemon=True)
    watcher.start()
    server.serve_forever(poll_interval=0.2)
    server.server_close()


def _stop_when_parent_says(conn: Connection, server: Any) -> None:
    # Any message, or the pipe closing because the parent died, ends the server.
    try:
        conn.recv()
    except (EOFError, OSError):
        pass
    server.shutdown()


class Emulator:
    def __init__(self) -> None:
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child,), name="pointbridge-emulator", daemon=True)
        self._process.start()
        child.close()
        if not parent.poll(timeout):
            self.stop()
            raise RuntimeError("the moto emulator did not start")
        self.port = int(parent.recv())
        self._conn = parent

    def iam(self, method: str, payload: str | None = None, query: str = "") -> Any:
        """Talk to the emulator's IAM gate (see IamGate)."""
        data = payload.encode() if payload is not None else None
        url = self.url + IAM_CONTROL + (f"?{query}" if query else "")
        request = urllib.request.Request(url, data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())

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
        self._process = None
        self._conn = None
        self.port = 0
