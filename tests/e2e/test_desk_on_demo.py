"""Issue 14's "Must show", in one walk through the console on `make demo`'s data, in Debian's chromium.

The demo's story runs on a sandbox (smaller than `make demo`'s: the same brand, channels and Alice),
then Playwright drives the three console pages as an operator and a support agent would:

- the dashboard (/console): its to-date totals equal the audit's (`pointbridge audit`'s run_audit);
- the members page (/console/members): Alice found by her e-mail, an adjustment and a reversal made
  with reasons and then read in her statement; an empty reason and an overdraw explained on the page;
- the operations page (/console/operations): a poison message (an event for a program not yet live),
  dead-lettered by the ingest function with its reason, redriven from the page once the program is
  published, and its points posted once.

Screenshots go to tests/artifacts/desk-demo/ (git-ignored; POINTBRIDGE_ARTIFACTS moves them); each
path is printed (pytest -s or -rP shows them).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pointbridge.audit import run_audit
from pointbridge.demo import ALICE_EMAIL, PROGRAM_SEED, run_scenario
from pointbridge.sandbox import Sandbox
from shared.access.keys import AdminRole, PrincipalKind
from shared.events.model import Channel, Identity, IdentityKind, PointsEvent
from shared.program.config import load_program
from tests.support.browser import chromium
from tests.support.http_api import HttpApi

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Page

# The story on a loaded machine can outlast the suite's default per-test limit.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("POINTBRIDGE_ARTIFACTS", ROOT / "tests" / "artifacts")) / "desk-demo"
# Smaller than `make demo`'s 200 members over 12 weeks: every channel, and one redemption (the story is seeded).
MEMBERS, WEEKS = 12, 3
# A program the brand has not launched yet: an event for it is a poison message until it is published.
LATER = "outlet"


class Desk:
    """The demo's sandbox after its story, and the keys of the people at the desk."""

    def __init__(self, sb: Sandbox, result: dict[str, Any]) -> None:
        self.sb = sb
        self.api = HttpApi(sb)
        self.alice = str(result["member"])
        self.operator = str(result["admin_key"])  # the demo's own operator key, as `make demo` prints it
        self.support = self.api.key(PrincipalKind.ADMIN, "support-lee", role=AdminRole.SUPPORT)

    def audit(self) -> dict[str, Any]:
        """What `pointbridge audit` finds on the sandbox's table, with the chain key checked."""
        secrets = self.sb.client("secretsmanager")
        chain_key = str(secrets.get_secret_value(SecretId=self.sb.resource("ChainHashKey"))["SecretString"])
        self.sb.wait_for_idle(timeout=300)
        return run_audit(self.sb.resource("PointsTable"), self.sb.client("dynamodb"), chain_key=chain_key.encode())

    def statement(self) -> list[dict[str, Any]]:
        path = f"/programs/demo/members/{self.alice}/statement"
        return list(self.api.ok("GET", path, self.operator, query={"limit": "100"})["entries"])


@pytest.fixture(scope="module")
def desk() -> Iterator[Desk]:
    with Sandbox(template=ROOT / "template.yaml", stage="deskdemo", pool_size=1, schedules=False) as sb:
        result = run_scenario(sb, members=MEMBERS, weeks=WEEKS)
        assert result["audit"]["ok"], result["audit"]["problems"]
        yield Desk(sb, result)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def expected_dashboard(audited: dict[str, Any]) -> dict[str, int]:
    """The dashboard's to-date cards as the audit's account totals say them (program side negative)."""
    totals: dict[str, int] = audited["totals"]["demo"]
    return {
        "issued-to-date": -totals.get("issuance", 0),
        "partner-to-date": -sum(v for k, v in totals.items() if k.startswith("partner:")),
        "redeemed-to-date": totals.get("redemption", 0),
        "expired-to-date": totals.get("breakage", 0),
        "liability": sum(totals.get(k, 0) for k in ("available", "pending", "held")),
    }


