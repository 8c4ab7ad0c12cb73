"""Reading batch files (CSV, JSON lines) row by row, so one broken row never sinks the rest.

Header handling is the same for every CSV we accept: a UTF-8 BOM is dropped; names are trimmed,
lowercased, and spaces or hyphens become underscores; documented aliases map to the canonical
name; unknown columns are ignored; the delimiter is whichever of comma, semicolon or tab the
header line uses (comma when it has none). Blank lines, and rows whose every field is empty, are
skipped without being reported. Bytes that are not UTF-8 cost their own row only (refused with the
first bad byte); before 2026-12-07 they refused the whole file.

Big files are read in chunks: `layout` cuts a file at row boundaries (never inside a quoted field),
and a chunk is parsed with the file's header line and the physical line its rows start on, so it
gives exactly the rows, line numbers and reasons the whole file gives for them.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from integrations.common import check_sent_within, parse_time
from integrations.errors import AdapterError, MalformedPayloadError
from integrations.report import BatchReport, RejectedRow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from datetime import datetime, timedelta

    from integrations.report import Event

# Parsed whole (not in chunks), a file is held in memory: this keeps one request's bounded. The
# file splitter reads any size, a chunk at a time (`layout`).
MAX_BATCH_BYTES = 20_000_000
# A chunk: at most this many physical lines, or about this many bytes (a chunk ends at the first
# row boundary past it), or, in a file whose quotes never close, this many bytes whatever the quotes.
CHUNK_LINES = 500
CHUNK_BYTES = 1_000_000
CHUNK_BYTES_HARD = 4 * CHUNK_BYTES
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Row:
    line: int
    values: Mapping[str, Any]


def decode(raw: bytes | str) -> str:
    """Text whose bytes that are not UTF-8 are kept as lone surrogates, for `not_utf8` to find per row."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_BATCH_BYTES:
            raise MalformedPayloadError(f"file is larger than {MAX_BATCH_BYTES} bytes")
        raw = raw.removeprefix(_BOM).decode("utf-8", errors="surrogateescape")
    return raw.removeprefix("\ufeff")


def not_utf8(text: str) -> str | None:
    """Why `text` (from `decode`) is not UTF-8: its first byte that is not, or None when it is."""
    for char in text:
        if "\udc80" <= char <= "\udcff":
            return f"byte 0x{ord(char) - 0xDC00:02x}"
    return None


@dataclass(frozen=True)
class Span:
    """One chunk of a file: its bytes `start`..`end` (whole rows) and the physical line it starts on."""

    start: int
    end: int
    first_line: int
    lines: int


@dataclass(frozen=True)
class Layout:
    """Where a file's rows are: its header line (CSV; "" for JSON lines or no header) and its chunks."""

    header: str
    header_at: int  # the header's physical line (0: none)
    spans: list[Span]
    size: int


def _physical_lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The file's lines, each with its line ending, from blocks of any size."""
    rest = b""
    for block in blocks:
        rest += block
        start = 0
        while (end := rest.find(b"\n", start)) >= 0:
            yield rest[start : end + 1]
            start = end + 1
        rest = rest[start:]
    if rest:
        yield rest


def layout(
    blocks: Iterable[bytes],
    *,
    fmt: str,
    max_lines: int = CHUNK_LINES,
    max_bytes: int = CHUNK_BYTES,
    hard_bytes: int = CHUNK_BYTES_HARD,
) -> Layout:
    """Cut a file into chunks of whole rows, reading it once, a line at a time.

    CSV: the header is the first line with content; a row boundary is a line end outside quotes
    (RFC 4180 doubles quotes inside quoted fields, so the count of quote characters on the lines
    so far is even exactly there). A file whose quotes never balance is still cut at `hard_bytes`:
    the broken row is then refused by the chunk's parse, and the rest is read.
    """
    csv_file = fmt == "csv"
    header = b""
    header_at = 0
    offset = 0
    line = 0
    spans: list[Span] = []
    start = start_line = 0
    span_lines = 0
    in_quotes = False
    for text in _physical_lines(blocks):
        line += 1
        offset += len(text)
        if csv_file and not header:
            if text.removeprefix(_BOM).strip():
                header, header_at = text, line
            continue
        if not span_lines:
            start, start_line = offset - len(text), line
        span_lines += 1
        if csv_file and text.count(b'"') % 2:
            in_quotes = not in_quotes
        size = offset - start
        if (not in_quotes and (span_lines >= max_lines or size >= max_bytes)) or size >= hard_bytes:
            spans.append(Span(start, offset, start_line, span_lines))
            span_lines = 0
            in_quotes = False
    if span_lines:
        spans.append(Span(start, offset, start_line, span_lines))
    header_text = header.removeprefix(_BOM).decode("utf-8", errors="surrogateescape").rstrip("\r\n")
    return Layout(header=header_text, header_at=header_at, spans=spans, size=offset)


def canonical(name: str, aliases: Mapping[str, str]) -> str:
    key = name.strip().removeprefix("\ufeff").strip().lower().replace(" ", "_").replace("-", "_")
    return aliases.get(key, key)


