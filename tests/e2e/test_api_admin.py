"""Operators over real HTTP: versioned config (publish, refuse, read back), dry runs, keys, draws, sunset."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pointbridge.draws import verify_draw
from pointbridge.sandbox import Sandbox
from shared.access.keys import PrincipalKind
from shared.ledger.commands import Earn
from shared.program.config import ProgramConfig, Sunset
from shared.rewards import draws as draw
from tests.support.http_api import HttpApi, problem

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
MEMBERS = ("ann", "bob", "cy")


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApi]:
    """An empty stack; members ann, bob and cy get 1,000 points of each program a test publishes."""
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        yield HttpApi(sb)


def admin(api: HttpApi) -> str:
    return api.key(PrincipalKind.ADMIN, "ops")


def publish(api: HttpApi, program: str, **config: Any) -> Any:
    body = {"program": program, "version": 1, "name": program.title(), **config}
    return api.ok("PUT", f"/admin/programs/{program}", admin(api), body, status=201)


def fund(api: HttpApi, program: str) -> None:
    ledger = api.services.ledger
    for member in MEMBERS:
        earn = Earn(
            program=program,
            member=member,
            points=1000,
            source="seed",
            external_id=member,
            reason="seed",
            event_time=datetime.now(UTC),
        )
        ledger.earn(earn)


def test_versioned_config_publish_refuse_and_read_back(api: HttpApi) -> None:
    ops = admin(api)
    v1 = {"program": "club", "version": 1, "name": "Club"}
    assert api.mutate("PUT", "/admin/programs/club", ops, v1, other={**v1, "name": "x"}) == {
        "kind": "program",
        "id": "club",
        "version": 1,
    }
    v2 = {**v1, "version": 2, "base_rate": "2"}
    api.mutate("PUT", "/admin/programs/club", ops, v2, other={**v2, "base_rate": "3"})
    # A bad config is refused with its reason, and so is a version that is not newer; v2 stays live
    bad = {**v1, "version": 3, "tiers": [{"name": "gold", "rank": 1, "threshold": "5"}]}
    assert "threshold 0" in problem(api.call("PUT", "/admin/programs/club", ops, bad), 422, "invalid_config")["detail"]
    problem(api.call("PUT", "/admin/programs/club", ops, {**v1, "name": "stale"}), 422, "invalid_config")
    problem(api.call("PUT", "/admin/programs/club", ops, {**v1, "program": "other"}), 400, "invalid_input")
    live = api.ok("GET", "/admin/programs/club", ops)
    assert (live["version"], live["live"], live["config"]["base_rate"]) == (2, True, "2")
    history = api.ok("GET", "/admin/programs/club/versions", ops)
    assert [(v["version"], v["live"]) for v in history["versions"]] == [(1, False), (2, True)]
    # Catalogue: published, a bad one refused, the live one read back with its history
    cat = {"program": "club", "version": 1, "rewards": [{"id": "mug", "name": "Mug", "kind": "physical", "points": 5}]}
    api.mutate("PUT", "/admin/programs/club/catalogue", ops, cat, other={**cat, "version": 2})
    bad_cat = {**cat, "version": 2, "rewards": [{"id": "mug", "name": "Mug", "kind": "donation", "points": 5}]}
    problem(api.call("PUT", "/admin/programs/club/catalogue", ops, bad_cat), 422, "invalid_config")
    assert api.ok("GET", "/admin/programs/club/catalogue", ops)["version"] == 1
    assert len(api.ok("GET", "/admin/programs/club/catalogue/versions", ops)["versions"]) == 1
    assert api.ok("GET", "/programs/club/rewards", ops)["rewards"][0]["id"] == "mug"
    # Agreement between two live programs: published, a bad one refused, read back
    publish(api, "partner")
    agreement = {"id": "club-partner", "version": 1, "from_program": "club", "to_program": "partner", "rate": "2"}
    api.mutate("PUT", "/admin/agreements/club-partner", ops, agreement, other={**agreement, "rate": "3"})
    problem(
        api.call("PUT", "/admin/agreements/club-partner", ops, {**agreement, "version": 2, "rate": "-1"}),
        422,
        "invalid_config",
    )
    problem(
        api.call("PUT", "/admin/agreements/x", ops, {**agreement, "id": "x", "to_program": "nowhere"}),
        404,
        "unknown_program",
    )
    assert api.ok("GET", "/admin/agreements/club-partner", ops)["config"]["rate"] == "2"
    assert [v["version"] for v in api.ok("GET", "/admin/agreements/club-partner/versions", ops)["versions"]] == [1]
    # Nobody but an admin publishes or reads config
    channel = api.key(PrincipalKind.CHANNEL, "shop", ("club",))
    problem(api.call("PUT", "/admin/programs/club", channel, {**v2, "version": 9}), 403, "forbidden")
    problem(api.call("GET", "/admin/programs/club/versions", channel), 403, "forbidden")


def test_dry_run_shows_what_a_draft_would_earn_and_writes_nothing(api: HttpApi) -> None:
    publish(api, "dry")
    order = {
        "program": "dry",
        "channel": "online",
        "source": "shop",
        "external_id": "o-1",
        "identity": {"kind": "member", "value": "ann"},
        "occurred_at": datetime.now(UTC).isoformat(),
        "currency": "USD",
        "eligible_amount": "12.50",
    }
    draft = {"program": "dry", "version": 2, "name": "Draft", "base_rate": "2"}
    ops = admin(api)
    api.sandbox.wait_for_idle(timeout=60)
    before = {(i["PK"], i["SK"]) for i in api.services.table.scan()}
    run = api.mutate(
        "POST",
        "/admin/programs/dry/dry-run",
        ops,
        {"config": draft, "order": order},
        other={"config": {**draft, "base_rate": "3"}, "order": order},
        status=200,
    )
    assert (run["points"], run["draft_version"], run["live_version"]) == (25, 2, 1)
    assert run["steps"] and run["explanation"]
    problem(
        api.call("POST", "/admin/programs/dry/dry-run", ops, {"config": {**draft, "currency": "x"}, "order": order}),
        422,
        "invalid_config",
    )
    # Only the Idempotency-Key's stored reply was written: no entry, no config version
    api.sandbox.wait_for_idle(timeout=60)
    written = {(i["PK"], i["SK"]) for i in api.services.table.scan()} - before
    assert [pk.split("#")[0] for pk, _ in written] == ["IDEM"]
    assert api.ok("GET", "/admin/programs/dry", ops)["version"] == 1


def test_minted_keys_work_once_shown_and_are_not_replayed(api: HttpApi) -> None:
    publish(api, "keys")
    body = {"kind": "member", "id": "kim", "programs": ["keys"]}
    headers = {"Idempotency-Key": "mint-kim"}
    minted = api.call("POST", "/admin/keys", admin(api), body, headers=headers)
    assert minted.status_code == 201, minted.text
    key = minted.json()["key"]
    problem(api.call("GET", "/programs/keys/members/kim/balance", key), 404, "unknown_member")
    problem(api.call("GET", "/programs/keys/members/other/balance", key), 403, "forbidden")
    # The retry under the same key says it was done, without the secret; the table never held it
    problem(api.call("POST", "/admin/keys", admin(api), body, headers=headers), 409, "secret_not_replayed")
    problem(
        api.call("POST", "/admin/keys", admin(api), {**body, "id": "x"}, headers=headers), 409, "idempotency_conflict"
    )
    assert not any(key in str(item) for item in api.services.table.scan())
    assert api.call("GET", "/programs/keys/members/kim/balance", "pb_not-a-key").status_code == 401


def test_points_draw_freezes_signs_then_reveals_winners_anyone_can_verify(api: HttpApi) -> None:
    publish(api, "lucky")
    fund(api, "lucky")
    ops = admin(api)
    # Wide enough for a loaded machine (the draw function's first call is a cold start): buying the
    # tickets and the early reveal below must all happen before it closes.
    closes = datetime.now(UTC) + timedelta(seconds=20)
    spec = {
        "id": "car",
        "prize": "A car",
        "ticket_points": 10,
        "max_tickets_per_member": 5,
        "winners": 2,
        "closes_at": closes.isoformat(),
    }
    created = api.mutate("POST", "/admin/programs/lucky/draws", ops, spec, other={**spec, "winners": 1})
    assert created["signature"] == created["randomness"] == created["entrants_root"] == ""
    problem(api.call("POST", "/admin/programs/lucky/draws/car/reveal", ops), 422, "draw_closed")
    # Members buy tickets with points while it is open; the per-member cap holds
    for member, bought in (("ann", 3), ("bob", 1), ("cy", 5)):
        key = api.key(PrincipalKind.MEMBER, member, ("lucky",))
        body = {"tickets": bought, "reference": f"{member}-1"}
        path = f"/programs/lucky/members/{member}/draws/car/entries"
        entry = api.mutate("POST", path, key, body, other={**body, "tickets": bought + 1})
        assert entry["available_change"] == -10 * bought
    cy = api.key(PrincipalKind.MEMBER, "cy", ("lucky",))
    problem(
        api.call("POST", "/programs/lucky/members/cy/draws/car/entries", cy, {"tickets": 1, "reference": "cy-2"}),
        422,
        "limit_reached",
    )
    # When it has closed and is revealed
    time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 0.5)
    problem(
        api.call("POST", "/programs/lucky/members/cy/draws/car/entries", cy, {"tickets": 1, "reference": "cy-3"}),
        422,
        "draw_closed",
    )
    revealed = api.mutate("POST", "/admin/programs/lucky/draws/car/reveal", ops)
    public = api.ok("GET", "/programs/lucky/draws/car", cy)
    # Then anyone can check the signature over the frozen entrants with the draw key's public half, and
    # redo the draw from the tickets the ledger's entries show
    assert public == revealed
    sb = api.sandbox
    public_key = bytes(sb.client("kms").get_public_key(KeyId=sb.resource("DrawSigningKey"))["PublicKey"])
    assert verify_draw(public, public_key) == []
    tickets: dict[str, int] = {}
    for member in MEMBERS:
        key = api.key(PrincipalKind.MEMBER, member, ("lucky",))
        statement = api.ok("GET", f"/programs/lucky/members/{member}/statement", key)["entries"]
        tickets[member] = sum(int(e["details"]["tickets"]) for e in statement if e["details"].get("draw") == "car")
    assert tickets == public["tickets"] == {"ann": 3, "bob": 1, "cy": 5}
    assert public["entrants_root"] == draw.entrants_root(tickets)
    assert public["winner_ids"] == draw.pick_winners(public["randomness"], tickets, 2)
    assert len(set(public["winner_ids"])) == 2


def test_announcing_a_programs_end(api: HttpApi) -> None:
    publish(api, "fade")
    ops = admin(api)
    problem(
        api.call("POST", "/admin/programs/fade/sunset", ops, {"notice_days": 7, "redemption_days": 30}),
        422,
        "invalid_sunset",
    )
    body = {"notice_days": 30, "redemption_days": 90}
    announced = api.mutate("POST", "/admin/programs/fade/sunset", ops, body, other={**body, "notice_days": 31})
    earning_ends = datetime.fromisoformat(announced["earning_ends_at"])
    assert earning_ends - datetime.fromisoformat(announced["announced_at"]) == timedelta(days=30)
    assert datetime.fromisoformat(announced["ends_at"]) - earning_ends == timedelta(days=90)
    live = api.ok("GET", "/admin/programs/fade", ops)
    assert (live["version"], live["config"]["sunset"] is not None) == (2, True)
    problem(api.call("POST", "/admin/programs/fade/sunset", ops, body), 422, "invalid_sunset")
    problem(
        api.call("PUT", "/admin/programs/fade", ops, {**live["config"], "version": 3, "sunset": None}),
        422,
        "invalid_config",
    )
    # During the notice period members still earn and spend
    member = api.key(PrincipalKind.MEMBER, "ann", ("fade",))
    acme = api.key(PrincipalKind.PARTNER, "acme", ("fade",))
    credit = {"transfer_id": "t-1", "points": 40, "occurred_at": datetime.now(UTC).isoformat()}
    api.link_partner(acme, "fade", "ann", "ACME-ANN")
    api.ok("POST", "/partners/acme/programs/fade/members/ann/transfers-in", acme, credit, status=201)
    api.ok("POST", "/programs/fade/members/ann/redemptions", member, {"points": 10, "reference": "r"}, status=201)


def test_after_the_end_spending_and_earning_are_refused_and_nothing_is_written(api: HttpApi) -> None:
    # Given programs whose end was announced months ago: "late" has stopped earning, "gone" has ended
    now = datetime.now(UTC)
    repo = api.services.programs
    for program, ends in (("late", now + timedelta(days=20)), ("gone", now - timedelta(days=1))):
        publish(api, program)
        fund(api, program)
        sunset = Sunset(announced_at=now - timedelta(days=90), earning_ends_at=now - timedelta(days=10), ends_at=ends)
        repo.publish(ProgramConfig(program=program, version=2, name=program.title(), sunset=sunset))
    acme = api.key(PrincipalKind.PARTNER, "acme", ("late", "gone"))
    ann = api.key(PrincipalKind.MEMBER, "ann", ("late", "gone"))
    credit = {"transfer_id": "t-1", "points": 40, "occurred_at": now.isoformat()}
    api.link_partner(acme, "late", "ann", "ACME-ANN")
    before = api.table_items()
    # When partners credit and members spend
    late_credit = api.call("POST", "/partners/acme/programs/late/members/ann/transfers-in", acme, credit)
    gone_credit = api.call("POST", "/partners/acme/programs/gone/members/ann/transfers-in", acme, credit)
    spends = [
        api.call("POST", "/programs/gone/members/ann/redemptions", ann, {"points": 10, "reference": "r"}),
        api.call("POST", "/programs/gone/members/ann/holds", ann, {"points": 10, "reference": "h"}),
        api.call("POST", "/programs/gone/members/ann/gifts", ann, {"to_member": "bob", "points": 10, "reference": "g"}),
        api.call(
            "POST",
            "/programs/gone/members/ann/transfers-out",
            ann,
            {"partner": "acme", "transfer_id": "o", "points": 10},
        ),
    ]
    # Then credits are refused in both, spending in the ended one, each a typed problem; nothing written
    problem(late_credit, 422, "earning_closed")
    problem(gone_credit, 422, "earning_closed")
    for reply in spends:
        assert "ended_at" in problem(reply, 422, "redemption_closed")
    assert api.table_items() == before
    # While the program that only stopped earning still lets its members spend
    spent = api.ok("POST", "/programs/late/members/ann/redemptions", ann, {"points": 10, "reference": "r"}, status=201)
    assert spent["entry"]["available_change"] == -10
