"""Big files in chunks (issue 12, "Big files"): a file is cut at row boundaries, each chunk parses to
exactly what the whole file gives for its rows (same line numbers, same reasons), and bad bytes or
dates cost their own row only."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.batch import Layout, layout
from integrations.currency import CurrencyPolicy
from integrations.partner_feed import PartnerFeedConfig, parse_partner_chunk, parse_partner_feed
from integrations.till_csv import TillCsvConfig, parse_till_chunk, parse_till_csv

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
AT = (NOW - timedelta(days=1)).isoformat()


def partner() -> PartnerFeedConfig:
    return PartnerFeedConfig(program="demo", partner_id="skyair", currency=CurrencyPolicy(program_currency="EUR"))


def till() -> TillCsvConfig:
    return TillCsvConfig(program="demo", identity_key="k", currency=CurrencyPolicy(program_currency="EUR"))


def blocks(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)] or [b""]


def by_chunks(raw: bytes, shape: Layout, parse: Any) -> tuple[list[Any], list[Any]]:
    accepted, rejected = [], []
    for span in shape.spans:
        report = parse(shape.header, raw[span.start : span.end], span.first_line)
        accepted += report.accepted
        rejected += report.rejected
    return accepted, rejected


def feed(rows: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    lines = ["partner_member_id,external_id,occurred_at,points,reason"]
    for i in range(rows):
        reason = rng.choice(["flight", '"quoted, with comma"', '"two\nlines"', "x"])
        lines.append(f"AIR-{i % 97},tx-{i},{AT},{1 + i % 50},{reason}")
    return ("\r\n" if seed % 2 else "\n").join(lines).encode() + b"\n"


@pytest.mark.parametrize("block", [1, 7, 64 * 1024])
def test_chunks_of_a_partner_file_give_what_the_whole_file_gives(block: int) -> None:
    raw = feed(1_000)
    whole = parse_partner_feed(raw, partner(), now=NOW, fmt="csv")
    shape = layout(blocks(raw, block), fmt="csv", max_lines=97)
    assert len(shape.spans) > 5 and shape.spans[0].first_line == 2
    accepted, rejected = by_chunks(
        raw, shape, lambda header, body, line: parse_partner_chunk(header, body, line, partner(), now=NOW, fmt="csv")
    )
    assert [e.external_id for e in accepted] == [e.external_id for e in whole.accepted] and len(accepted) == 1_000
    assert rejected == whole.rejected
    assert shape.spans[-1].end == len(raw)


def test_a_quoted_field_over_two_lines_is_never_cut() -> None:
    raw = b"partner_member_id,external_id,occurred_at,points,reason\n" + b"".join(
        f'M{i},t-{i},{AT},5,"line one\nline two"\n'.encode() for i in range(10)
    )
    shape = layout([raw], fmt="csv", max_lines=1)
    assert len(shape.spans) == 10
    assert [s.first_line for s in shape.spans] == list(range(2, 22, 2))


def test_json_lines_are_cut_at_any_line() -> None:
    raw = b"".join(
        f'{{"partner_member_id": "M{i}", "external_id": "j-{i}", "occurred_at": "{AT}", "points": 3}}\n'.encode()
        for i in range(25)
    )
    shape = layout(blocks(raw, 10), fmt="jsonl", max_lines=10)
    assert shape.header == "" and [s.first_line for s in shape.spans] == [1, 11, 21]
    accepted, rejected = by_chunks(
        raw, shape, lambda header, body, line: parse_partner_chunk(header, body, line, partner(), now=NOW, fmt="jsonl")
    )
    assert len(accepted) == 25 and rejected == []


def test_a_row_that_is_not_utf8_is_refused_alone_with_its_line() -> None:
    # Given a till file with one row saved in Latin-1 (é as 0xE9) between good rows
    header = "store_id,till_id,receipt_no,occurred_at,card_number,currency,amount,type\n"
    good = f"S1,T1,R1,{AT},123456,EUR,1.00,sale\n"
    bad = f"S1,T1,R2,{AT},123456,EUR,2.00,sale\n".replace("sale", "sal\xe9").encode("latin-1")
    raw = header.encode() + good.encode() + bad + good.replace("R1", "R3").encode()
    # When it is read, whole or in chunks
    whole = parse_till_csv(raw, till(), now=NOW)
    shape = layout([raw], fmt="csv", max_lines=1)
    _, rejected = by_chunks(raw, shape, lambda h, body, line: parse_till_chunk(h, body, line, till(), now=NOW))
    # Then the good rows earn and the bad one is refused with its line and why
    assert [e.external_id for e in whole.accepted] == ["T1:R1", "T1:R3"]
    [refused] = whole.rejected
    assert (refused.line, refused.code) == (3, "malformed_payload")
    assert refused.reason == "line is not UTF-8 (byte 0xe9)"
    assert rejected == whole.rejected


def test_a_header_that_is_not_utf8_refuses_the_file_at_the_header() -> None:
    report = parse_till_csv(b"\xff\xfe\x00bad\n", till(), now=NOW)
    assert report.accepted == []
    assert [(r.line, r.reason) for r in report.rejected] == [(1, "header line is not UTF-8 (byte 0xff)")]


@pytest.mark.parametrize(
    ("occurred_at", "code"),
    [
        ("9999-12-31T23:59:59+00:00", "stale_webhook"),
        ("9999-12-31T23:00:00-05:00", "stale_webhook"),
        ("0001-01-01T00:00:00+05:00", "stale_webhook"),
        ("0001-01-01T00:00:00+00:00", "stale_webhook"),
        ("10000-01-01T00:00:00+00:00", "malformed_payload"),
    ],
)
def test_a_row_dated_outside_any_sensible_range_is_refused_alone(occurred_at: str, code: str) -> None:
    raw = (
        f"partner_member_id,external_id,occurred_at,points\nM1,t-1,{AT},10\nM2,t-2,{occurred_at},10\nM3,t-3,{AT},10\n"
    ).encode()
    report = parse_partner_feed(raw, partner(), now=NOW, fmt="csv")
    assert [e.external_id for e in report.accepted] == ["t-1", "t-3"]
    assert [(r.line, r.code) for r in report.rejected] == [(3, code)]
    assert report.rejected[0].reason


@settings(max_examples=60, deadline=None)
@given(
    raw=st.binary(max_size=600) | st.text(alphabet=st.sampled_from('ab,;"\n\r\t\xe9'), max_size=300).map(str.encode),
    max_lines=st.integers(1, 5),
    block=st.integers(1, 50),
)
def test_chunks_never_lose_or_invent_a_row_whatever_the_bytes(raw: bytes, max_lines: int, block: int) -> None:
    header = b"partner_member_id,external_id,occurred_at,points\n"
    data = header + raw
    shape = layout(blocks(data, block), fmt="csv", max_lines=max_lines)
    # The spans tile the file after the header, in order, without gaps
    ends = [shape.spans[0].start] if shape.spans else []
    for span in shape.spans:
        assert span.start == ends[-1] and span.end > span.start
        ends.append(span.end)
    assert not shape.spans or shape.spans[-1].end == len(data)
    for span in shape.spans:
        report = parse_partner_chunk(
            shape.header, data[span.start : span.end], span.first_line, partner(), now=NOW, fmt="csv"
        )
        assert all(r.line >= span.first_line for r in report.rejected)


def test_amounts_survive_the_chunking() -> None:
    raw = ("partner_member_id,external_id,occurred_at,amount,currency\n" + f"M1,t-1,{AT},12.34,EUR\n").encode()
    shape = layout([raw], fmt="csv", max_lines=10)
    [event] = parse_partner_chunk(shape.header, raw[shape.spans[0].start :], 2, partner(), now=NOW, fmt="csv").accepted
    assert event.eligible_amount == Decimal("12.3400")  # type: ignore[union-attr]
