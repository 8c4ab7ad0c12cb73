from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from shared.access.keys import PrincipalKind
from shared.ledger.commands import Earn, Spend
from shared.program.config import ExpiryPolicy
from tests.conftest import T0

if TYPE_CHECKING:
    from shared.ledger.ledger import Ledger
    from shared.program.store import ProgramRepository
    from tests.integration.api.conftest import Client
    from tests.integration.conftest import Clock


def test_health_needs_no_key(api: Client) -> None:
    reply = api.call("GET", "/health")
    assert reply.status == 200
    assert reply.body == {"status": "ok"}


def test_balance_and_statement(api: Client, funded: Ledger, admin_key: str) -> None:
    # Given a member with one earn
    member_key = api.key_for(PrincipalKind.MEMBER, "m1")
    # When the member reads its balance
    reply = api.call("GET", "/programs/demo/members/m1/balance", key=member_key)
    # Then it sees the buckets and its tier
    assert reply.status == 200, reply.body
    assert reply.body["available"] == 1000
    assert reply.body["pending"] == 0
    assert reply.body["tier"] == "member"
    statement = api.call("GET", "/programs/demo/members/m1/statement", key=member_key, query={"limit": "1"})
    assert statement.status == 200, statement.body
    assert statement.body["entries"][0]["explanation"] == "Points added: order o1"
    assert statement.body["next"] is None


def test_member_cannot_read_another_member(api: Client, funded: Ledger) -> None:
    other = api.key_for(PrincipalKind.MEMBER, "m2")
    reply = api.call("GET", "/programs/demo/members/m1/balance", key=other)
    assert reply.status == 403
    assert reply.code == "forbidden"
    assert reply.headers["content-type"] == "application/problem+json"


def test_unknown_key_is_401(api: Client) -> None:
    assert api.call("GET", "/programs/demo/members/m1/balance", key="pb_nope").status == 401


def test_unknown_member_is_a_problem(api: Client, admin_key: str) -> None:
    reply = api.call("GET", "/programs/demo/members/ghost/balance", key=admin_key)
    assert reply.status == 404
    assert reply.body["code"] == "unknown_member"
    assert set(reply.body) >= {"type", "title", "status", "detail", "code"}


def test_the_documentation_is_not_the_api_functions_to_serve(api: Client, admin_key: str) -> None:
    # API Gateway answers /docs and /openapi.json from the docs bucket (tests/e2e/test_api_docs.py)
    for path in ("/docs", "/openapi.json"):
        reply = api.call("GET", path, key=admin_key)
        assert (reply.status, reply.body["code"]) == (404, "no_such_route")


def test_statement_pages(api: Client, funded: Ledger) -> None:
    # Given a member with three earns (tier progress: tests/integration/api/test_tier_view.py)
    for n in (2, 3):
        earn = Earn(program="demo", member="m1", points=100, source="s", external_id=f"o{n}", reason="o", event_time=T0)
        funded.earn(earn, at=T0)
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    path = "/programs/demo/members/m1/statement"
    first = api.call("GET", path, key=key, query={"limit": "2"}).body
    assert [e["seq"] for e in first["entries"]] == [1, 2]
    rest = api.call("GET", path, key=key, query={"limit": "2", "after": str(first["next"])}).body
    assert [e["seq"] for e in rest["entries"]] == [3]
    assert rest["next"] is None
    bad = api.call("GET", path, key=key, query={"limit": "1000"})
    assert (bad.status, bad.code) == (400, "invalid_input")


def test_expiring_soon_shows_the_effective_local_date(
    api: Client, ledger: Ledger, programs: ProgramRepository, clock: Clock
) -> None:
    # Given a Los Angeles program whose 3-month expiry is extended by activity, and a member who
    # earned 100 points on Mar 20 (own date: end of Jun 20) and redeemed 10 at 22:00 on Jun 9
    live = programs.get("demo")
    programs.publish(
        live.model_copy(
            update={
                "version": live.version + 1,
                "timezone": "America/Los_Angeles",
                "expiry": ExpiryPolicy(months=3, extend_on_activity=True),
            }
        )
    )
    la = ZoneInfo("America/Los_Angeles")
    earned = datetime(2026, 3, 20, 11, 0, tzinfo=la)
    ledger.earn(
        Earn(
            program="demo", member="m1", points=100, source="shop", external_id="o1", reason="order", event_time=earned
        ),
        at=earned,
    )
    redeemed = datetime(2026, 6, 9, 22, 0, tzinfo=la)
    ledger.spend(Spend(program="demo", member="m1", points=10, source="web", external_id="r1", reason="r"), at=redeemed)
    # When the member reads its balance on Jun 25, after the points' own date
    clock.now = datetime(2026, 6, 25, tzinfo=UTC)
    reply = api.call("GET", "/programs/demo/members/m1/balance", key=api.key_for(PrincipalKind.MEMBER, "m1"))
    # Then they are spendable and expire on Sep 9, Los Angeles time (06:59:59 UTC on Sep 10)
    assert reply.status == 200, reply.body
    assert reply.body["spendable"] == 90
    assert reply.body["expiring"] == [{"date": "2026-09-09", "points": 90}]
