"""The operator console over real HTTP: stream figures from the sandbox, and the page driven in a browser.

The browser test drives Debian's chromium with Playwright (`tests.support.browser`: skipped with
the reason without chromium, unless POINTBRIDGE_REQUIRE_BROWSER is set, as in CI).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from pointbridge.sandbox import Sandbox
from shared.access.keys import PrincipalKind
from shared.ledger.audit import audit
from tests.support.api_stack import Seeded, seed
from tests.support.browser import chromium
from tests.support.http_api import HttpApi, problem

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[HttpApi, Seeded]]:
    """demo with members m0 and m1 (1,000 points each), then a redemption, a captured hold and a partner's points."""
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        seeded = seed(sb, members=2, points=1000)
        api = HttpApi(sb)
        m0 = seeded.member_keys["m0"]
        api.ok("POST", "/programs/demo/members/m0/redemptions", m0, {"points": 150, "reference": "r-1"}, status=201)
        api.ok(
            "POST",
            "/programs/demo/members/m1/holds",
            seeded.member_keys["m1"],
            {"points": 90, "reference": "c-1"},
            status=201,
        )
        api.ok("POST", "/programs/demo/members/m1/holds/c-1/capture", seeded.admin, {"points": 60}, status=201)
        inbound = {"transfer_id": "t-1", "points": 400, "occurred_at": datetime.now(UTC).isoformat()}
        api.ok("POST", "/partners/acme/programs/demo/members/m0/transfers-in", seeded.admin, inbound, status=201)
        sb.wait_for_idle(timeout=60)
        yield api, seeded


def figures(api: HttpApi, key: str) -> Any:
    return api.ok("GET", "/admin/programs/demo/figures", key)


def test_figures_over_http_match_the_ledger(stack: tuple[HttpApi, Seeded]) -> None:
    # Given the operations above, projected by the stream watcher running in the sandbox
    api, seeded = stack
    # When an admin asks for the program's figures (the default period: the last 30 days)
    body = figures(api, seeded.admin)
    # Then they are the ledger's: issued, redeemed, partner-funded, and what members hold
    report = audit(*api.services.ledger_store.ledger_records())
    assert report.ok, report.problems
    totals = report.totals["demo"]
    to_date, period = body["to_date"], body["period"]
    assert to_date["issued"] == -totals["issuance"] == 2000
    assert to_date["redeemed"] == totals["redemption"] == 150 + 60
    assert to_date["partner_funded"] == 400 and to_date["unexplained"] == 0
    _, accounts, _, _ = api.services.ledger_store.ledger_records()
    held = sum(a.available + a.pending + a.held for a in accounts if a.program == "demo")
    assert to_date["liability"] == held == 2000 + 400 - 210
    assert period["issued"] == 2000 and sum(step["redeemed"] for step in body["series"]) == 210
    assert body["members"] == 2 and body["tiers"] == [{"name": "member", "count": 2, "share": "1.0000"}]
    assert {c["name"]: c["count"] for c in period["channels"]} == {"api": 2000, "partner": 400}
    assert period["redemption_rate"] == "0.0875"  # 210 / 2400


def test_figures_are_for_admins_only(stack: tuple[HttpApi, Seeded]) -> None:
    api, seeded = stack
    problem(api.call("GET", "/admin/programs/demo/figures", seeded.member_keys["m0"]), 403, "forbidden")
    assert api.call("GET", "/admin/programs/demo/figures").status_code == 401
    partner = api.key(PrincipalKind.PARTNER, "acme", ("demo",))
    problem(api.call("GET", "/admin/programs", partner), 403, "forbidden")


def test_the_console_page_is_served_without_a_key(stack: tuple[HttpApi, Seeded]) -> None:
    api, _ = stack
    page = requests.get(f"{api.sandbox.api_url}/console", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Pointbridge console" in page.text and "default-src 'none'" in page.headers["content-security-policy"]


def test_an_operator_reads_the_figures_in_the_console(stack: tuple[HttpApi, Seeded]) -> None:
    api, seeded = stack
    expected = figures(api, seeded.admin)
    with chromium("the console's browser test") as browser:
        from playwright.sync_api import expect

        page = browser.new_page()
        # Given the console opened from the sandbox
        page.goto(f"{api.sandbox.api_url}/console")
        # When the operator enters a wrong key and asks for figures
        page.get_by_label("Admin API key").fill("pb_" + "W" * 43)
        page.get_by_role("button", name="Show figures").click()
        # Then the refusal is shown, and no figures
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        expect(alert).to_contain_text("401")
        expect(page.locator("#results")).to_be_hidden()
        # When the operator enters the admin key, picks the program and asks again
        page.get_by_label("Admin API key").fill(seeded.admin)
        page.get_by_label("Admin API key").dispatch_event("change")
        expect(page.get_by_label("Program")).to_contain_text("demo")
        page.get_by_label("Program").select_option("demo")
        page.get_by_role("button", name="Show figures").click()
        # Then the numbers are the API's
        expect(page.locator("#results")).to_be_visible()
        expect(alert).to_be_hidden()
        period, to_date = expected["period"], expected["to_date"]
        expect(page.locator("#issued-period")).to_have_text(f"{period['issued']:,}")
        expect(page.locator("#redeemed-period")).to_have_text(f"{period['redeemed']:,}")
        expect(page.locator("#liability")).to_have_text(f"{to_date['liability']:,}")
        expect(page.locator("#rate-period")).to_have_text("8.75 %")
        expect(page.locator("#tiers li")).to_have_count(1)
        expect(page.locator("#channels li")).to_have_count(2)
        expect(page.locator("#days tr")).to_have_count(len(expected["days"]))
        # And the key stays in this tab's session storage only
        assert page.evaluate("sessionStorage.getItem('pointbridge.adminKey')") == seeded.admin
        assert page.evaluate("localStorage.length") == 0
