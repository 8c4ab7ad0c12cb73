"""The operator console over real HTTP: stream figures from the sandbox, and the page driven in a browser.

The browser test drives Debian's chromium with Playwright (`tests.support.browser`: skipped with
the reason without chromium, unless POINTBRIDGE_REQUIRE_BROWSER is set, as in CI).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from pointbridge.sandbox import Sandbox
from shared.access.keys import PrincipalKind
from shared.jobs.walk import JobInput
from shared.ledger.audit import audit
from shared.ledger.commands import Earn
from tests.support.api_stack import Seeded, seed
from tests.support.browser import chromium
from tests.support.http_api import HttpApi, problem

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


ARTIFACTS = Path(os.environ.get("POINTBRIDGE_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts")) / "console"
DAYS_AGO = 40  # an earlier member's earn: in the previous 30-day period, for the comparison


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[HttpApi, Seeded]]:
    """demo (1 point = 0.01 USD) with m0 and m1 (1,000 points each), a member who earned 500 forty days ago that
    expired today, then a redemption, a mug from the catalogue, a captured hold and a partner's points."""
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        seeded = seed(sb, members=2, points=1000)
        api = HttpApi(sb)
        programs = api.services.programs
        live = programs.get("demo")
        programs.publish(live.model_copy(update={"version": live.version + 1, "point_value": Decimal("0.01")}))
        now = datetime.now(UTC)
        earlier = now - timedelta(days=DAYS_AGO)
        # Due after the program was first published (the expiry job walks from there): five minutes
        # ago, or just after, when the program is younger than that (a run just past midnight).
        since = programs.since("demo")
        assert since is not None
        expires = max(now - timedelta(minutes=5), since + (now - since) / 2)
        api.services.ledger.earn(
            Earn(program="demo", member="m9", points=500, source="seed", external_id="m9", reason="seed",
                 event_time=earlier, expires_at=expires),
            at=earlier,
        )  # fmt: skip
        api.services.expiry_job.run(JobInput(now=now))
        m0 = seeded.member_keys["m0"]
        api.ok("POST", "/programs/demo/members/m0/redemptions", m0, {"points": 150, "reference": "r-1"}, status=201)
        api.ok(
            "POST", "/programs/demo/members/m0/redemptions", m0, {"reward_id": "mug", "reference": "r-2"}, status=201
        )
        till = api.key(PrincipalKind.CHANNEL, "till", ("demo",))
        api.ok("POST", "/programs/demo/members/m1/holds", till, {"points": 90, "reference": "c-1"}, status=201)
        api.ok("POST", "/programs/demo/members/m1/holds/c-1/capture", till, {"points": 60}, status=201)
        acme = api.key(PrincipalKind.PARTNER, "acme", ("demo",))
        api.link_partner(acme, "demo", "m0", "ACME-M0")
        inbound = {"transfer_id": "t-1", "points": 400, "occurred_at": datetime.now(UTC).isoformat()}
        api.ok("POST", "/partners/acme/programs/demo/members/m0/transfers-in", acme, inbound, status=201)
        sb.wait_for_idle(timeout=60)
        yield api, seeded


def figures(api: HttpApi, key: str) -> Any:
    return api.ok("GET", "/admin/programs/demo/figures", key)


def audited(api: HttpApi) -> tuple[dict[str, int], int]:
    """The audit's program-side totals for demo, and what demo's members hold, from the sandbox's table."""
    records = api.services.ledger_store.ledger_records()
    report = audit(*records)
    assert report.ok, report.problems
    _, accounts, _, _ = records
    held = sum(a.available + a.pending + a.held for a in accounts if a.program == "demo")
    return report.totals["demo"], held


