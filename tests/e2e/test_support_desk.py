"""Support's desk over real HTTP: find a member by e-mail, read the member's page, adjust, reverse and
override a tier with reasons; bad input gets problem codes; only support acts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shared.access.keys import AdminRole, PrincipalKind
from shared.ledger.audit import audit
from tests.support.desk import EMAIL, GIFT, PARTNER_CREDIT, PROGRAM, REDEMPTION, desk_api
from tests.support.http_api import HttpApi, problem

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
ANN = f"/admin/programs/{PROGRAM}/members/ann"


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApi]:
    with desk_api() as http:
        yield http


def support_key(api: HttpApi) -> str:
    return api.key(PrincipalKind.ADMIN, "agent-7", role=AdminRole.SUPPORT)


def lines(api: HttpApi, key: str, lang: str = "en") -> list[dict]:
    return api.ok("GET", ANN, key, query={"lang": lang})["statement"]["entries"]


def test_support_finds_a_member_by_email_and_reads_the_page(api: HttpApi) -> None:
    agent = support_key(api)
    search = f"/admin/programs/{PROGRAM}/members/search"
    # The e-mail as the member says it (case, spaces): hashed on the server, found
    found = api.ok("POST", search, agent, {"email": "  ann.lee@EXAMPLE.com "})
    assert [m["member"] for m in found["members"]] == ["ann"]
    assert api.ok("POST", search, agent, {"email": "nobody@example.com"}) == {"members": []}
    assert api.ok("POST", search, agent, {"member": "bob"})["members"][0]["available"] == 1100
    problem(api.call("POST", search, agent, {"email": EMAIL, "member": "ann"}), 400, "invalid_input")
    problem(api.call("POST", search, agent, {}), 400, "invalid_input")
    # The page: balance, lots, statement, tiers, identities (the e-mail stays hashed), flags
    page = api.ok("GET", ANN, agent)
    assert page["balance"]["available"] == 1000 - 300 + 120 - 100
    assert sum(lot["remaining"] for lot in page["lots"]) == page["balance"]["available"]
    assert page["tiers"] == ["member", "gold"] and page["flag"] == ""
    assert [i["kind"] for i in page["identities"]] == ["email"]
    assert "example.com" not in str(page).lower()
    assert [e["kind"] for e in page["statement"]["entries"]] == ["earn", "spend", "earn", "transfer_out"]
    # No raw e-mail anywhere in the table
    assert not any("example.com" in str(item).lower() for item in api.services.table.scan())


def test_adjustments_reversals_and_tier_overrides_with_reasons(api: HttpApi) -> None:
    agent = support_key(api)
    # An adjustment: from the goodwill account, the reason and the agent on the entry and the statement
    made = api.ok("POST", f"{ANN}/adjustments", agent, {"points": 50, "reason": "late parcel"}, status=201)
    assert made["entry"]["points"] == 50 and made["entry"]["details"]["support_agent"] == "agent-7"
    assert made["entry"]["title"] == "Points added by customer service"
    assert lines(api, agent)[-1]["explanation"] == "Points added by customer service: late parcel"
    assert lines(api, agent, "zh-CN")[-1]["explanation"] == "客服补偿积分：late parcel"
    taken = api.ok("POST", f"{ANN}/adjustments", agent, {"points": -20, "reason": "double credit"}, status=201)
    assert taken["entry"]["title"] == "Points deducted by customer service" and taken["available"] == 750
    # Bad input: no reason, zero, overdraw, unknown member or program
    problem(api.call("POST", f"{ANN}/adjustments", agent, {"points": 5, "reason": "  "}), 400, "invalid_input")
    problem(api.call("POST", f"{ANN}/adjustments", agent, {"points": 5}), 400, "invalid_input")
    problem(api.call("POST", f"{ANN}/adjustments", agent, {"points": 0, "reason": "x"}), 400, "invalid_input")
    over = problem(
        api.call("POST", f"{ANN}/adjustments", agent, {"points": -751, "reason": "x"}), 422, "insufficient_points"
    )
    assert "751" in over["detail"]
    nobody = f"/admin/programs/{PROGRAM}/members/nobody/adjustments"
    problem(api.call("POST", nobody, agent, {"points": 5, "reason": "x"}), 404, "unknown_member")
    problem(
        api.call("POST", "/admin/programs/nope/members/ann/adjustments", agent, {"points": 5, "reason": "x"}),
        404,
        "unknown_program",
    )
    problem(api.call("GET", f"/admin/programs/{PROGRAM}/members/nobody", agent), 404, "unknown_member")
    # A reversal of the redemption: points back, its cause named, once only
    back = api.ok(
        "POST", f"{ANN}/reversals", agent, {"entry_id": REDEMPTION, "reason": "mug arrived broken"}, status=201
    )
    assert back["entry"]["points"] == 300
    assert (back["entry"]["details"]["cause_kind"], back["entry"]["details"]["cause"]) == ("operator", "agent-7")
    assert back["entry"]["title"] == "Reversed by customer service"
    told = lines(api, agent)[-1]["explanation"]
    assert told.startswith("Reversed by customer service: mug arrived broken; the reward redeemed on ")
    assert "兑换已撤销" in lines(api, agent, "zh-CN")[-1]["explanation"]
    again = {"entry_id": REDEMPTION, "reason": "again"}
    problem(api.call("POST", f"{ANN}/reversals", agent, again), 409, "already_reversed")
    reversal = {"entry_id": back["entry"]["entry_id"], "reason": "undo"}
    problem(api.call("POST", f"{ANN}/reversals", agent, reversal), 422, "not_reversible")
    problem(api.call("POST", f"{ANN}/reversals", agent, {"entry_id": "nope:1", "reason": "x"}), 404, "unknown_entry")
    problem(api.call("POST", f"{ANN}/reversals", agent, {"entry_id": REDEMPTION, "reason": ""}), 400, "invalid_input")
    # A partner credit reversed; a gift reversed from the sender's line: bob's 100 go back to ann
    partner = api.ok(
        "POST", f"{ANN}/reversals", agent, {"entry_id": PARTNER_CREDIT, "reason": "flight cancelled"}, status=201
    )
    assert partner["entry"]["points"] == -120
    gift = api.ok("POST", f"{ANN}/reversals", agent, {"entry_id": GIFT, "reason": "sent by mistake"}, status=201)
    assert (
        gift["entry"]["points"] == 100 and gift["entry"]["title"] == "Gift points returned to you by customer service"
    )
    bob = api.ok("GET", f"/admin/programs/{PROGRAM}/members/bob", agent)
    assert bob["balance"]["available"] == 1000
    assert bob["statement"]["entries"][-1]["explanation"] == "Gift returned by customer service: sent by mistake"
    problem(api.call("POST", f"{ANN}/reversals", agent, {"entry_id": GIFT, "reason": "x"}), 409, "already_reversed")
    assert api.ok("GET", ANN, agent)["balance"]["available"] == 750 + 300 - 120 + 100
    # A tier override: on the tier, in the history with the agent and reason; unknown tiers refused
    moved = api.ok("POST", f"{ANN}/tier", agent, {"tier": "gold", "reason": "VIP complaint"}, status=201)
    assert moved["line"] == "Tier set to gold by customer service: VIP complaint"
    page = api.ok("GET", ANN, agent, query={"lang": "zh-CN"})
    assert page["balance"]["tier"] == "gold"
    assert page["tier_history"][-1]["reason"] == "override by support agent-7: VIP complaint"
    assert page["tier_history"][-1]["line"] == "客服将会员等级调整为 gold：VIP complaint"
    problem(api.call("POST", f"{ANN}/tier", agent, {"tier": "platinum", "reason": "x"}), 422, "unknown_tier")
    # Every line a person can read; the ledger still balances and every take-back names its cause
    assert all(line["explanation"] and "agent-7" not in line["explanation"] for line in lines(api, agent))
    assert audit(*api.services.ledger_store.ledger_records()).ok


def test_only_support_acts_and_members_channels_partners_cannot_call(api: HttpApi) -> None:
    auditor = api.key(PrincipalKind.ADMIN, "audit-1", role=AdminRole.AUDITOR)
    operator = api.key(PrincipalKind.ADMIN, "ops-1", role=AdminRole.OPERATOR)
    member = api.key(PrincipalKind.MEMBER, "ann", (PROGRAM,))
    channel = api.key(PrincipalKind.CHANNEL, "till", (PROGRAM,))
    partner = api.key(PrincipalKind.PARTNER, "skyair", (PROGRAM,))
    adjust = {"points": 5, "reason": "x"}
    for key in (auditor, operator, member, channel, partner):
        problem(api.call("POST", f"{ANN}/adjustments", key, adjust), 403, "forbidden")
        problem(api.call("POST", f"{ANN}/reversals", key, {"entry_id": REDEMPTION, "reason": "x"}), 403, "forbidden")
        problem(api.call("POST", f"{ANN}/tier", key, {"tier": "gold", "reason": "x"}), 403, "forbidden")
    for key in (member, channel, partner):
        problem(api.call("GET", ANN, key), 403, "forbidden")
        problem(api.call("POST", f"/admin/programs/{PROGRAM}/members/search", key, {"member": "ann"}), 403, "forbidden")
    # Auditors and operators read the page; operators search; auditors open members by id only
    assert api.ok("GET", ANN, auditor)["member"] == "ann"
    assert api.ok("POST", f"/admin/programs/{PROGRAM}/members/search", operator, {"member": "ann"})["members"]
    problem(api.call("POST", f"/admin/programs/{PROGRAM}/members/search", auditor, {"member": "ann"}), 403, "forbidden")
