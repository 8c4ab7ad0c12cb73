"""The operations page and its admin routes over real HTTP (issue 14, "operations").

Dead letters listed with their reasons and redriven one at a time (a redrive that fails again keeps
the message with its new reason; one that works replays its entry once), every partner's and till's
files, and the page in Debian's chromium driven by Playwright: a redrive from the page, a config
diff and publish, a refused config with its field named, files, settlement and keys. Screenshots go
to tests/artifacts/operations/ (POINTBRIDGE_ARTIFACTS moves them).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from pointbridge.sandbox import Sandbox
from shared.access.keys import AdminRole, Principal, PrincipalKind, issue_key
from shared.earning.queue import envelope
from shared.events.model import Channel, Identity, IdentityKind, PointsEvent
from shared.infra import keys
from shared.ledger.commands import Earn
from shared.ledger.models import Account
from shared.program.config import ProgramConfig
from shared.projections.figures import SHARDS
from tests.integration.channel_fixtures import SOURCES, acme
from tests.support.browser import chromium
from tests.support.channels import create_channels
from tests.support.http_api import problem
from tests.support.services import sandbox_services

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("POINTBRIDGE_ARTIFACTS", ROOT / "tests" / "artifacts")) / "operations"
FEED = "partners/skyair/feed-ops.csv"


class Ops:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.services = sandbox_services(sb, sleep=lambda _: None, config_cache_seconds=0)
        access = self.services.access_items
        self.operator = issue_key(access, Principal(kind=PrincipalKind.ADMIN, id="olga", role=AdminRole.OPERATOR))
        self.auditor = issue_key(access, Principal(kind=PrincipalKind.ADMIN, id="aldo", role=AdminRole.AUDITOR))
        self.support = issue_key(access, Principal(kind=PrincipalKind.ADMIN, id="sue", role=AdminRole.SUPPORT))
        self.member = issue_key(access, Principal(kind=PrincipalKind.MEMBER, id="ann", programs=("acme",)))
        self.ghosts: dict[str, str] = {}

    def call(self, method: str, path: str, key: str | None, body: Any = None) -> requests.Response:
        headers = {"x-api-key": key} if key else {}
        return requests.request(method, f"{self.sb.api_url}{path}", json=body, headers=headers, timeout=120)

    def ok(self, method: str, path: str, key: str, body: Any = None) -> Any:
        reply = self.call(method, path, key, body)
        assert reply.status_code in (200, 201), reply.text
        return reply.json()

    def ghost(self, program: str) -> str:
        """An entry of a program the watch cannot read (its config comes late): every try fails on it,
        and after its retries its batch is in WatchDeadLetterQueue. Returns the entry's key."""
        now = datetime.now(UTC)
        earn = Earn(
            program="acme",
            member=f"m-{program}",
            points=120,
            source="partner",
            external_id=f"p-{program}",
            reason="partner earn",
            event_time=now,
            counter=Account.PARTNER,
            counter_owner="skyair",
        )
        entry = self.services.ledger.earn(earn, at=now)
        self.sb.wait_for_idle(timeout=60)
        item = self.services.table.get(keys.ItemKey(f"E#acme#{entry.entry_id}", "E"))
        assert item is not None
        pk = f"E#{program}#{entry.entry_id}"
        self.services.table.put(
            {**item, "PK": pk, "body": entry.model_copy(update={"program": program}).model_dump_json()}
        )
        self.sb.wait_for_idle(timeout=180)
        self.ghosts[program] = pk
        return pk

    def letters(self, queue: str) -> list[dict[str, Any]]:
        return list(self.ok("GET", "/admin/dead-letters", self.auditor)["queues"][queue])

    def letter_of(self, pk: str) -> dict[str, Any]:
        [found] = [m for m in self.letters("watch") if any(e["entry"] == pk for e in m["entries"])]
        return found

    def counted(self, program: str) -> dict[str, int]:
        return self.services.figure_items.read_buckets(program, ["ALL"], SHARDS).get("ALL", {})


