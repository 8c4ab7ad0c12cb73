from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.currency import CurrencyPolicy
from integrations.partner_feed import PartnerFeedConfig, parse_partner_feed
from shared.events.model import IdentityKind, PointsEvent, PurchaseEvent
from tests.unit.adapter_helpers import raw

NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def config(**overrides: Any) -> PartnerFeedConfig:
    fields: dict[str, Any] = {
        "program": "acme",
        "partner_id": "skyair",
        "currency": CurrencyPolicy(program_currency="EUR"),
    }
    fields.update(overrides)
    return PartnerFeedConfig(**fields)


def test_csv_points_rows_and_amount_rows_become_points_and_purchases() -> None:
    # Given a partner CSV with one points row, one amount row and four broken rows
    report = parse_partner_feed(raw("partner_feed.csv"), config(), now=NOW, fmt="csv")

    # Then points and amounts are kept apart and identity is scoped by the partner
    points, purchase = report.accepted
    assert isinstance(points, PointsEvent) and points.points == 250 and points.reason == "flight LHR-CDG"
    assert isinstance(purchase, PurchaseEvent) and purchase.eligible_amount == Decimal("120.00")
    assert points.identity.kind is IdentityKind.PARTNER
    assert points.identity.scope == "skyair" and points.identity.value == "AIR-778812"
    assert points.source == "partner:skyair"
    # And each broken row is reported on its own line
    assert [(r.line, r.code) for r in report.rejected] == [
        (4, "amount_out_of_range"),  # negative points
        (5, "malformed_payload"),  # both points and amount
        (6, "malformed_payload"),  # neither
        (7, "malformed_payload"),  # bad date
    ]


def test_json_lines_are_read_line_by_line() -> None:
    # Given a JSON-lines feed with a blank line, a fraction of a point, junk and an absurd value
    report = parse_partner_feed(raw("partner_feed.jsonl"), config(), now=NOW, fmt="jsonl")

    # Then the two good lines are events and the rest are numbered rejections
    assert [e.external_id for e in report.accepted] == ["tx-1001", "tx-1002"]
    assert report.accepted[1].model_dump()["eligible_amount"] == Decimal("80.25")
    assert [(r.line, r.code) for r in report.rejected] == [
        (4, "malformed_payload"),
        (5, "malformed_payload"),
        (6, "malformed_payload"),
        (7, "amount_out_of_range"),
    ]


def test_amounts_in_another_currency_need_a_rate() -> None:
    text = "partner_member_id,external_id,occurred_at,amount,currency\nM1,t1,2026-11-24T10:00:00Z,10.00,USD\n"
    assert parse_partner_feed(text, config(), now=NOW, fmt="csv").rejected[0].code == "unsupported_currency"
    converted = config(currency=CurrencyPolicy(program_currency="EUR", rates={"USD": Decimal("0.5")}))
    [event] = parse_partner_feed(text, converted, now=NOW, fmt="csv").accepted
    assert isinstance(event, PurchaseEvent) and event.eligible_amount == Decimal("5.00")


def test_a_repeated_external_id_is_reported_once_accepted_once() -> None:
    row = {"partner_member_id": "M1", "external_id": "t1", "occurred_at": "2026-11-24T10:00:00Z", "points": 5}
    line = json.dumps(row) + "\n"
    report = parse_partner_feed(line * 2, config(), now=NOW, fmt="jsonl")
    assert len(report.accepted) == 1 and report.rejected[0].line == 2


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["csv", "jsonl"]))
def test_the_parser_never_raises_on_arbitrary_text(text: str, fmt: str) -> None:
    report = parse_partner_feed(text, config(), now=NOW, fmt="csv" if fmt == "csv" else "jsonl")
    assert all(r.reason for r in report.rejected)


def test_the_partners_own_note_names_the_points() -> None:
    # Partners call the column note, description or memo: the member's statement shows it either way.
    for column in ("note", "description", "memo", "reason"):
        header = f"partner_member_id,external_id,occurred_at,points,{column}\n"
        text = header + "pm-1,f-1,2026-11-24T10:00:00Z,1200,flight PEK-SHA\n"
        [event] = parse_partner_feed(text, config(), now=NOW, fmt="csv").accepted
        assert isinstance(event, PointsEvent)
        assert event.reason == "flight PEK-SHA"
