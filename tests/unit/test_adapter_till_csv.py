from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.currency import CurrencyPolicy
from integrations.till_csv import TillCsvConfig, parse_till_csv
from shared.events.identity import hash_card, hash_phone
from shared.events.model import IdentityKind, PurchaseEvent, RefundEvent
from tests.unit.adapter_helpers import raw

NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
HEADER = "store_id,till_id,receipt_no,occurred_at,card_number,phone,currency,amount,type,original_receipt_no\n"


def config(**overrides: Any) -> TillCsvConfig:
    fields: dict[str, Any] = {
        "program": "acme",
        "identity_key": "identity-key",
        "currency": CurrencyPolicy(program_currency="EUR"),
        "phone_region": "GB",
    }
    fields.update(overrides)
    return TillCsvConfig(**fields)


def test_a_days_file_accepts_good_rows_and_reports_each_bad_one_with_its_line() -> None:
    # Given the sample end-of-day file: BOM, CRLF, header variants, a blank line and broken rows
    data = raw("till_eod.csv")

    # When it is parsed
    report = parse_till_csv(data, config(), now=NOW)

    # Then the three good rows become events
    sale, phone_sale, refund = report.accepted
    assert isinstance(sale, PurchaseEvent) and isinstance(refund, RefundEvent)
    assert sale.source == "till:S001" and sale.external_id == "T1:R1001"
    assert sale.identity.kind is IdentityKind.CARD and sale.identity.value == hash_card(b"identity-key", "6012345678")
    assert sale.card == sale.identity.value  # the velocity check counts the same keyed hash
    assert sale.eligible_amount == Decimal("42.50")
    assert sale.occurred_at == datetime(2026, 11, 24, 8, 15, tzinfo=UTC)
    assert phone_sale.identity.value == hash_phone(b"identity-key", "+447911123456")
    assert refund.order_external_id == "T1:R1001" and refund.external_id == "T2:R2001"
    assert refund.identity.kind is IdentityKind.ORDER
    # And every broken row is reported by its physical line (the blank line 4 is skipped)
    assert [(r.line, r.code) for r in report.rejected] == [
        (6, "malformed_payload"),  # no UTC offset
        (7, "amount_out_of_range"),  # negative
        (8, "unsupported_currency"),  # XXX
        (9, "missing_identity"),
        (10, "malformed_payload"),  # too few fields
        (11, "malformed_payload"),  # thousands separator
        (12, "malformed_payload"),  # type void
        (13, "malformed_payload"),  # duplicate receipt
        (14, "unsupported_currency"),  # GBP with no rate
    ]
    assert "UTC offset" in report.rejected[0].reason


def test_a_configured_rate_lets_another_currency_earn() -> None:
    cfg = config(currency=CurrencyPolicy(program_currency="EUR", rates={"GBP": Decimal("1.15")}))
    report = parse_till_csv(raw("till_eod.csv"), cfg, now=NOW)
    [gbp] = [e for e in report.accepted if e.external_id == "T1:R1010"]
    assert isinstance(gbp, PurchaseEvent) and gbp.eligible_amount == Decimal("9.20")


def test_semicolon_files_and_aliases_are_read() -> None:
    # Given a semicolon export with vendor-style names
    text = "Store;Register ID;Receipt Number;Timestamp;Loyalty Card;Mobile;Currency;Total;Transaction Type\n"
    text += "S9;T1;R1;2026-11-24T10:00:00Z;ABC123;;EUR;9.99;sale\n"

    # When / Then
    [event] = parse_till_csv(text, config(), now=NOW).accepted
    assert event.external_id == "T1:R1" and event.identity.value == hash_card(b"identity-key", "abc123")


def test_a_missing_column_rejects_the_file_at_the_header_line() -> None:
    report = parse_till_csv("\n\nstore_id,till_id\nS1,T1\n", config(), now=NOW)
    assert report.accepted == []
    assert [(r.line, r.code) for r in report.rejected] == [(3, "malformed_payload")]
    assert "receipt_no" in report.rejected[0].reason


def test_empty_and_undecodable_files_are_reported_not_raised() -> None:
    assert parse_till_csv("", config(), now=NOW).rejected[0].reason == "file has no header row"
    # Bytes that are not UTF-8 cost their own line: here the header's, so the whole file
    [undecodable] = parse_till_csv(b"\xff\xfe\x00bad", config(), now=NOW).rejected
    assert (undecodable.line, undecodable.reason) == (1, "header line is not UTF-8 (byte 0xff)")


def test_rows_too_old_or_in_the_future_are_stale() -> None:
    old = (NOW - timedelta(days=30)).isoformat()
    future = (NOW + timedelta(hours=1)).isoformat()
    text = HEADER + f"S1,T1,R1,{old},123456,,EUR,1.00,sale,\nS1,T1,R2,{future},123456,,EUR,1.00,sale,\n"
    report = parse_till_csv(text, config(), now=NOW)
    assert [r.code for r in report.rejected] == ["stale_webhook", "stale_webhook"]


def test_stores_outside_the_configuration_are_unknown_sources() -> None:
    text = HEADER + "S2,T1,R1,2026-11-24T10:00:00Z,123456,,EUR,1.00,sale,\n"
    report = parse_till_csv(text, config(store_ids=frozenset({"S1"})), now=NOW)
    assert [r.code for r in report.rejected] == ["unknown_source"]


def test_an_absurd_amount_is_refused() -> None:
    text = HEADER + "S1,T1,R1,2026-11-24T10:00:00Z,123456,,EUR,99999999999,sale,\n"
    assert parse_till_csv(text, config(), now=NOW).rejected[0].code == "amount_out_of_range"


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_the_parser_never_raises_on_arbitrary_text(text: str) -> None:
    # Given any text at all, with or without a valid header in front
    for candidate in (text, HEADER + text):
        # When it is parsed
        report = parse_till_csv(candidate, config(), now=NOW)

        # Then every row is either an event or a numbered rejection
        assert all(r.line >= 0 and r.reason for r in report.rejected)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["good", "bad"]), max_size=20))
def test_one_broken_row_never_rejects_the_others(kinds: list[str]) -> None:
    rows = [
        f"S1,T1,R{i},2026-11-24T10:00:00Z,123456,,EUR,{'1.00' if kind == 'good' else 'x'},sale,"
        for i, kind in enumerate(kinds)
    ]
    report = parse_till_csv(HEADER + "\n".join(rows), config(), now=NOW)
    assert len(report.accepted) == kinds.count("good")
    assert [r.line for r in report.rejected] == [i + 2 for i, k in enumerate(kinds) if k == "bad"]
