"""The IAM gate reads a request's body as werkzeug's input stream gives it, and leaves the environ
so that moto reads the same body after it, whichever way the body came (emulator.py `_body`)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from werkzeug.wsgi import get_input_stream

from pointbridge.sandbox.emulator import _body
from pointbridge.sandbox.http11 import make_environ, parse_request


def _environ(raw: bytes) -> dict[str, Any]:
    parsed = parse_request(bytearray(raw))
    assert parsed is not None
    return make_environ(parsed[0], ("127.0.0.1", 4566), ("127.0.0.1", 50000))


def _read_as_moto(environ: dict[str, Any]) -> bytes:
    body: bytes = get_input_stream(environ).read()
    return body


REQUESTS = [
    b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{"a": "\xc3\xa9"}',
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n\x00\xff\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
]


@pytest.mark.parametrize("raw", REQUESTS)
def test_the_gate_reads_the_body_moto_would_read_and_leaves_it_to_moto(raw: bytes) -> None:
    expected = _read_as_moto(_environ(raw))
    environ = _environ(raw)
    assert _body(environ) == expected
    assert _read_as_moto(environ) == expected  # what moto reads after the gate


def test_a_stream_longer_than_its_content_length_takes_werkzeug_s_path() -> None:
    environ = {"wsgi.input": io.BytesIO(b"abcdef"), "CONTENT_LENGTH": "3"}
    assert _body(environ) == b"abc"
    assert _read_as_moto(environ) == b"abc"