def test_the_desk_runs_the_demo_program_from_the_console(desk: Desk) -> None:
    audited = desk.audit()
    assert audited["ok"], audited["problems"]
    cards = expected_dashboard(audited)
    assert cards["issued-to-date"] > 0 and cards["redeemed-to-date"] > 0 and cards["partner-to-date"] > 0
    with chromium("the desk's walk through the console") as browser:
        from playwright.sync_api import expect

        expect.set_options(timeout=30_000)  # a loaded machine's sandbox starts the API function slowly
        page = browser.new_page()
        page.set_viewport_size({"width": 1366, "height": 900})
        alert = page.get_by_role("alert")

        # The dashboard: the operator's key, the demo program, the to-date cards are the audit's
        page.goto(f"{desk.sb.api_url}/console")
        page.get_by_label("Admin API key").fill(desk.operator)
        page.get_by_label("Admin API key").dispatch_event("change")
        expect(page.get_by_role("combobox", name="Program", exact=True)).to_contain_text("demo")
        page.get_by_role("combobox", name="Program", exact=True).select_option("demo")
        page.get_by_role("button", name="Show figures").click()
        expect(page.locator("#results")).to_be_visible()
        for card, points in cards.items():
            expect(page.locator(f"#{card}"), card).to_have_text(f"{points:,}")
        expect(alert).to_be_hidden()
        shot(page, "1-dashboard-equals-audit")

        # The members page: support finds Alice by her e-mail, typed her way
        before = desk.api.ok("GET", f"/programs/demo/members/{desk.alice}/balance", desk.operator)["available"]
        page.goto(f"{desk.sb.api_url}/console/members")
        page.get_by_label("Admin API key").fill(desk.support)
        page.get_by_label("Admin API key").dispatch_event("change")
        expect(page.get_by_role("combobox", name="Program", exact=True)).to_contain_text("demo")
        page.get_by_role("combobox", name="Program", exact=True).select_option("demo")
        page.get_by_role("combobox", name="Find by").select_option("email")
        page.get_by_label("Value", exact=True).fill(f"  {ALICE_EMAIL.upper()} ")
        page.get_by_role("button", name="Find").click()
        expect(page.locator("#member-title")).to_have_text(f"Member {desk.alice} in demo")
        available = page.locator("#available")
        expect(available).to_have_text(str(before))
        expect(page.locator("#identities")).to_contain_text("email (hashed")
        expect(page.locator("#found")).to_be_hidden()  # one match opens at once, no stale line above it
        shot(page, "2-alice-found-by-email")
        # An adjustment without a reason is refused on the page, and nothing is sent
        page.get_by_label("Points (+ adds, - deducts)").fill("50")
        page.get_by_role("button", name="Adjust").click()
        expect(alert).to_contain_text("Reason (required): this is required")
        expect(available).to_have_text(str(before))
        shot(page, "3-reason-required")
        # An adjustment with its reason: confirmed, and the statement's newest line says why
        page.locator("#adjust-reason").fill("tent arrived a week late")
        page.get_by_role("button", name="Adjust").click()
        expect(page.get_by_role("status")).to_contain_text("Adjusted: Points added by customer service")
        expect(available).to_have_text(str(before + 50))
        newest = page.locator("#statement tbody tr").first
        expect(newest).to_contain_text("Points added by customer service: tent arrived a week late")
        expect(newest).to_contain_text("+50")
        # A deduction that would overdraw: refused with the API's code, the balance stays
        page.get_by_label("Points (+ adds, - deducts)").fill(str(-(before + 51)))
        page.locator("#adjust-reason").fill("typed one digit too many")
        page.get_by_role("button", name="Adjust").click()
        expect(alert).to_contain_text("insufficient_points")
        expect(available).to_have_text(str(before + 50))
        shot(page, "4-overdraw-refused")
        # A reversal of her app review's points, with its reason (the review was taken down)
        [review] = [e for e in desk.statement() if e["kind"] == "earn" and e["source"] == "app"]
        page.get_by_label("Entry").select_option(review["entry_id"])
        page.locator("#reverse-reason").fill("review taken down by the shop")
        page.get_by_role("button", name="Reverse").click()
        expect(page.get_by_role("status")).to_contain_text("Reversed: Reversed by customer service")
        expect(available).to_have_text(str(before + 50 - review["points"]))
        expect(newest).to_contain_text("Reversed by customer service: review taken down by the shop")
        shot(page, "5-adjusted-and-reversed")
        # Her statement, as the API serves it, ends with both, in her words, with the reasons
        lines = desk.statement()[-2:]
        assert [(line["title"], line["points"]) for line in lines] == [
            ("Points added by customer service", 50),
            ("Reversed by customer service", -review["points"]),
        ]
        assert "tent arrived a week late" in lines[0]["explanation"]
        assert "review taken down by the shop" in lines[1]["explanation"]

        # The operations page: a poison message, dead-lettered with its reason, redriven from the page
        flight = PointsEvent(
            program=LATER,
            channel=Channel.PARTNER,
            source="partner:skyair",
            external_id="flight-outlet-1",
            identity=Identity(kind=IdentityKind.MEMBER, value="m002"),
            occurred_at=datetime.now(UTC),
            points=300,
            reason="flight JFK-SFO",
        )
        message = json.dumps({"event": flight.model_dump(mode="json")})
        desk.sb.client("sqs").send_message(QueueUrl=desk.sb.resource("IngestQueue"), MessageBody=message)
        desk.sb.wait_for_idle(timeout=120)
        [letter] = [
            m
            for m in desk.api.ok("GET", "/admin/dead-letters", desk.operator)["queues"]["ingest"]
            if "flight-outlet-1" in m["body"]
        ]
        assert letter["code"] == "unknown_program", letter
        page.goto(f"{desk.sb.api_url}/console/operations")
        page.get_by_label("Admin API key").fill(desk.operator)
        page.get_by_role("button", name="Load", exact=True).click()
        row = page.locator(f'#dlq-table tr[data-message-id="{letter["message_id"]}"]')
        expect(row).to_contain_text("unknown_program")
        expect(row).to_contain_text(letter["reason"])
        shot(page, "6-dead-letter-with-its-reason")
        # The brand launches the program; the operator redrives the message from the page
        outlet = load_program(PROGRAM_SEED).model_copy(update={"program": LATER, "name": "Demo Outfitters Outlet"})
        desk.api.services.programs.publish(outlet)
        row.get_by_role("button", name="Redrive").click()
        expect(page.locator("#dlq-result")).to_contain_text("sent back to the ingest queue")
        desk.sb.wait_for_idle(timeout=120)
        page.get_by_role("button", name="Refresh dead letters").click()
        expect(page.locator("#dlq-table tbody tr", has_text="flight-outlet-1")).to_have_count(0)
        shot(page, "7-redriven")
    # Its points posted once, and the audit is still clean after everything the desk did
    balance = desk.api.ok("GET", f"/programs/{LATER}/members/m002/balance", desk.operator)
    assert balance["available"] + balance["pending"] == 300
    after = desk.audit()
    assert after["ok"], after["problems"]
    assert after["totals"]["demo"]["available"] == audited["totals"]["demo"]["available"] + 50 - review["points"]
