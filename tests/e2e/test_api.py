"""The HTTP API over real HTTP: the sandbox serves template.yaml's API with its REQUEST authorizer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from pointbridge.sandbox import Sandbox
from shared.audit import audit
from shared.exchange import check_exchanges
from tests.support.api_stack import Seeded, seed

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Sandbox, Seeded]]:
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        yield sb, seed(sb, members=2, points=1000)


def test_health_and_docs_are_open_the_rest_needs_a_key(stack: tuple[Sandbox, Seeded]) -> None:
    sb, _ = stack
    assert requests.get(f"{sb.api_url}/health", timeout=30).json() == {"status": "ok"}
    docs = requests.get(f"{sb.api_url}/docs", params={"format": "json"}, timeout=30)
    assert docs.status_code == 200
    assert "openapi" in docs.json()
    assert requests.get(f"{sb.api_url}/programs/demo/members/m0/balance", timeout=30).status_code == 401


def test_redeem_exchange_and_audit_over_http(stack: tuple[Sandbox, Seeded]) -> None:
    sb, seeded = stack
    headers = {"x-api-key": seeded.member_keys["m0"], "Idempotency-Key": "e2e-1"}
    url = f"{sb.api_url}/programs/demo/members/m0/redemptions"
    first = requests.post(url, json={"points": 100, "reference": "e2e-r1"}, headers=headers, timeout=30)
    again = requests.post(url, json={"points": 100, "reference": "e2e-r1"}, headers=headers, timeout=30)
    assert first.status_code == again.status_code == 201, first.text
    assert first.json() == again.json()
    broke = requests.post(
        url, json={"points": 10_000, "reference": "e2e-r2"}, headers={"x-api-key": headers["x-api-key"]}, timeout=30
    )
    assert broke.status_code == 422
    assert broke.headers["content-type"] == "application/problem+json"
    assert broke.json()["code"] == "insufficient_points"
    quote = requests.post(
        f"{sb.api_url}/agreements/demo-air/quotes",
        json={"member": "m0", "points": 101},
        headers={"x-api-key": headers["x-api-key"]},
        timeout=30,
    ).json()
    done = requests.post(
        f"{sb.api_url}/quotes/{quote['quote_id']}/execute", headers={"x-api-key": headers["x-api-key"]}, timeout=30
    )
    assert done.status_code == 201, done.text
    assert done.json()["credit"]["available_change"] == 50
    entries, accounts, lots, holds = seeded.store.ledger_records()
    assert audit(entries, accounts, lots, holds).ok
    assert check_exchanges(entries) == []


def test_schema_no_server_errors(stack: tuple[Sandbox, Seeded]) -> None:
    """Every documented operation, a few generated cases each: no 5xx, replies match the document.

    Driven with hypothesis directly (schemathesis' pytest plugin does not load under pytest 9).
    An admin key reaches every route, so generated inputs get past the authorizer.
    """
    sb, seeded = stack
    loaded = schemathesis.openapi.from_url(f"{sb.api_url}/docs?format=json")
    loaded.config.update(base_url=sb.api_url)
    operations = []
    for result in loaded.get_all_operations():
        assert isinstance(result, Ok), result.err()  # an operation the document cannot describe
        operations.append(result.ok())
    assert len(operations) > 15
    statuses: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                headers={"x-api-key": seeded.admin},
                checks=[not_a_server_error, response_schema_conformance],
                timeout=30,
            )
            statuses.append(response.status_code)

        check()
    # Some cases must get through to a handler's success path, or the run proved little.
    assert len(statuses) >= 2 * len(operations)
    assert any(200 <= status < 300 for status in statuses), statuses


def test_last_items_of_stock_go_once_under_concurrency(stack: tuple[Sandbox, Seeded]) -> None:
    # Given a mug with stock 5 and two members asking for 8 between them at once
    sb, seeded = stack
    url = f"{sb.api_url}/programs/demo/members/{{m}}/redemptions"

    def attempt(n: int) -> requests.Response:
        member = f"m{n % 2}"
        return requests.post(
            url.format(m=member),
            json={"reward_id": "mug", "reference": f"race-{n}"},
            headers={"x-api-key": seeded.member_keys[member]},
            timeout=60,
        )

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(attempt, range(8)))
    # Then exactly five redemptions win and the rest are typed refusals, never an overdraw
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] * 5 + [409] * 3, [r.text for r in replies]
    assert {r.json()["code"] for r in replies if r.status_code == 409} == {"out_of_stock"}
    assert audit(*seeded.store.ledger_records()).ok


def test_hold_lapse_schedule_releases_over_the_stack(stack: tuple[Sandbox, Seeded]) -> None:
    sb, seeded = stack
    key = seeded.member_keys["m1"]
    held = requests.post(
        f"{sb.api_url}/programs/demo/members/m1/holds",
        json={"points": 30, "reference": "lapse-1", "lapses_in_seconds": 60},
        headers={"x-api-key": key},
        timeout=30,
    )
    assert held.status_code == 201, held.text
    before = requests.get(f"{sb.api_url}/programs/demo/members/m1/balance", headers={"x-api-key": key}, timeout=30)
    assert before.json()["held"] == 30
    result = sb.run_function("HoldLapseFunction", now=datetime.now(UTC) + timedelta(minutes=2))
    assert result["released"] == 1
    after = requests.get(f"{sb.api_url}/programs/demo/members/m1/balance", headers={"x-api-key": key}, timeout=30)
    assert after.json()["held"] == 0
