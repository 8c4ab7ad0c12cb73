"""Members over real HTTP: balance buckets, statement paging, tier and progress, identity linking."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pointbridge.sandbox import Sandbox
from shared.access.keys import PrincipalKind
from shared.events.identity import hash_email
from shared.ledger.audit import audit
from shared.ledger.commands import Earn
from tests.support.channels import identity_key
from tests.support.http_api import HttpApi, problem
from tests.support.inbox import code_inbox

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ANN = "/programs/club/members/ann"
CLUB = {
    "program": "club",
    "version": 1,
    "name": "Club",
    "tier_qualification": {"basis": "points"},
    "tiers": [
        {"name": "member", "rank": 0},
        {"name": "silver", "rank": 1, "threshold": "500"},
        {"name": "gold", "rank": 2, "threshold": "2000"},
    ],
}


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApi]:
    """The club program published over HTTP; ann earned 700 (a year to expire), 30 (expiring in 20 days)
    and 50 pending."""
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        api = HttpApi(sb)
        admin = api.key(PrincipalKind.ADMIN, "ops")
        api.mutate("PUT", "/admin/programs/club", admin, CLUB, other={**CLUB, "name": "Another club"})
        ledger = api.services.ledger
        now = datetime.now(UTC)
        for ext, points, extra in (
            ("o-1", 700, {}),
            ("o-2", 30, {"expires_at": now + timedelta(days=20)}),
            ("o-3", 50, {"pending": True}),
        ):
            earn = Earn(
                program="club", member="ann", points=points, source="shop", external_id=ext, reason=ext, event_time=now
            )
            ledger.earn(earn.model_copy(update=extra))
        yield api


def test_balance_shows_every_bucket_and_what_expires_soon(api: HttpApi) -> None:
    # Given a checkout hold of 20 points (it takes the lot that expires first)
    ann = api.key(PrincipalKind.MEMBER, "ann", ("club",))
    hold = {"points": 20, "reference": "basket-1"}
    api.mutate("POST", f"{ANN}/holds", ann, hold, other={**hold, "points": 21})
    # When ann reads her balance
    balance = api.ok("GET", f"{ANN}/balance", ann)
    # Then available, pending and held are apart, and 10 of the soon-expiring 30 are left to use
    soon = (datetime.now(UTC) + timedelta(days=20)).date().isoformat()
    assert (balance["available"], balance["spendable"], balance["pending"], balance["held"]) == (710, 710, 50, 20)
    assert balance["expiring"] == [{"date": soon, "points": 10}]
    # Credited straight to the ledger, not earned through ingest: no qualifying activity, lowest tier
    assert balance["tier"] == "member"
    # And a till of the program reads it too, while another member may not
    till = api.key(PrincipalKind.CHANNEL, "till-1", ("club",))
    assert api.ok("GET", f"{ANN}/balance", till)["available"] == 710
    bob = api.key(PrincipalKind.MEMBER, "bob", ("club",))
    problem(api.call("GET", f"{ANN}/balance", bob), 403, "forbidden")
    problem(api.call("GET", "/programs/club/members/nobody/balance", till), 404, "unknown_member")


def test_statement_pages_through_every_entry_once_with_explanations(api: HttpApi) -> None:
    # Given a few more entries for ann
    ann = api.key(PrincipalKind.MEMBER, "ann", ("club",))
    for n in range(3):
        api.ok("POST", f"{ANN}/redemptions", ann, {"points": 1, "reference": f"small-{n}"}, status=201)
    # When she reads her statement two entries at a time
    seen, after = [], 0
    while True:
        page = api.ok("GET", f"{ANN}/statement", ann, query={"after": str(after), "limit": "2"})
        assert len(page["entries"]) <= 2
        seen += page["entries"]
        if page["next"] is None:
            break
        after = page["next"]
    # Then every entry comes once, in chain order, each with a sentence saying what happened and why
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert len(seen) >= 6
    assert seen[0]["explanation"] == "Points added: o-1"
    assert all(e["title"] and e["explanation"].startswith(e["title"]) for e in seen)
    # Each line carries the spendable balance after it, and they add up line by line.
    running = 0
    for entry in seen:
        running += entry["available_change"]
        assert entry["balance_after"] == running
    assert running == api.ok("GET", f"{ANN}/balance", ann)["available"]
    # In Simplified Chinese when the member's device asks for it (or `lang` says so).
    chinese = api.ok("GET", f"{ANN}/statement", ann, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert chinese["language"] == "zh-CN"
    assert chinese["entries"][0]["explanation"] == "积分入账：o-1"
    assert api.ok("GET", f"{ANN}/statement", ann, query={"lang": "en"})["language"] == "en"
    problem(api.call("GET", f"{ANN}/statement", ann, query={"lang": "fr"}), 400, "invalid_input")
    problem(api.call("GET", f"{ANN}/statement", ann, query={"limit": "1000"}), 400, "invalid_input")


def test_an_earn_through_ingest_that_crosses_a_threshold_shows_the_new_tier_and_progress(api: HttpApi) -> None:
    # Given dan, new to the club, buys for 600 USD (600 points: silver is 500, gold 2,000)
    event = {
        "event": {
            "kind": "purchase",
            "program": "club",
            "channel": "online",
            "source": "shop:club",
            "external_id": "order-dan-1",
            "identity": {"kind": "member", "value": "dan"},
            "occurred_at": datetime.now(UTC).isoformat(),
            "currency": "USD",
            "eligible_amount": "600",
        }
    }
    sb = api.sandbox
    # When the purchase goes through the ingest queue
    sb.client("sqs").send_message(QueueUrl=sb.resource("IngestQueue"), MessageBody=json.dumps(event))
    sb.wait_for_idle(timeout=60)
    # Then /tier and /balance show the tier the earn moved dan to (the stored tier item) and the
    # progress from the activity tally: the same items ingest and the tier job use
    dan = api.key(PrincipalKind.MEMBER, "dan", ("club",))
    assert api.ok("GET", "/programs/club/members/dan/tier", dan) == {
        "tier": "silver",
        "basis": "points",
        "qualifying": "600",
        "next_tier": "gold",
        "needed_for_next": "1400",
    }
    assert api.ok("GET", "/programs/club/members/dan/balance", dan)["tier"] == "silver"


def test_linking_an_email_folds_points_earned_under_it_into_the_member(api: HttpApi) -> None:
    # Given points earned through the ingest queue under an e-mail nobody had claimed (a provisional member)
    hashed = hash_email(identity_key(api.sandbox).encode(), "cy@example.com")
    event = {
        "event": {
            "kind": "points",
            "program": "club",
            "channel": "app",
            "source": "app",
            "external_id": "welcome-cy",
            "identity": {"kind": "email", "value": hashed},
            "occurred_at": datetime.now(UTC).isoformat(),
            "points": 40,
            "reason": "welcome bonus",
        }
    }
    sb = api.sandbox
    sb.client("sqs").send_message(QueueUrl=sb.resource("IngestQueue"), MessageBody=json.dumps(event))
    sb.wait_for_idle(timeout=60)
    cy = api.key(PrincipalKind.MEMBER, "cy", ("club",))
    inbox = code_inbox(sb.client("events"), sb.client("sqs"), sb.resource("NotificationsBus"))
    # When member cy asks for a code for that e-mail, sent raw (the API hashes it), and confirms it
    codes = "/programs/club/members/cy/identities/verifications"
    email = {"kind": "email", "value": " Cy@Example.com "}
    sent = api.mutate("POST", codes, cy, email, other={**email, "value": "cy2@example.com"})
    assert inbox.detail(sent["verification_id"])["to"] == "cy@example.com"
    confirm = f"{codes}/{sent['verification_id']}/confirm"
    code = {"code": inbox.code_for(sent["verification_id"])}
    linked = api.mutate("POST", confirm, cy, code, other={"code": "000000" if code["code"] != "000000" else "111111"})
    # Then the provisional member's points moved to cy through the ledger, and no raw e-mail was stored
    assert linked["member"] == "cy" and linked["merged"]
    assert api.ok("GET", "/programs/club/members/cy/balance", cy)["available"] == 40
    assert not any("example.com" in str(item).lower() for item in api.services.table.scan())
    assert audit(*api.services.ledger_store.ledger_records()).ok
    # And the till that sees cy's card links it; nonsense is a typed problem; cy links nothing of ann's
    till = api.key(PrincipalKind.CHANNEL, "till", ("club",))
    card, path = {"kind": "card", "value": "card-0042"}, "/programs/club/members/cy/identities"
    assert api.mutate("POST", path, till, card, other={**card, "value": "0043"}) == {"member": "cy", "merged": ""}
    problem(api.call("POST", codes, cy, {"kind": "email", "value": "not-an-email"}), 400, "invalid_identity")
    problem(api.call("POST", f"{ANN}/identities/verifications", cy, email), 403, "forbidden")