def test_figures_over_http_match_the_ledger(stack: tuple[HttpApi, Seeded]) -> None:
    # Given the operations above, projected by the stream watcher running in the sandbox
    api, seeded = stack
    # When an admin asks for the program's figures (the default period: the last 30 days)
    body = figures(api, seeded.admin)
    # Then they are the ledger's: issued, redeemed, expired, partner-funded, and what members hold
    totals, held = audited(api)
    to_date, period, previous = body["to_date"], body["period"], body["previous"]
    assert to_date["issued"] == -totals["issuance"] == 2500
    assert to_date["redeemed"] == totals["redemption"] == 150 + 100 + 60
    assert to_date["expired"] == totals["breakage"] == 500
    assert to_date["partner_funded"] == 400 and to_date["unexplained"] == 0
    assert to_date["liability"] == held == 2500 + 400 - 310 - 500 == body["closing_liability"]
    assert to_date["value"]["liability"] == "20.90" == body["closing_liability_value"]
    # And the period holds today's operations, the previous period the earlier earn
    assert period["issued"] == 2000 and sum(step["redeemed"] for step in body["series"]) == 310
    assert previous["issued"] == 500 and body["opening_liability"] == 500
    assert body["members"] == 3 and body["tiers"] == [{"name": "member", "count": 3, "share": "1.0000"}]
    assert {c["name"]: c["count"] for c in period["channels"]} == {"api": 2000, "partner": 400}
    assert period["rewards"] == [{"reward": "mug", "name": "Mug", "points": 100, "count": 1, "share": "1.0000"}]
    assert (period["redemption_rate"], period["breakage_rate"]) == ("0.1292", "0.2083")  # 310, 500 / 2400


def test_figures_are_for_admins_only(stack: tuple[HttpApi, Seeded]) -> None:
    api, seeded = stack
    problem(api.call("GET", "/admin/programs/demo/figures", seeded.member_keys["m0"]), 403, "forbidden")
    assert api.call("GET", "/admin/programs/demo/figures").status_code == 401
    partner = api.key(PrincipalKind.PARTNER, "acme", ("demo",))
    problem(api.call("GET", "/admin/programs", partner), 403, "forbidden")


