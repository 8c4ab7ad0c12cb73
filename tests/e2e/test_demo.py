"""`make demo`'s story on the sandbox: its figures reconcile, a CRM hears every kind of event in the
committed shapes, the desk's swaps with SkyAir and its flag decision went through the API and show
on both ledgers, the settlement and the CRM's queue, and every statement line of every member reads
as a person's."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from pointbridge.demo import reconciles, run_scenario
from pointbridge.sandbox import Sandbox
from pointbridge.story import AGREEMENT, EXCHANGED, FLAG_NOTE, FLAGGED, MILES_IN, RETURNED, SENT, SUPPORT_AGENT
from tests.support.outbound import check
from tests.support.statements import INTERNAL

if TYPE_CHECKING:
    from collections.abc import Iterator

# The story takes minutes on a loaded machine: longer than the suite's default per-test limit.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
# Smaller than `make demo`'s (the same story: the flag in week 7, expiries from week 9 on; the desk today).
MEMBERS, WEEKS = 30, 10


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Sandbox, dict[str, Any]]]:
    with Sandbox(template=TEMPLATE, stage="e2e", pool_size=1, schedules=False) as sb:
        yield sb, run_scenario(sb, members=MEMBERS, weeks=WEEKS)


def test_the_demos_figures_reconcile(demo: tuple[Sandbox, dict[str, Any]]) -> None:
    _, result = demo
    # The audit passes, and the console's liability is the ledger's with nothing unexplained
    assert result["audit"]["ok"], result["audit"]["problems"]
    assert reconciles(result)
    to_date = result["figures"]["to_date"]
    totals = result["audit"]["totals"]["demo"]
    assert to_date["expired"] == totals["breakage"] > 0
    assert to_date["redeemed"] == totals["redemption"] > 0
    # And every member the CRM heard earning has an account in the figures (a member who did not come
    # in the story's weeks, about half at its 5% a week, has none)
    earners = {
        str(event["detail"].get("member"))
        for event in result["crm"].received
        if event["detail-type"] == "PointsEarned" and not str(event["detail"].get("member", "")).startswith("pv-")
    }
    assert result["figures"]["members"] >= len(earners) > 0


def test_a_crm_hears_every_kind_of_event_in_its_committed_shape(demo: tuple[Sandbox, dict[str, Any]]) -> None:
    _, result = demo
    crm = result["crm"]
    crm.poll()
    for event in crm.received:
        check(event)  # docs/events/<detail-type>.json
    assert set(crm.counts) >= {
        "PointsEarned",
        "PointsRedeemed",
        "PointsExpiring",
        "PointsExpired",
        "TierChanged",
        "FlagRaised",
        "TransferPending",
    }
    assert crm.duplicates == 0
    reminders = [e["detail"] for e in crm.received if e["detail-type"] == "PointsExpiring"]
    # A reminder says which earns expire, in both languages
    assert any(r["earns"] and r["words"]["en"] and r["words"]["zh-CN"] for r in reminders)


def test_every_statement_line_reads_as_a_persons_in_both_languages(demo: tuple[Sandbox, dict[str, Any]]) -> None:
    sb, result = demo
    headers = {"x-api-key": result["admin_key"]}
    members = [f"m{n:03d}" for n in range(1, MEMBERS + 1)] + [result["member"]]
    walked = 0
    for member in members:
        for language in ("en", "zh-CN"):
            url = f"{sb.api_url}/programs/demo/members/{member}/statement"
            reply = requests.get(url, params={"limit": 100, "lang": language}, headers=headers, timeout=180)
            if reply.status_code == 404:
                continue  # a member the story never saw in a channel
            assert reply.status_code == 200, reply.text
            for line in reply.json()["entries"]:
                assert line["event_time"][:4].isdigit(), line
                assert isinstance(line["points"], int), line
                assert line["title"].strip() and line["explanation"].strip(), line
                assert not INTERNAL.search(line["explanation"]), line["explanation"]
                walked += 1
    assert walked >= 2 * MEMBERS


def _get(sb: Sandbox, key: str, path: str, **query: Any) -> Any:
    reply = requests.get(f"{sb.api_url}{path}", params=query, headers={"x-api-key": key}, timeout=180)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _statement(sb: Sandbox, key: str, program: str, member: str) -> list[dict[str, Any]]:
    path = f"/programs/{program}/members/{member}/statement"
    entries: list[dict[str, Any]] = _get(sb, key, path, limit=100, lang="en")["entries"]
    return entries


def test_members_swap_points_with_skyair_through_the_api(demo: tuple[Sandbox, dict[str, Any]]) -> None:
    sb, result = demo
    desk, key = result["desk"], result["admin_key"]
    # The exchange: its two entries, one in each program, priced by the quote
    quote, debit, credit = desk.exchange["quote"], desk.exchange["debit"], desk.exchange["credit"]
    member = desk.exchanged_by
    assert (quote["agreement"], quote["gross"], quote["from_program"], quote["to_program"]) == (
        AGREEMENT,
        EXCHANGED,
        "demo",
        "skyair",
    )
    assert (debit["available_change"], credit["available_change"]) == (-EXCHANGED, quote["credited"]) != (0, 0)
    assert desk.miles["available"] == quote["credited"]
    assert debit["entry_id"] in {line["entry_id"] for line in _statement(sb, key, "demo", member)}
    assert credit["entry_id"] in {line["entry_id"] for line in _statement(sb, key, "skyair", member)}
    # The transfers out: each held, then SkyAir took one and turned the other back
    (sender, held), (returned, back) = desk.transfers_out.items()
    assert (held["kind"], held["available_change"], back["available_change"]) == ("hold", -SENT, -RETURNED)
    assert (desk.confirmed["kind"], desk.rejected["kind"]) == ("capture", "release")
    assert _get(sb, key, f"/programs/demo/members/{returned}/balance")["held"] == 0
    # SkyAir's transfer in, to the member whose flyer id it linked
    assert desk.transfer_in["available_change"] == MILES_IN
    # SkyAir's settlement for the days around today moved by exactly the desk's swaps
    before, after = desk.settlement_before, desk.settlement
    assert after["sent"] - before["sent"] == EXCHANGED + SENT
    assert after["fees"] - before["fees"] == quote["fee"] > 0
    assert after["received"] - before["received"] == MILES_IN
    assert after["entries"] - before["entries"] == 3
    # And the CRM heard both transfers out as pending, in the committed shape, in the member's words
    heard = result["crm"].received
    pending = {e["detail"]["member"]: e["detail"] for e in heard if e["detail-type"] == "TransferPending"}
    assert {sender: SENT, returned: RETURNED} == {m: d["points"] for m, d in pending.items() if m in (sender, returned)}
    for detail in pending.values():
        assert (detail["direction"], detail["counterparty"]) == ("out", "skyair")
        assert detail["words"]["en"] and detail["words"]["zh-CN"]


def test_support_decided_the_flag_through_the_api_with_its_reason(demo: tuple[Sandbox, dict[str, Any]]) -> None:
    sb, result = demo
    desk = result["desk"]
    # The watch's flag was open at the desk, and support's decision closed it
    assert FLAGGED in {flag["member"] for flag in desk.flags_before}
    assert FLAGGED not in {flag["member"] for flag in desk.flags_after}
    decision = desk.decision
    assert (decision["member"], decision["decision"], decision["operator"]) == (FLAGGED, "release", SUPPORT_AGENT)
    # The order the flag held was released (its return window had closed), with the reason on her statement
    assert decision["released"], decision
    released = [line for line in _statement(sb, result["admin_key"], "demo", FLAGGED) if FLAG_NOTE in str(line)]
    assert released, "the decision's note is on none of her statement's lines"
    assert FLAGGED in {str(e["detail"]["member"]) for e in result["crm"].received if e["detail-type"] == "FlagRaised"}
