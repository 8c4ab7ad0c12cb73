"""Program configs: the demo seed validates, and bad configs are refused with a reason."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from shared.errors import ConfigError
from shared.program.config import ExpiryKind, ProgramConfig, PromoStacking, Rounding, load_program, parse_program
from tests.unit.rules_factories import SEED, demo

if TYPE_CHECKING:
    from pathlib import Path


def _demo_data(**changes: Any) -> dict[str, Any]:
    data = demo().model_dump(mode="json")
    data.update(changes)
    return data


def _tiers(*rows: tuple[str, int, str, str]) -> list[dict[str, Any]]:
    return [{"name": n, "rank": r, "threshold": t, "multiplier": m} for n, r, t, m in rows]


MEMBER = ("member", 0, "0", "1")
SILVER = ("silver", 1, "500", "1.2")


def test_demo_seed_validates_with_the_planned_shape() -> None:
    # Given the seed file
    # When it is loaded
    config = load_program(SEED)

    # Then it is the demo program with the planned tiers and rules
    assert (config.program, config.currency, config.timezone) == ("demo", "USD", "America/New_York")
    assert [(t.name, str(t.multiplier)) for t in config.tiers] == [
        ("member", "1"),
        ("silver", "1.2"),
        ("gold", "1.5"),
        ("diamond", "2"),
    ]
    assert config.expiry_for(config.tier("diamond")).kind is ExpiryKind.NONE
    assert config.expiry_for(config.tier("member")).months == 12
    assert config.return_window_days == 30
    assert config.caps.per_member_per_day is not None
    assert config.promotions[0].multiplier == 2
    assert config.product_bonuses[0].new_product
    assert config.behaviour.streak_bonuses[0].day == 30
    assert config.rounding is Rounding.FLOOR
    assert config.promo_stacking is PromoStacking.BEST


def test_config_round_trips_through_json() -> None:
    config = demo()
    assert parse_program(config.model_dump_json()) == config


def test_a_minimal_config_gets_safe_defaults() -> None:
    config = parse_program({"program": "tiny", "name": "Tiny"})
    assert [tier.name for tier in config.tiers] == ["member"]
    assert config.base_rate == 1
    assert config.caps.per_member_per_day is None
    assert config.return_window_days == 0


def test_tiers_are_ordered_by_rank_whatever_the_input_order() -> None:
    tiers = _tiers(("gold", 2, "2000", "1.5"), ("member", 0, "0", "1"), ("silver", 1, "500", "1.2"))
    config = parse_program(_demo_data(tiers=tiers))
    assert [tier.name for tier in config.tiers] == ["member", "silver", "gold"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"tiers": _tiers(MEMBER, SILVER, ("gold", 2, "500", "1.5"))},
            "tiers overlap: 'gold'",
        ),
        (
            {"tiers": _tiers(MEMBER, ("silver", 1, "900", "1.2"), ("gold", 2, "500", "1.5"))},
            "tiers overlap",
        ),
        ({"tiers": _tiers(MEMBER, ("member", 1, "500", "1.2"))}, "duplicate tier names: member"),
        ({"tiers": _tiers(("member", 0, "0", "1"), ("silver", 0, "500", "1.2"))}, "share rank 0"),
        ({"tiers": _tiers(("member", 0, "100", "1"))}, "must have threshold 0"),
        ({"tiers": []}, "at least one tier"),
        ({"tiers": _tiers(("member", 0, "0", "-1"))}, "tiers.0.multiplier"),
        ({"base_rate": "-1"}, "base_rate"),
        ({"caps": {"per_member_per_day": 0}}, "caps.per_member_per_day"),
        ({"caps": {"per_event": -5}}, "caps.per_event"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown IANA timezone"),
        ({"rounding": "ceiling"}, "rounding"),
        ({"return_window_days": -1}, "return_window_days"),
        ({"surprise": 1}, "surprise"),
        ({"program": "Demo Program"}, "program"),
    ],
)
def test_bad_config_is_refused_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    # Given the demo config with one thing broken
    data = _demo_data(**changes)

    # When it is parsed
    # Then a ConfigError names what is wrong
    with pytest.raises(ConfigError, match=reason) as caught:
        parse_program(data)
    assert caught.value.code == "invalid_config"


_PROMO = {
    "id": "p1",
    "label": "promo",
    "multiplier": "2",
    "starts_at": "2026-12-24T00:00:00",
    "ends_at": "2026-12-27T00:00:00",
}


@pytest.mark.parametrize(
    ("promo", "reason"),
    [
        ({"ends_at": "2026-12-20T00:00:00"}, "ends .* before it starts"),
        ({"ends_at": "2026-12-24T00:00:00"}, "ends .* before it starts"),
        ({"multiplier": "-2"}, "multiplier"),
        ({"multiplier": "0.5"}, "multiplier"),
        ({"bonus_points": 50}, "exactly one of multiplier or bonus_points"),
        ({"multiplier": None}, "exactly one of multiplier or bonus_points"),
        ({"ends_at": "2026-12-27T00:00:00Z"}, "mixes a naive and a timezone-aware time"),
        ({"channels": ["carrier-pigeon"]}, "channels"),
    ],
)
def test_bad_promotion_is_refused(promo: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_program(_demo_data(promotions=[_PROMO | promo]))


def test_duplicate_promotion_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="two promotions share an id"):
        parse_program(_demo_data(promotions=[_PROMO, _PROMO]))


@pytest.mark.parametrize(
    ("bonus", "reason"),
    [
        ({"id": "b", "label": "b", "categories": ["x"]}, "exactly one of multiplier or per_unit"),
        ({"id": "b", "label": "b", "per_unit": 5}, "matches nothing"),
        ({"id": "b", "label": "b", "categories": ["x"], "per_unit": 0}, "per_unit"),
        ({"id": "b", "label": "b", "categories": ["x"], "multiplier": "-3"}, "multiplier"),
    ],
)
def test_bad_product_bonus_is_refused(bonus: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_program(_demo_data(product_bonuses=[bonus]))


def test_duplicate_streak_days_are_refused() -> None:
    behaviour = {"sign_in": 5, "streak_bonuses": [{"day": 7, "points": 10}, {"day": 7, "points": 20}]}
    with pytest.raises(ConfigError, match="two streak bonuses share a day"):
        parse_program(_demo_data(behaviour=behaviour))


def test_every_reason_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_program(_demo_data(base_rate="-1", return_window_days=-1))
    assert "base_rate" in caught.value.detail
    assert "return_window_days" in caught.value.detail


def test_loader_reports_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read program config"):
        load_program(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid program config"):
        load_program(broken)


def test_money_in_json_stays_exact() -> None:
    # A JSON number like 1.2 must not pass through a float on its way to Decimal.
    config = parse_program('{"program": "exact", "name": "Exact", "base_rate": 0.1}')
    assert isinstance(config, ProgramConfig)
    assert str(config.base_rate) == "0.1"