@pytest.fixture(scope="module")
def ops() -> Iterator[Ops]:
    with Sandbox(template=ROOT / "template.yaml", stage="opsdesk", schedules=False, pool_size=1) as sb:
        desk = Ops(sb)
        desk.services.programs.publish(acme())
        create_channels(sb, SOURCES, desk.operator)
        # A partner file with one refused row (a negative amount)
        at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        rows = [
            "partner_member_id,external_id,occurred_at,points,reason",
            f"AIR-1,ft-1,{at},40,flight",
            f"AIR-2,ft-2,{at},-3,x",
        ]
        body = "\n".join(rows) + "\n"
        sb.client("s3").put_object(Bucket=sb.resource("FilesBucket"), Key=FEED, Body=body.encode())
        for program in ("ghost-api", "ghost-page"):
            desk.ghost(program)
        yield desk


def test_dead_letters_are_listed_with_their_reasons_and_redriven_once(ops: Ops) -> None:
    pk = ops.ghosts["ghost-api"]
    # Given a stream batch the watch gave up on: listed with the entry and the error it noted
    letter = ops.letter_of(pk)
    assert letter["code"] == "watch_failed" and "no program 'ghost-api'" in letter["reason"]
    assert letter["unknown_records"] == 0
    # When an operator redrives it before the program's config exists
    redrive = f"/admin/dead-letters/watch/{letter['message_id']}/redrive"
    again = problem(ops.call("POST", redrive, ops.operator, {}), 409, "redrive_failed")
    # Then it says so, and the message stays, with the new error as its reason
    assert "failed again and the message stays" in again["detail"] and pk in again["detail"]
    assert again["message_id"] == letter["message_id"]
    kept = ops.letter_of(pk)
    assert kept["message_id"] == letter["message_id"] and "UnknownProgramError" in kept["reason"]
    [note] = [n for n in ops.services.failure_notes.all() if n.entry_pk == pk]
    assert note.error.startswith("UnknownProgramError") and note.attempts > 1
    assert ops.counted("ghost-api") == {}
    # When the config is published and the operator redrives it again
    ops.services.programs.publish(ProgramConfig(program="ghost-api", name="Ghost"))
    done = ops.ok("POST", redrive, ops.operator, {})
    # Then the entry is projected once, the message is gone and the partner's statement day is named
    assert done["replayed"] == [pk] and done["sent_back"] is False
    assert done["settlement_days"][0]["program"] == "ghost-api"
    assert ops.counted("ghost-api")["partner_earned"] == 120
    assert all(m["message_id"] != letter["message_id"] for m in ops.letters("watch"))
    # And a second redrive of the same message finds nothing to replay: it counted once
    problem(ops.call("POST", redrive, ops.operator, {}), 404, "unknown_dead_letter")
    assert ops.counted("ghost-api")["partner_earned"] == 120


def test_an_ingest_dead_letter_goes_back_and_posts_once(ops: Ops) -> None:
    sqs = ops.sb.client("sqs")
    event = PointsEvent(
        program="acme",
        channel=Channel.PARTNER,
        source="partner:skyair",
        external_id="t-back",
        identity=Identity(kind=IdentityKind.MEMBER, value="bo"),
        occurred_at=datetime.now(UTC),
        points=75,
    )
    # Given an event the queue's redrive moved here bare (its worker crashed on every delivery)
    sqs.send_message(QueueUrl=ops.sb.resource("IngestDeadLetterQueue"), MessageBody=envelope(event))
    [bare] = [m for m in ops.letters("ingest") if "t-back" in m["body"]]
    assert bare["code"] == "none" and "no reason recorded" in bare["reason"]
    # When an operator redrives it
    done = ops.ok("POST", f"/admin/dead-letters/ingest/{bare['message_id']}/redrive", ops.operator, {})
    ops.sb.wait_for_idle(timeout=60)
    # Then it went back to the ingest queue and its event posted once
    assert done["sent_back"] is True
    assert all("t-back" not in m["body"] for m in ops.letters("ingest"))
    assert ops.ok("GET", "/programs/acme/members/bo/balance", ops.auditor)["available"] == 75


