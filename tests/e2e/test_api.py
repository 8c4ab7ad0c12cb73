"""The HTTP API's contract over real HTTP: open and guarded routes, typed problems for bad bodies, and two
races. Each area has its own module: test_api_members, test_api_redemption, test_api_exchange,
test_api_admin; every route with every kind of caller, and the schema fuzz, are test_security's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pointbridge.sandbox import Sandbox
from shared.ledger.audit import audit
from tests.support.api_stack import Seeded, seed
from tests.support.http_api import HttpApi, problem

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Sandbox, Seeded]]:
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        yield sb, seed(sb, members=2, points=1000)


def test_health_and_docs_are_open_the_rest_needs_a_key(stack: tuple[Sandbox, Seeded]) -> None:
    sb, _ = stack
    api = HttpApi(sb)
    assert api.ok("GET", "/health", None) == {"status": "ok"}
    docs = api.call("GET", "/openapi.json")
    assert docs.status_code == 200
    assert "openapi" in docs.json()
    problem(api.call("GET", "/programs/demo/members/m0/balance"), 401, "key_missing")
    problem(api.call("GET", "/programs/demo/members/m0/balance", "pb_" + "A" * 43), 401, "key_invalid")


def test_bad_bodies_are_typed_problems_and_write_nothing(stack: tuple[Sandbox, Seeded]) -> None:
    sb, seeded = stack
    api = HttpApi(sb)
    member, admin = seeded.member_keys["m0"], seeded.admin
    redeem, publish = "/programs/demo/members/m0/redemptions", "/admin/programs/demo"
    before = api.table_items()
    # Malformed JSON, an oversized body, a wrong type, an unknown route: each a problem+json with its code
    problem(api.call("POST", redeem, member, raw='{"points": 10,'), 400, "malformed_json")
    problem(api.call("PUT", publish, admin, raw="[1, 2"), 400, "malformed_json")
    oversized = '{"reference": "' + "x" * 70_000 + '", "points": 1}'
    problem(api.call("POST", redeem, member, raw=oversized), 413, "payload_too_large")
    problem(
        api.call("PUT", publish, admin, raw='{"program": "demo", "name": "' + "n" * 70_000 + '"}'),
        413,
        "payload_too_large",
    )
    invalid = problem(api.call("POST", redeem, member, {"points": 1.5, "reference": "r"}), 400, "invalid_input")
    assert invalid["errors"][0]["loc"] == ["body", "points"]
    problem(api.call("POST", redeem, member, {"points": 10, "reference": "r", "extra": 1}), 400, "invalid_input")
    problem(api.call("GET", "/programs/demo/nothing-here", member), 404, "no_such_route")
    long_key = {"Idempotency-Key": "k" * 201}
    problem(api.call("POST", redeem, member, {"points": 1, "reference": "r"}, headers=long_key), 400, "invalid_input")
    # Then not one item was written
    assert api.table_items() == before


def test_last_items_of_stock_go_once_under_concurrency(stack: tuple[Sandbox, Seeded]) -> None:
    # Given a mug with stock 5 and two members asking for 8 between them at once
    sb, seeded = stack

    def attempt(n: int) -> requests.Response:
        member = f"m{n % 2}"
        body = {"reward_id": "mug", "reference": f"race-{n}"}
        return HttpApi(sb).call(
            "POST", f"/programs/demo/members/{member}/redemptions", seeded.member_keys[member], body
        )

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(attempt, range(8)))
    # Then exactly five redemptions win and the rest are typed refusals, never an overdraw
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] * 5 + [409] * 3, [r.text for r in replies]
    assert {r.json()["code"] for r in replies if r.status_code == 409} == {"out_of_stock"}
    assert audit(*seeded.services.ledger_store.ledger_records()).ok


def test_hold_lapse_schedule_releases_over_the_stack(stack: tuple[Sandbox, Seeded]) -> None:
    sb, seeded = stack
    api, key = HttpApi(sb), seeded.member_keys["m1"]
    hold = {"points": 30, "reference": "lapse-1", "lapses_in_seconds": 60}
    api.ok("POST", "/programs/demo/members/m1/holds", key, hold, status=201)
    assert api.ok("GET", "/programs/demo/members/m1/balance", key)["held"] == 30
    result = sb.run_function("HoldLapseFunction", now=datetime.now(UTC) + timedelta(minutes=2), simulate=True)
    assert result["released"] == 1
    assert api.ok("GET", "/programs/demo/members/m1/balance", key)["held"] == 0