def _delimiter(header_line: str) -> str:
    counts = {delimiter: header_line.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def csv_rows(
    text: str,
    required: frozenset[str],
    aliases: Mapping[str, str],
    report: BatchReport,
    *,
    header_line: str | None = None,
    header_at: int = 1,
    first_line: int = 1,
) -> Iterator[Row]:
    """Yield data rows as canonical-name dicts; file- and row-level problems go into the report.

    With `header_line` (a chunk of a file; the header is physical line `header_at`), `text` holds
    rows only, starting on physical line `first_line`; otherwise the header is the first line of
    `text` with content.
    """
    lines = io.StringIO(text, newline="")
    first = header_line if header_line is not None else next((line for line in text.splitlines() if line.strip()), "")
    delimiter = _delimiter(first)
    reader = csv.reader(lines, delimiter=delimiter, strict=False)
    header: list[str] | None = None
    if header_line is not None:
        fields = next(csv.reader([header_line], delimiter=delimiter), [])
        header = _read_header(fields, required, aliases, report, header_at)
        if header is None:
            return
    shift = first_line - 1  # physical line = shift + the reader's line
    previous = 0
    while True:
        start = shift + previous + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            report.rejected.append(RejectedRow(start, MalformedPayloadError.code, f"unreadable CSV: {exc}"))
            if reader.line_num == previous:
                break  # no progress: the rest of the file cannot be read
            previous = reader.line_num
            continue
        previous = reader.line_num
        if not any(field.strip() for field in fields):
            continue
        if header is None:
            header = _read_header(fields, required, aliases, report, start)
            if header is None:
                return
            continue
        bad = next((why for field in fields if (why := not_utf8(field))), None)
        if bad:
            report.rejected.append(RejectedRow(start, MalformedPayloadError.code, f"line is not UTF-8 ({bad})"))
            continue
        if len(fields) != len(header):
            report.rejected.append(
                RejectedRow(
                    start,
                    MalformedPayloadError.code,
                    f"row has {len(fields)} fields, the header has {len(header)}",
                )
            )
            continue
        yield Row(start, {name: value.strip() for name, value in zip(header, fields, strict=True)})
    if header is None:
        report.rejected.append(RejectedRow(0, MalformedPayloadError.code, "file has no header row"))


def _read_header(
    fields: list[str], required: frozenset[str], aliases: Mapping[str, str], report: BatchReport, line: int
) -> list[str] | None:
    """The canonical column names, or None (the file refused at its header line, in the report)."""
    bad = next((why for field in fields if (why := not_utf8(field))), None)
    header = [canonical(field, aliases) for field in fields]
    problem = f"header line is not UTF-8 ({bad})" if bad else _header_problem(header, required)
    if problem:
        report.rejected.append(RejectedRow(line, MalformedPayloadError.code, problem))
        return None
    return header


def _header_problem(header: list[str], required: frozenset[str]) -> str | None:
    duplicates = sorted({name for name in header if name and header.count(name) > 1})
    if duplicates:
        return f"header repeats column(s) {', '.join(duplicates)}"
    missing = sorted(required - set(header))
    if missing:
        return f"header lacks required column(s) {', '.join(missing)}"
    return None


def jsonl_rows(text: str, report: BatchReport, *, first_line: int = 1) -> Iterator[Row]:
    for number, line in enumerate(text.split("\n"), start=first_line):
        if not line.strip():
            continue
        bad = not_utf8(line)
        if bad:
            report.rejected.append(RejectedRow(number, MalformedPayloadError.code, f"line is not UTF-8 ({bad})"))
            continue
        try:
            value = json.loads(line, parse_float=Decimal, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            report.rejected.append(RejectedRow(number, MalformedPayloadError.code, f"not JSON: {exc}"))
            continue
        if not isinstance(value, dict):
            report.rejected.append(RejectedRow(number, MalformedPayloadError.code, "line is not a JSON object"))
            continue
        yield Row(number, value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def collect(rows: Iterator[Row], convert: Callable[[Row], Event], report: BatchReport) -> BatchReport:
    """Convert each row; a row's AdapterError becomes its rejection, and the next row carries on."""
    for row in rows:
        try:
            report.accepted.append(convert(row))
        except AdapterError as exc:
            report.rejected.append(RejectedRow(row.line, exc.code, exc.detail))
    return report


def field(row: Row, name: str) -> str:
    value = row.values.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MalformedPayloadError(f"{name} is empty")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedPayloadError(f"{name} must be text")
    return str(value).strip()


def optional(row: Row, name: str) -> str:
    value = row.values.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedPayloadError(f"{name} must be text")
    return str(value).strip()


def event_time(row: Row, name: str, now: datetime, max_age: timedelta, future_skew: timedelta) -> datetime:
    """Batch rows may be days old, but not older than the program accepts, nor in the future."""
    at = parse_time(row.values.get(name), name)
    check_sent_within(at, now, max_age, future_skew, name)
    return at