def test_the_console_page_and_its_chart_library_are_served_without_a_key(stack: tuple[HttpApi, Seeded]) -> None:
    api, _ = stack
    page = requests.get(f"{api.sandbox.api_url}/console", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Pointbridge console" in page.text and "default-src 'none'" in page.headers["content-security-policy"]
    library = requests.get(f"{api.sandbox.api_url}/console/assets/chart.umd.min.js", timeout=30)
    assert library.status_code == 200 and library.text.startswith("/*!\n * Chart.js v4.6.2")


def shot(page: Page, name: str) -> None:
    """A screenshot of the whole page, kept as a test artefact (tests/artifacts/console/, ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_an_operator_reads_the_dashboard_in_the_console(stack: tuple[HttpApi, Seeded]) -> None:
    api, seeded = stack
    expected = figures(api, seeded.admin)
    totals, held = audited(api)
    with chromium("the console's browser test") as browser:
        from playwright.sync_api import expect

        page = browser.new_page()
        page.set_viewport_size({"width": 1366, "height": 768})
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
        shot(page, "1-wrong-key")
        # When the operator enters the admin key, picks the program and asks again (the last 30 days)
        page.get_by_label("Admin API key").fill(seeded.admin)
        page.get_by_label("Admin API key").dispatch_event("change")
        expect(page.get_by_role("combobox", name="Program", exact=True)).to_contain_text("demo")
        page.get_by_role("combobox", name="Program", exact=True).select_option("demo")
        page.get_by_role("button", name="Show figures").click()
        expect(page.locator("#results")).to_be_visible()
        expect(alert).to_be_hidden()
        # Then the dashboard's totals are the audit's: issued, redeemed, expired, and what members hold
        expect(page.locator("#issued-to-date")).to_have_text(f"{-totals['issuance']:,}")
        expect(page.locator("#redeemed-to-date")).to_have_text(f"{totals['redemption']:,}")
        expect(page.locator("#expired-to-date")).to_have_text(f"{totals['breakage']:,}")
        expect(page.locator("#liability")).to_have_text(f"{held:,}")
        expect(page.locator("#liability-value")).to_have_text("$20.90")
        # And the period against the previous one, with the rates and their definitions
        period, previous = expected["period"], expected["previous"]
        expect(page.locator("#issued-period")).to_have_text(f"{period['issued']:,}")
        expect(page.locator("#issued-change")).to_contain_text(f"vs previous ({previous['issued']:,})")
        expect(page.locator("#rate-period")).to_have_text("12.92 %")
        expect(page.locator("#breakage-period")).to_have_text("20.83 %")
        expect(page.locator("#def-redemption")).to_contain_text("can exceed 100 %")
        expect(page.locator("#def-breakage")).to_contain_text("Points expired divided by points earned")
        expect(page.locator("#compare tr")).to_have_count(9)
        # And the top rewards, and only the days with activity in the table
        expect(page.locator("#rewards tr")).to_have_count(1)
        expect(page.locator("#rewards tr").first).to_contain_text("Mug")
        active = [step for step in expected["series"] if step["entries"]]
        expect(page.locator("#steps tr")).to_have_count(len(active))
        expect(page.locator("#steps-caption")).to_contain_text(f"{len(active)} of 30 days had ledger activity")
        # And the charts are drawn by the vendored library with the API's numbers
        for canvas in ("flows-chart", "liability-chart", "tiers-chart", "channels-chart"):
            assert page.evaluate(f"Chart.getChart(document.getElementById('{canvas}')) !== undefined"), canvas
        issued = page.evaluate("Chart.getChart(document.getElementById('flows-chart')).data.datasets[0].data")
        assert issued == [step["issued"] for step in expected["series"]] and sum(issued) == period["issued"]
        liability = page.evaluate("Chart.getChart(document.getElementById('liability-chart')).data.datasets[0].data")
        assert liability[-1] == held and liability == [step["liability_at_end"] for step in expected["series"]]
        # And at 1366 px nothing is cut off: no table and no page scrolls sideways
        overflowing = page.evaluate(
            "[document.documentElement, ...document.querySelectorAll('.table-wrap')]"
            ".filter(e => e.scrollWidth > e.clientWidth).map(e => e.id || e.className || e.tagName)"
        )
        assert overflowing == []
        shot(page, "2-dashboard-30-days")
        # When the operator picks the last 12 months
        page.get_by_role("combobox", name="Period", exact=True).select_option("365")
        page.get_by_role("button", name="Show figures").click()
        # Then the series is by month and the totals are the same
        expect(page.locator("#step-head")).to_have_text("Month")
        expect(page.locator("#issued-period")).to_have_text(f"{-totals['issuance']:,}")
        shot(page, "3-dashboard-12-months")
        # And on a phone-sized screen the page does not scroll sideways (wide tables scroll in their frame)
        page.set_viewport_size({"width": 390, "height": 844})
        # (the charts resize on a later ResizeObserver callback: wait for the page to settle; the
        # page's CSP forbids wait_for_function's eval, so poll)
        fits = (
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth && "
            "[...document.querySelectorAll('canvas')].every(c => c.getBoundingClientRect().right <= innerWidth)"
        )
        for _ in range(100):
            if page.evaluate(fits):
                break
            page.wait_for_timeout(100)
        assert page.evaluate(fits)
        shot(page, "4-dashboard-narrow")
        # And the key stays in this tab's session storage only
        assert page.evaluate("sessionStorage.getItem('pointbridge.adminKey')") == seeded.admin
        assert page.evaluate("localStorage.length") == 0


def test_bad_periods_programs_and_keys_are_explained_on_the_page(stack: tuple[HttpApi, Seeded]) -> None:
    api, seeded = stack
    with chromium("the console's browser test") as browser:
        from playwright.sync_api import expect

        page = browser.new_page()
        page.set_viewport_size({"width": 1366, "height": 768})
        alert = page.get_by_role("alert")
        # A link to a program that does not exist, opened before the key is entered: the API's 404, in words
        page.goto(f"{api.sandbox.api_url}/console#program=nope")
        page.get_by_label("Admin API key").fill(seeded.admin)
        page.get_by_label("Admin API key").dispatch_event("change")
        expect(alert).to_contain_text("There is no such program")
        expect(alert).to_contain_text("nope")
        expect(page.locator("#results")).to_be_hidden()
        shot(page, "5-unknown-program")
        # A period longer than ten years: the API's refusal, in words
        page.goto(f"{api.sandbox.api_url}/console#program=demo&start=2001-01-01&end=2026-01-01")
        page.reload()
        expect(alert).to_contain_text("That period cannot be shown")
        expect(alert).to_contain_text("ten years")
        # A period that ends before it starts: refused on the page before asking
        page.get_by_role("combobox", name="Program", exact=True).select_option("demo")
        page.get_by_role("textbox", name="From", exact=True).fill("2026-03-02")
        page.get_by_role("textbox", name="To", exact=True).fill("2026-03-01")
        page.get_by_role("button", name="Show figures").click()
        expect(alert).to_contain_text("ends (2026-03-01) before it starts (2026-03-02)")
        # A key that is not an admin's: 403 in words
        page.get_by_label("Admin API key").fill(seeded.member_keys["m0"])
        page.get_by_role("combobox", name="Period", exact=True).select_option("30")
        page.get_by_role("button", name="Show figures").click()
        expect(alert).to_contain_text("403")
        shot(page, "6-not-an-admin-key")
