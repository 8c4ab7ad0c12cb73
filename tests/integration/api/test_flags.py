"""Operators list open flags and decide them over the API: admin only, problem+json errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.access.keys import PrincipalKind
from shared.earning.core import provisional_member
from shared.projections.watch import Finding
from tests.integration.ingest_support import EMAIL, NOW, account, audited, program, purchase, wire

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.store import DynamoLedgerStore
    from shared.program.store import ProgramRepository
    from tests.integration.api.conftest import Client

MEMBER = provisional_member(EMAIL)
FLAGS = "/admin/programs/demo/flags"


def held_earn(services: Services) -> None:
    ingest = wire(services, program())
    services.watch.flag("demo", Finding(MEMBER, "card_velocity", "21 earns in an hour"), NOW, "c1")
    ingest.handle(purchase("3001", "25"))
    assert account(services.ledger_store, MEMBER) == (0, 25)


def test_an_operator_lists_open_flags_and_releases_one(
    api: Client, admin_key: str, store: DynamoLedgerStore, programs: ProgramRepository
) -> None:
    # Given a flagged member whose earn is held
    held_earn(api.services)

    # When an operator lists the open flags
    listed = api.call("GET", FLAGS, key=admin_key)

    # Then the member is there with the reason
    assert listed.status == 200, listed.body
    assert listed.body["flags"] == [
        {"member": MEMBER, "check": "card_velocity", "reason": "21 earns in an hour", "since": "2026-06-10T16:00:00Z"}
    ]

    # When they release it
    path = f"{FLAGS}/{MEMBER}/decision"
    reply = api.call("POST", path, key=admin_key, body={"decision": "release", "note": "regular customer"})

    # Then the held points are available, the flag is gone from the list, the books balance
    assert reply.status == 200, reply.body
    assert reply.body == {
        "member": MEMBER,
        "decision": "release",
        "operator": "ops",
        "released": ["shopify:acme.myshopify.com:3001"],
        "still_pending": [],
        "voided": [],
    }
    assert account(store, MEMBER) == (25, 0)
    assert api.call("GET", FLAGS, key=admin_key).body == {"flags": []}
    audited(store)

    # And the same decision again is a no-op; the opposite one is refused
    again = api.call("POST", path, key=admin_key, body={"decision": "release", "note": "regular customer"})
    assert again.status == 200 and again.body["released"] == []
    other = api.call("POST", path, key=admin_key, body={"decision": "void", "note": "second thoughts"})
    assert (other.status, other.code) == (409, "flag_already_decided")
    assert other.headers["content-type"] == "application/problem+json"


def test_voiding_over_the_api(
    api: Client, admin_key: str, store: DynamoLedgerStore, programs: ProgramRepository
) -> None:
    held_earn(api.services)
    reply = api.call(
        "POST", f"{FLAGS}/{MEMBER}/decision", key=admin_key, body={"decision": "void", "note": "stolen card"}
    )
    assert reply.status == 200, reply.body
    assert reply.body["voided"] == ["shopify:acme.myshopify.com:3001"]
    assert account(store, MEMBER) == (0, 0)
    audited(store)


def test_flag_endpoints_refuse_members_bad_input_and_unknown_flags(
    api: Client, admin_key: str, store: DynamoLedgerStore, programs: ProgramRepository
) -> None:
    held_earn(api.services)
    member_key = api.key_for(PrincipalKind.MEMBER, MEMBER)
    path = f"{FLAGS}/{MEMBER}/decision"

    assert api.call("GET", FLAGS, key=member_key).code == "forbidden"
    refused = api.call("POST", path, key=member_key, body={"decision": "release", "note": "me"})
    assert (refused.status, refused.code) == (403, "forbidden")
    unknown = api.call("POST", f"{FLAGS}/nobody/decision", key=admin_key, body={"decision": "void", "note": "?"})
    assert (unknown.status, unknown.code) == (404, "flag_not_found")
    bad = api.call("POST", path, key=admin_key, body={"decision": "maybe", "note": "?"})
    assert (bad.status, bad.code) == (400, "invalid_input")
    empty_note = api.call("POST", path, key=admin_key, body={"decision": "release", "note": "  "})
    assert (empty_note.status, empty_note.code) == (400, "invalid_input")
    no_program = api.call("GET", "/admin/programs/nosuch/flags", key=admin_key)
    assert (no_program.status, no_program.code) == (404, "unknown_program")
    assert account(store, MEMBER) == (0, 25)  # nothing decided
