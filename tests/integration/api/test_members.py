from __future__ import annotations

from typing import TYPE_CHECKING

from shared.access import PrincipalKind
from shared.ledger import Earn
from tests.conftest import T0

if TYPE_CHECKING:
    from shared.ledger import Ledger
    from tests.integration.api.conftest import Client


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
    assert statement.body["entries"][0]["explanation"] == "You earned 1000 points: order o1."
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


def test_openapi_document_served(api: Client) -> None:
    reply = api.call("GET", "/docs", query={"format": "json"})
    assert reply.status == 200
    assert "/programs/{program}/members/{member}/balance" in reply.body["paths"]


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
