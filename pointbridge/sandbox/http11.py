"""A single-threaded HTTP/1.1 server for one WSGI app: kept-alive connections, one request at a time.

Why not werkzeug's development server: it closes the connection after every reply (so each boto3
call paid a TCP connect, an accept and a new thread), and its thread per connection made every
request's socket I/O wait for the GIL behind whichever request was running. Here one thread
reads every connection through a selector and runs each complete request through the app to its
last byte before it reads the next one, so requests are applied one at a time, atomically, in
the order they are complete - the guarantee the emulator's lock gives - and no request waits for
the GIL behind another's I/O. A slow
client cannot stall the others: reading and writing never block, and a reply that does not fit
the socket's buffer is written as the client drains it.

The WSGI environ is the one werkzeug's server builds (PATH_INFO unquoted, RAW_URI/REQUEST_URI as
sent, repeated headers joined with commas, headers with an underscore dropped) plus moto's own
server's exception: `x-amz-meta-*` headers keep their underscores (moto's MotoRequestHandler).
"""

from __future__ import annotations

import io
import selectors
import socket
import sys
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

MAX_HEADER_BYTES = 64 * 1024
READ_SIZE = 256 * 1024
SERVER_SOFTWARE = "pointbridge-sandbox"
REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


class BadRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _wsgi_string(text: str) -> str:
    # PEP 3333: environ strings are the request's bytes decoded as latin-1.
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


_PRESERVED_NAMES_KEY = "moto.preserved_header_names"  # moto.core.request.PRESERVED_HEADER_NAMES_ENVIRON_KEY


def _http_date() -> str:
    """The Date header's value, formatted once per second."""
    now = int(time.time())
    if _last_date[0] != now:
        _last_date[:] = [now, formatdate(now, usegmt=True)]
    return str(_last_date[1])


_last_date: list[Any] = [None, ""]


def _preserve_underscored_names(environ: dict[str, Any], headers: list[tuple[str, str]]) -> None:
    """moto's server keeps S3 metadata headers' underscores; a dashed header of the same key wins."""
    if not any("_" in name for name, _ in headers):
        environ[_PRESERVED_NAMES_KEY] = {}  # what the loop below leaves when no name is kept
        return
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )

    dashed = {environ_key_for_header(name) for name, _ in headers if "_" not in name}
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in headers:
        if not should_preserve_original_header_name(name):
            continue
        key = environ_key_for_header(name)
        if key in dashed:
            continue
        names.setdefault(key, name)
        values.setdefault(key, []).append(value)
    for key, key_values in values.items():
        environ[key] = ",".join(key_values)
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names


