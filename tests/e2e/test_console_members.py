"""The console's members page in Debian's chromium (Playwright): support finds a member by e-mail, makes an
adjustment and a reversal with reasons and sees them in the statement; a missing reason, a second reversal
and a key that may not act are shown as clear errors. Screenshots go to tests/artifacts/console-members/."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from shared.access.keys import AdminRole, PrincipalKind
from tests.support.browser import chromium
from tests.support.desk import EMAIL, PROGRAM, REDEMPTION, desk_api

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Page

    from tests.support.http_api import HttpApi

pytestmark = pytest.mark.e2e
ARTIFACTS = (
    Path(os.environ.get("POINTBRIDGE_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts")) / "console-members"
)


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApi]:
    with desk_api() as http:
        yield http


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_the_page_is_served_with_a_strict_policy(api: HttpApi) -> None:
    reply = requests.get(f"{api.sandbox.api_url}/console/members", timeout=30)
    assert reply.status_code == 200 and "Find by" in reply.text
    assert "default-src 'none'" in reply.headers["Content-Security-Policy"]


def test_support_finds_a_member_by_email_adjusts_and_reverses_in_the_console(api: HttpApi) -> None:
    agent = api.key(PrincipalKind.ADMIN, "agent-9", role=AdminRole.SUPPORT)
    auditor = api.key(PrincipalKind.ADMIN, "audit-9", role=AdminRole.AUDITOR)
    with chromium("the console's members page") as browser:
        from playwright.sync_api import expect

        expect.set_options(timeout=30_000)  # the API function's first calls start it (a loaded machine is slow)
        page = browser.new_page()
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(f"{api.sandbox.api_url}/console/members")
        alert = page.get_by_role("alert")
        # Given support's key and the program
        page.get_by_label("Admin API key").fill(agent)
        page.get_by_label("Admin API key").dispatch_event("change")
        program = page.get_by_role("combobox", name="Program", exact=True)
        expect(program).to_contain_text(PROGRAM)
        program.select_option(PROGRAM)
        # When support looks the member up by the e-mail she gives (spelt her way)
        page.get_by_role("combobox", name="Find by").select_option("email")
        page.get_by_label("Value", exact=True).fill(EMAIL.upper())
        page.get_by_role("button", name="Find").click()
        # Then her page opens: balance, statement, tier, identities (the e-mail stays hashed)
        expect(page.locator("#member")).to_be_visible()
        expect(page.locator("#member-title")).to_have_text(f"Member ann in {PROGRAM}")
        expect(page.locator("#available")).to_have_text("720")
        expect(page.locator("#identities")).to_contain_text("email (hashed")
        expect(alert).to_be_hidden()
        shot(page, "1-member-found")
        # When support adjusts without a reason, the page says a reason is required, and nothing is sent
        page.get_by_label("Points (+ adds, - deducts)").fill("25")
        page.get_by_role("button", name="Adjust").click()
        expect(alert).to_contain_text("Reason (required): this is required")
        expect(page.locator("#available")).to_have_text("720")
        shot(page, "2-reason-required")
        # When the adjustment is made with a reason
        page.locator("#adjust-reason").fill("parcel arrived late")
        page.get_by_role("button", name="Adjust").click()
        # Then it is confirmed, and the statement's newest line says it in the member's words
        expect(page.get_by_role("status")).to_contain_text("Adjusted: Points added by customer service")
        expect(page.locator("#available")).to_have_text("745")
        first = page.locator("#statement tbody tr").first
        expect(first).to_contain_text("Points added by customer service: parcel arrived late")
        expect(first).to_contain_text("+25")
        # When support reverses the mug redemption with a reason
        page.get_by_label("Entry").select_option(REDEMPTION)
        page.locator("#reverse-reason").fill("mug arrived broken")
        page.get_by_role("button", name="Reverse").click()
        # Then the points are back and the statement says why
        expect(page.get_by_role("status")).to_contain_text("Reversed: Reversed by customer service")
        expect(page.locator("#available")).to_have_text("1045")
        expect(first).to_contain_text("Reversed by customer service: mug arrived broken")
        shot(page, "3-adjusted-and-reversed")
        # When support tries to reverse it again, the refusal is shown with its code
        page.get_by_label("Entry").select_option(REDEMPTION)
        page.locator("#reverse-reason").fill("again")
        page.get_by_role("button", name="Reverse").click()
        expect(alert).to_contain_text("was reversed before (409 already_reversed)")
        # And an overdraw is refused with the numbers
        page.get_by_label("Points (+ adds, - deducts)").fill("-5000")
        page.locator("#adjust-reason").fill("typo")
        page.get_by_role("button", name="Adjust").click()
        expect(alert).to_contain_text("insufficient_points")
        # And in Chinese, the same lines in the member's words
        page.get_by_role("combobox", name="Statement language").select_option("zh-CN")
        expect(first).to_contain_text("客服撤销：mug arrived broken")
        shot(page, "4-refused-and-chinese")
        # When an auditor's key tries to act, the page says the key may not
        page.get_by_label("Admin API key").fill(auditor)
        page.get_by_label("Admin API key").dispatch_event("change")
        page.get_by_label("Points (+ adds, - deducts)").fill("5")
        page.locator("#adjust-reason").fill("auditor tries")
        page.get_by_role("button", name="Adjust").click()
        expect(alert).to_contain_text("403 forbidden")
        expect(page.locator("#available")).to_have_text("1045")
        shot(page, "5-auditor-refused")
    # The statement the API serves agrees with what the page showed
    lines = api.ok("GET", f"/programs/{PROGRAM}/members/ann/statement", agent)["entries"]
    titles = [line["title"] for line in lines[-2:]]
    assert titles == ["Points added by customer service", "Reversed by customer service"]
