"""The outbound events' contract: the committed JSON Schemas are the ones the models generate."""

from __future__ import annotations

import jsonschema  # type: ignore[import-untyped]
import pytest

from shared.events.catalogue import CATALOGUE, SCHEMA_DIR, PointsEarned, Words, schema_text
from tests.support.outbound import committed_schema


@pytest.mark.parametrize("event", CATALOGUE, ids=lambda e: e.detail_type())
def test_the_committed_schema_is_the_generated_one(event) -> None:
    path = SCHEMA_DIR / f"{event.detail_type()}.json"
    assert path.read_text(encoding="utf-8") == schema_text(event), (
        f"{path} is out of date: run .venv/bin/python -m shared.events.catalogue"
    )


def test_no_schema_without_its_event() -> None:
    assert {p.stem for p in SCHEMA_DIR.glob("*.json")} == {e.detail_type() for e in CATALOGUE}


def test_a_detail_missing_a_field_or_with_an_unknown_one_is_refused_by_the_schema() -> None:
    event = PointsEarned(
        id="x",
        program="demo",
        member="m1",
        points=5,
        pending=False,
        occurred_at="2026-01-02T03:04:05Z",
        rule_version=1,
        words=Words(en="Points added", zh_cn="积分入账"),
    )
    schema = committed_schema("PointsEarned")
    detail = event.detail()
    assert detail["words"] == {"en": "Points added", "zh-CN": "积分入账"}
    jsonschema.validate(detail, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in detail.items() if k != "points"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(detail | {"surprise": 1}, schema)