class _Request:
    """One parsed request: what the environ is built from."""

    def __init__(self, method: str, target: str, version: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body

    def keep_alive(self) -> bool:
        connection = ",".join(v for k, v in self.headers if k.lower() == "connection").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


def _header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in headers if k.lower() == name]
    return ",".join(values) if values else None


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked body starting at `start`: (body, end offset), or None while incomplete."""
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequestError(400, "malformed chunk size") from None
        position = line_end + 2
        if size == 0:
            # Trailers (ignored) end with an empty line.
            end = buffer.find(b"\r\n\r\n", position - 2)
            if end < 0:
                return None
            return bytes(body), end + 4
        if len(buffer) < position + size + 2:
            return None
        body += buffer[position : position + size]
        position += size + 2


def parse_request(buffer: bytearray) -> tuple[_Request, int] | None:
    """The first complete request in `buffer` and its length, or None while it is incomplete."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buffer) > MAX_HEADER_BYTES:
            raise BadRequestError(431, "request headers too large")
        return None
    lines = bytes(buffer[:head_end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequestError(400, "malformed request line")
    method, target, version = parts
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # an obsolete folded continuation line
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequestError(400, "malformed header line")
        headers.append((name, value.strip()))
    body_start = head_end + 4
    encoding = (_header_value(headers, "transfer-encoding") or "").lower()
    if "chunked" in encoding:
        dechunked = _dechunk(buffer, body_start)
        if dechunked is None:
            return None
        body, end = dechunked
        return _Request(method, target, version, headers, body), end
    length_text = _header_value(headers, "content-length") or "0"
    try:
        length = int(length_text)
    except ValueError:
        raise BadRequestError(400, "malformed Content-Length") from None
    if length < 0:
        raise BadRequestError(400, "malformed Content-Length")
    if len(buffer) < body_start + length:
        return None
    return _Request(method, target, version, headers, bytes(buffer[body_start : body_start + length])), (
        body_start + length
    )


def wants_continue(buffer: bytearray) -> bool:
    """The headers are in and ask for `100 Continue` before the body is sent."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = bytes(buffer[:head_end]).lower()
    return b"\r\nexpect: 100-continue" in head or b"\r\nexpect:100-continue" in head


def make_environ(request: _Request, server: tuple[str, int], peer: tuple[str, int]) -> dict[str, Any]:
    url = urlsplit(request.target)
    path = f"/{url.netloc}{url.path}" if not url.scheme and url.netloc else url.path
    environ: dict[str, Any] = {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": _wsgi_string(unquote(path)),
        "QUERY_STRING": _wsgi_string(url.query),
        "REQUEST_URI": _wsgi_string(request.target),
        "RAW_URI": _wsgi_string(request.target),
        "REMOTE_ADDR": peer[0],
        "REMOTE_PORT": peer[1],
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": request.version,
    }
    for name, value in request.headers:
        if "_" in name:
            continue
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = f"HTTP_{key}"
            if key in environ:
                value = f"{environ[key]},{value}"
        environ[key] = value
    # The body is handed over whole, so chunked framing no longer applies to it.
    if "HTTP_TRANSFER_ENCODING" in environ:
        environ["wsgi.input_terminated"] = True
    if url.scheme and url.netloc:
        environ["HTTP_HOST"] = url.netloc
    _preserve_underscored_names(environ, request.headers)
    return environ


class _Connection:
    def __init__(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        self.sock = sock
        self.peer = peer
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.close_after_write = False
        self.continued = False
        self.events = selectors.EVENT_READ


class Http11Server:
    """Serves `app` on host:port (0: a free port) until `shutdown()`."""

    def __init__(self, app: Callable[..., Iterable[bytes]], host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(256)
        self._listener.setblocking(False)
        self.server_address: tuple[str, int] = self._listener.getsockname()[:2]
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._connections: dict[int, _Connection] = {}
        self._running = False
        self.on_idle: Callable[[], None] | None = None  # called between batches of ready sockets

    @property
    def server_port(self) -> int:
        return self.server_address[1]

    def shutdown(self) -> None:
        """Ends `serve_forever` (from another thread)."""
        self._running = False
        try:
            self._wake_write.send(b"x")
        except OSError:
            pass

    def serve_forever(self) -> None:
        self._running = True
        while self._running:
            if self.on_idle is not None:
                self.on_idle()
            for key, events in self._selector.select(timeout=1.0):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._running = False
                else:
                    connection: _Connection = key.data
                    if events & selectors.EVENT_WRITE:
                        self._flush(connection)
                    if events & selectors.EVENT_READ and connection.sock.fileno() >= 0:
                        self._read(connection)
        self.server_close()

    def server_close(self) -> None:
        for connection in list(self._connections.values()):
            self._close(connection)
        for sock in (self._listener, self._wake_read, self._wake_write):
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self._selector.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            # Replies go out in one write; without this a small body could wait for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(sock, peer[:2])
            self._connections[sock.fileno()] = connection
            self._selector.register(sock, selectors.EVENT_READ, connection)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(connection)
            return
        if not data:
            self._close(connection)
            return
        connection.inbox += data
        self._serve_ready(connection)

    def _serve_ready(self, connection: _Connection) -> None:
        # Requests are answered in order; a pipelined one waits until the previous reply is out.
        while not connection.outbox and not connection.close_after_write:
            try:
                parsed = parse_request(connection.inbox)
            except BadRequestError as error:
                self._reply_error(connection, error.status, str(error))
                return
            if parsed is None:
                if not connection.continued and wants_continue(connection.inbox):
                    connection.continued = True
                    self._write(connection, b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            request, length = parsed
            del connection.inbox[:length]
            connection.continued = False
            self._respond(connection, request)

    def _respond(self, connection: _Connection, request: _Request) -> None:
        environ = make_environ(request, self.server_address, connection.peer)
        status_line: list[str] = []
        reply_headers: list[tuple[str, str]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            status_line[:] = [status]
            reply_headers[:] = headers
            return lambda data: chunks.append(bytes(data))

        chunks: list[bytes] = []
        try:
            result = self.app(environ, start_response)
            try:
                chunks.extend(bytes(chunk) for chunk in result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:  # the app failed: a 500, as werkzeug's server answers
            import traceback

            traceback.print_exc()
            self._reply_error(connection, 500, "Internal Server Error")
            return
        body = b"".join(chunks)
        keep_alive = request.keep_alive()
        head = [f"HTTP/1.1 {status_line[0]}"]
        names = set()
        for name, value in reply_headers:
            names.add(name.lower())
            head.append(f"{name}: {value}")
        code = int(status_line[0].split(" ", 1)[0])
        if "content-length" not in names and request.method != "HEAD" and not (100 <= code < 200 or code in (204, 304)):
            head.append(f"Content-Length: {len(body)}")
        if "date" not in names:
            head.append(f"Date: {_http_date()}")
        if "server" not in names:
            head.append(f"Server: {SERVER_SOFTWARE}")
        if not keep_alive:
            head.append("Connection: close")
            connection.close_after_write = True
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self._write(connection, payload + (b"" if request.method == "HEAD" else body))

    def _reply_error(self, connection: _Connection, status: int, message: str) -> None:
        body = message.encode()
        reason = REASONS.get(status, "Error")
        connection.close_after_write = True
        self._write(
            connection,
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + body,
        )

    def _write(self, connection: _Connection, data: bytes) -> None:
        connection.outbox += data
        self._flush(connection)

    def _flush(self, connection: _Connection) -> None:
        while connection.outbox:
            try:
                sent = connection.sock.send(connection.outbox)
            except (BlockingIOError, InterruptedError):
                self._watch(connection, selectors.EVENT_READ | selectors.EVENT_WRITE)
                return
            except OSError:
                self._close(connection)
                return
            del connection.outbox[:sent]
        if connection.close_after_write:
            self._close(connection)
            return
        self._watch(connection, selectors.EVENT_READ)
        if connection.inbox:
            self._serve_ready(connection)

    def _watch(self, connection: _Connection, events: int) -> None:
        if connection.events != events:
            connection.events = events
            self._selector.modify(connection.sock, events, connection)

    def _close(self, connection: _Connection) -> None:
        fileno = connection.sock.fileno()
        if fileno < 0:
            return
        self._connections.pop(fileno, None)
        try:
            self._selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass
        connection.sock.close()
