"""moto in server mode, in its own process, with every request applied under one lock.

moto's threaded server is not thread-safe: two concurrent conditional writes can both succeed,
which DynamoDB never allows. One lock around the WSGI app makes each request atomic, as the real
services apply them. The price: a long-polling ReceiveMessage (WaitTimeSeconds > 0) would hold the
lock for its whole wait, so the sandbox's own pollers never long-poll.

A separate process keeps moto's process-wide backends private to one sandbox, so two sandboxes
(or a test and a sandbox) never share state.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import TYPE_CHECKING, Any

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


def _serve(conn: Connection) -> None:
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    from pointbridge.sandbox import moto_speedups

    moto_speedups.install()

    class QuietHandler(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
            return

    app = LockedApp(DomainDispatcherApplication(create_backend_app))
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
