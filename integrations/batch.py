"""Reading batch files (CSV, JSON lines) row by row, so one broken row never sinks the rest.

Header handling is the same for every CSV we accept: a UTF-8 BOM is dropped; names are trimmed,
lowercased, and spaces or hyphens become underscores; documented aliases map to the canonical
name; unknown columns are ignored; the delimiter is whichever of comma, semicolon or tab the
header line uses (comma when it has none). Blank lines, and rows whose every field is empty, are
skipped without being reported.
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
    from collections.abc import Callable, Iterator, Mapping
    from datetime import datetime, timedelta

    from integrations.report import Event

# A day's till file is thousands of rows; this keeps one request's memory bounded.
MAX_BATCH_BYTES = 20_000_000


@dataclass(frozen=True)
class Row:
    line: int
    values: Mapping[str, Any]


def decode(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        if len(raw) > MAX_BATCH_BYTES:
            raise MalformedPayloadError(f"file is larger than {MAX_BATCH_BYTES} bytes")
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MalformedPayloadError(f"file is not UTF-8 (byte {exc.start})") from None
    return raw.removeprefix("\ufeff")


def canonical(name: str, aliases: Mapping[str, str]) -> str:
    key = name.strip().removeprefix("\ufeff").strip().lower().replace(" ", "_").replace("-", "_")
    return aliases.get(key, key)


def _delimiter(header_line: str) -> str:
    counts = {delimiter: header_line.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def csv_rows(text: str, required: frozenset[str], aliases: Mapping[str, str], report: BatchReport) -> Iterator[Row]:
    """Yield data rows as canonical-name dicts; file- and row-level problems go into the report."""
    lines = io.StringIO(text, newline="")
    first = next((line for line in text.splitlines() if line.strip()), "")
    reader = csv.reader(lines, delimiter=_delimiter(first), strict=False)
    header: list[str] | None = None
    previous = 0
    while True:
        start = previous + 1
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
            header = [canonical(field, aliases) for field in fields]
            problem = _header_problem(header, required)
            if problem:
                report.rejected.append(RejectedRow(start, MalformedPayloadError.code, problem))
                return
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


def _header_problem(header: list[str], required: frozenset[str]) -> str | None:
    duplicates = sorted({name for name in header if name and header.count(name) > 1})
    if duplicates:
        return f"header repeats column(s) {', '.join(duplicates)}"
    missing = sorted(required - set(header))
    if missing:
        return f"header lacks required column(s) {', '.join(missing)}"
    return None


def jsonl_rows(text: str, report: BatchReport) -> Iterator[Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
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
