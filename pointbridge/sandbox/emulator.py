"""moto in server mode, in its own process, applying one request at a time.

moto is not thread-safe: two concurrent conditional writes can both succeed, which DynamoDB never
allows. The emulator's server (http11.Http11Server) runs every request to its last byte on one
thread, in the order requests complete, so each is atomic as the real services apply them; the
lock of LockedApp keeps that promise for any other server. Connections are kept alive (moto's
werkzeug server closed each one after its reply). The price of one request at a time: a
long-polling ReceiveMessage (WaitTimeSeconds > 0) would hold every other request for its whole
wait, so the sandbox's own pollers never long-poll.

A separate process keeps moto's process-wide backends private to one sandbox, so two sandboxes
(or a test and a sandbox) never share state. Python runs one thread of it at a time anyway, so
the emulator uses one core: the workers and pollers have the other.
"""

from __future__ import annotations

import io
import multiprocessing
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


class LockedApp:
    """A WSGI app that lets one request at a time into the wrapped app, body included.

    The emulator's server already runs one request at a time; the lock keeps the promise for any
    server this app is handed to. With `log` set to a list, every request's X-Amz-Target, body,
    reply status and time in moto are appended to it in the order they were applied (what the
    benchmarks replay, count and time).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.log: list[LoggedRequest] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
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


def _serve(conn: Connection) -> None:
    from moto.server import DomainDispatcherApplication, create_backend_app

    from pointbridge.sandbox import moto_speedups
    from pointbridge.sandbox.http11 import Http11Server

    moto_speedups.install()

    app = LockedApp(DomainDispatcherApplication(create_backend_app))
    server = Http11Server(app)
    conn.send(server.server_port)
    watcher = threading.Thread(target=_obey_parent, args=(conn, server, app), daemon=True)
    watcher.start()
    server.serve_forever()


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
    def __init__(self) -> None:
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
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
        self._process = ctx.Process(target=_serve, args=(child,), name="pointbridge-emulator", daemon=True)
        self._process.start()
        child.close()
        if not parent.poll(timeout):
            self.stop()
            raise RuntimeError("the moto emulator did not start")
        self.port = int(parent.recv())
        self._conn = parent

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
        self._process = None
        self._conn = None
        self.port = 0