def test_operators_act_and_auditors_read_nobody_else(ops: Ops) -> None:
    redrive = "/admin/dead-letters/watch/0000-none/redrive"
    for key in (ops.member, ops.support):
        problem(ops.call("GET", "/admin/dead-letters", key), 403, "forbidden")
        problem(ops.call("GET", "/admin/channels/partner/skyair/files", key), 403, "forbidden")
    for key in (ops.member, ops.support, ops.auditor):
        problem(ops.call("POST", redrive, key, {}), 403, "forbidden")
    assert ops.call("GET", "/admin/dead-letters", None).status_code == 401
    # Those allowed get clear refusals for what is not there
    problem(ops.call("POST", redrive, ops.operator, {}), 404, "unknown_dead_letter")
    problem(ops.call("POST", "/admin/dead-letters/elsewhere/x/redrive", ops.operator, {}), 400, "invalid_input")
    problem(ops.call("GET", "/admin/channels/partner/nobody/files", ops.auditor), 404, "unknown_channel")
    problem(ops.call("GET", "/admin/channels/shopify/x/files", ops.auditor), 400, "invalid_input")
    problem(ops.call("GET", "/admin/channels/partner/skyair/files/none", ops.auditor), 404, "unknown_file")


def test_every_partner_and_till_file_is_readable_by_operators(ops: Ops) -> None:
    # The partner's file, with its refused line and why
    [feed] = ops.ok("GET", "/admin/channels/partner/skyair/files", ops.auditor)["files"]
    assert (feed["name"], feed["accepted"], feed["rejected"]) == ("feed-ops.csv", 1, 1)
    report = ops.ok("GET", f"/admin/channels/partner/skyair/files/{feed['file_id']}", ops.operator)
    assert [(r["line"], r["code"]) for r in report["rejected_lines"]] == [(3, "amount_out_of_range")]
    # A till's files (none sent yet) by the same route
    assert ops.ok("GET", "/admin/channels/till/default/files", ops.operator) == {"files": [], "next": None}


def test_the_operations_page_is_served_without_a_key(ops: Ops) -> None:
    page = requests.get(f"{ops.sb.api_url}/console/operations", timeout=30)
    assert page.status_code == 200 and "Pointbridge operations" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_an_operator_runs_operations_from_the_page(ops: Ops) -> None:
    pk = ops.ghosts["ghost-page"]
    message = ops.letter_of(pk)["message_id"]
    with chromium("the operations page's browser test") as browser:
        from playwright.sync_api import expect

        page = browser.new_page()
        page.set_viewport_size({"width": 1366, "height": 900})
        alert = page.get_by_role("alert")
        # Given the operations page opened with an operator's key
        page.goto(f"{ops.sb.api_url}/console/operations")
        page.get_by_label("Admin API key").fill(ops.operator)
        page.get_by_role("button", name="Load", exact=True).click()
        row = page.locator(f'#dlq-table tr[data-message-id="{message}"]')
        # Then the dead letter is listed with its reason
        expect(row).to_contain_text("no program 'ghost-page'")
        shot(page, "1-dead-letters")
        # When the operator redrives it before its program exists: refused in words, and it stays
        row.get_by_role("button", name="Redrive").click()
        expect(page.locator("#dlq-result")).to_contain_text("failed again and the message stays")
        expect(row).to_contain_text("UnknownProgramError")
        shot(page, "2-redrive-failed-again")
        # When the program is published and the operator redrives it from the page
        ops.services.programs.publish(ProgramConfig(program="ghost-page", name="Ghost"))
        row.get_by_role("button", name="Redrive").click()
        # Then it is replayed once and leaves the queue
        expect(page.locator("#dlq-result")).to_contain_text(f"replayed 1 entry: {pk}")
        expect(row).to_have_count(0)
        assert ops.counted("ghost-page")["partner_earned"] == 120
        shot(page, "3-redriven")
        # When the operator loads the live program config, edits it and asks for the diff
        page.get_by_role("combobox", name="What").select_option("program")
        page.get_by_label("Id (agreement id; channel as kind/id)").fill("acme")
        page.get_by_role("button", name="Load live").click()
        expect(page.locator("#config-result")).to_contain_text("Live program version 1 loaded")
        draft = page.get_by_label("Draft (JSON)")
        draft.fill(draft.input_value().replace('"name": "Acme"', '"name": "Acme Rewards"'))
        page.get_by_role("button", name="Diff against live").click()
        # Then the changes against live are listed, field by field
        changes = page.locator("#config-changes li")
        expect(changes).to_have_count(2)
        expect(page.locator("#config-changes")).to_contain_text('~ name: "Acme" -> "Acme Rewards"')
        expect(page.locator("#config-changes")).to_contain_text("~ version: 1 -> 2")
        shot(page, "4-config-diff")
        # When it is published: version 2 is live, with the new name
        page.get_by_role("button", name="Publish").click()
        expect(page.locator("#config-result")).to_contain_text("Published: program version 2 is live")
        assert ops.services.programs.get("acme").name == "Acme Rewards"
        shot(page, "5-config-published")
        # When a draft names a time zone that does not exist: refused with the field named, live stays
        draft.fill(draft.input_value().replace('"timezone": "UTC"', '"timezone": "Mars/Base"'))
        page.get_by_role("button", name="Publish").click()
        result = page.locator("#config-result")
        expect(result).to_contain_text("Refused, the live version stays")
        expect(result).to_contain_text("timezone: unknown IANA timezone 'Mars/Base'")
        expect(page.locator("#config-changes li.field-bad")).to_contain_text("timezone")
        assert ops.services.programs.get("acme").version == 2
        shot(page, "6-config-refused")
        # And a draft that is not JSON, and an unknown program, are explained, not thrown
        draft.fill("{not json")
        page.get_by_role("button", name="Diff against live").click()
        expect(alert).to_contain_text("The draft is not JSON")
        page.get_by_label("Id (agreement id; channel as kind/id)").fill("nope")
        page.get_by_role("button", name="Load live").click()
        expect(alert).to_contain_text("no program 'nope'")
        # When the operator reads the partner's files and a file's report
        page.get_by_role("combobox", name="Partner or till").select_option("partner/skyair")
        page.get_by_role("button", name="Show files").click()
        files = page.locator("#files-table tbody tr")
        expect(files).to_have_count(1)
        files.first.get_by_role("button", name="Report").click()
        expect(page.locator("#file-report")).to_contain_text("amount_out_of_range")
        shot(page, "7-file-report")
        # And the partner's settlement over the last 30 days: the total row holds the partner's points
        page.get_by_role("button", name="Show settlement").click()
        expect(page.locator("#settle-table tbody tr").last).to_contain_text("Total")
        expect(page.locator("#settle-table caption")).to_contain_text("skyair and acme")
        shot(page, "8-settlement")
        # When the operator creates a key: shown once, then listed by its id only
        page.get_by_role("combobox", name="Kind").select_option("admin")
        page.get_by_label("Id", exact=True).fill("newcomer")
        page.get_by_role("combobox", name="Role (admins)").select_option("auditor")
        page.get_by_role("button", name="Create key").click()
        expect(page.locator("#key-result .secret")).to_contain_text("pb_")
        expect(page.locator("#keys-table")).to_contain_text("admin:newcomer (auditor)")
        shot(page, "9-keys")
