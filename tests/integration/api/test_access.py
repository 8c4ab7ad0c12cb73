"""Who may call, in process: keys and their lifecycle, references that belong to their caller,
Idempotency-Key claims, and bodies the API cannot read refused as problems."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import TYPE_CHECKING

from functions.api.app import handler
from shared.access.keys import AdminRole, Principal, PrincipalKind, mint_key
from shared.ledger.commands import Earn
from shared.ledger.models import fingerprint
from tests.conftest import T0
from tests.integration.api.conftest import FakeContext

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from tests.integration.api.conftest import Client
    from tests.integration.conftest import Clock

M1 = "/programs/demo/members/m1"


def _entries(store: DynamoLedgerStore) -> int:
    return len(store.ledger_records()[0])


def test_keys_are_minted_listed_rotated_revoked_and_expire(
    api: Client, funded: Ledger, services: Services, clock: Clock
) -> None:
    operator = api.key_for(PrincipalKind.ADMIN, "ops", ())
    # When an operator mints a till's key for 30 days
    body = {"kind": "channel", "id": "till-7", "programs": ["demo"], "expires_in_days": 30}
    minted = api.call("POST", "/admin/keys", key=operator, body=body)
    assert minted.status == 201, minted.body
    till, info = minted.body["key"], minted.body["info"]
    assert info["status"] == "active" and info["created_by"] == "admin:ops" and info["last_used_at"] is None
    # Then it works, and the listing shows when it was last used (never the key itself)
    assert api.call("GET", f"{M1}/balance", key=till).status == 200
    listed = api.call("GET", "/admin/keys", key=operator).body["keys"]
    mine = next(k for k in listed if k["key_id"] == info["key_id"])
    assert mine["last_used_at"] is not None and till not in str(listed)
    stored = services.access_items.get_key(info["key_id"])
    assert stored is not None and till not in stored.secret_hash
    # When it is rotated with an hour's overlap, both work for that hour, then only the new one
    rotated = api.call("POST", f"/admin/keys/{info['key_id']}/rotate", key=operator, body={"overlap_seconds": 3600})
    assert rotated.status == 201 and rotated.body["info"]["replaces"] == info["key_id"]
    new = rotated.body["key"]
    assert api.call("GET", f"{M1}/balance", key=till).status == 200
    clock.now += timedelta(hours=1, seconds=1)
    expired = api.call("GET", f"{M1}/balance", key=till)
    assert (expired.status, expired.code) == (401, "key_expired")
    assert api.call("GET", f"{M1}/balance", key=new).status == 200
    # When the new key is revoked, it is refused from then on, with its own code
    revoke = api.call(
        "POST", f"/admin/keys/{rotated.body['info']['key_id']}/revoke", key=operator, body={"reason": "lost"}
    )
    assert revoke.body["status"] == "revoked" and revoke.body["revoke_reason"] == "lost"
    revoked = api.call("GET", f"{M1}/balance", key=new)
    assert (revoked.status, revoked.code) == (401, "key_revoked")
    # And a malformed, unknown or missing key is refused, each with its code
    assert api.call("GET", f"{M1}/balance", key="not-a-key").code == "key_invalid"
    assert api.call("GET", f"{M1}/balance", key=new[:-4] + "AAAA").code == "key_invalid"
    assert api.call("GET", f"{M1}/balance").code == "key_missing"
    assert api.call("POST", "/admin/keys/0123456789abcdef/revoke", key=operator, body={"reason": "x"}).code == (
        "unknown_key"
    )


def test_only_operators_mint_keys_and_auditors_only_list_them(api: Client, funded: Ledger) -> None:
    auditor = api.key_for(PrincipalKind.ADMIN, "audit", (), role=AdminRole.AUDITOR)
    support = api.key_for(PrincipalKind.ADMIN, "help", (), role=AdminRole.SUPPORT)
    body = {"kind": "admin", "id": "root"}
    assert api.call("POST", "/admin/keys", key=auditor, body=body).code == "forbidden"
    assert api.call("POST", "/admin/keys", key=support, body=body).code == "forbidden"
    assert api.call("GET", "/admin/keys", key=auditor).status == 200
    assert api.call("GET", "/admin/keys", key=support).code == "forbidden"
    operator = api.key_for(PrincipalKind.ADMIN, "ops", ())
    nonsense = {"kind": "member", "id": "m1", "role": "operator"}
    assert api.call("POST", "/admin/keys", key=operator, body=nonsense).code == "invalid_input"


def test_a_reference_belongs_to_its_caller_and_member(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    funded.earn(
        Earn(program="demo", member="m2", points=500, source="shop", external_id="o2", reason="o2", event_time=T0)
    )
    m1, m2 = api.key_for(PrincipalKind.MEMBER, "m1"), api.key_for(PrincipalKind.MEMBER, "m2")
    shop_a, shop_b = api.key_for(PrincipalKind.CHANNEL, "shop-a"), api.key_for(PrincipalKind.CHANNEL, "shop-b")
    order = {"points": 10, "reference": "order-1001"}
    # Two members, two shops: one order number, four separate redemptions, no 409 and nothing revealed
    replies = [
        api.call("POST", f"{M1}/redemptions", key=m1, body=order),
        api.call("POST", "/programs/demo/members/m2/redemptions", key=m2, body=order),
        api.call("POST", f"{M1}/redemptions", key=shop_a, body=order),
        api.call("POST", f"{M1}/redemptions", key=shop_b, body=order),
    ]
    assert [r.status for r in replies] == [201] * 4, [r.body for r in replies]
    assert len({r.body["entry"]["entry_id"] for r in replies}) == 4
    # The same caller's retry replays its own entry; a different request under it is its own conflict
    again = api.call("POST", f"{M1}/redemptions", key=shop_a, body=order)
    assert again.body["entry"]["entry_id"] == replies[2].body["entry"]["entry_id"]
    clash = api.call("POST", f"{M1}/redemptions", key=shop_a, body={**order, "points": 11})
    assert (clash.status, clash.code) == (409, "idempotency_conflict")
    # A member cannot squat the till's hold reference: the till's hold is found by the till alone
    squat = api.call("POST", f"{M1}/holds", key=m1, body={"points": 5, "reference": "basket-9"})
    till_hold = api.call("POST", f"{M1}/holds", key=shop_a, body={"points": 20, "reference": "basket-9"})
    assert (squat.status, till_hold.status) == (201, 201)
    assert api.call("POST", f"{M1}/holds/basket-9/capture", key=shop_a, body={}).body["details"]["captured"] == "20"
    balance = api.call("GET", f"{M1}/balance", key=m1).body
    assert (balance["available"], balance["held"]) == (1000 - 30 - 20 - 5, 5)


def test_an_idempotency_key_is_claimed_before_the_request_runs(
    api: Client, funded: Ledger, services: Services, store: DynamoLedgerStore, clock: Clock
) -> None:
    member = mint_key(services.access_items, Principal(kind=PrincipalKind.MEMBER, id="m1", programs=("demo",)))
    path = f"{M1}/redemptions"
    header = {"Idempotency-Key": "k-1"}
    # Given a request under k-1 that is still running (its claim taken, no reply yet)
    text = '{"points": 10, "reference": "r-1"}'
    running = fingerprint({"method": "POST", "path": path, "body": text})
    assert services.access_items.claim("member:m1", "k-1", running, "token-1", clock.now)
    before = _entries(store)
    # When the same request and another one arrive under k-1
    same = api.call("POST", path, key=member.key, raw=text, headers=header)
    other = api.call("POST", path, key=member.key, body={"points": 99, "reference": "r-2"}, headers=header)
    # Then neither runs: the same one is told to retry, the other is a conflict
    assert (same.status, same.code) == (409, "idempotency_in_progress")
    assert (other.status, other.code) == (409, "idempotency_conflict")
    assert _entries(store) == before
    # And a claim whose request died (older than two minutes) is taken over by the retry
    clock.now += timedelta(minutes=3)
    taken = api.call("POST", path, key=member.key, raw=text, headers=header)
    assert taken.status == 201, taken.body
    replay = api.call("POST", path, key=member.key, raw=text, headers=header)
    assert (replay.status, replay.headers["idempotent-replayed"]) == (201, "true")
    # And a refused request gives its key back: a retry is evaluated afresh
    too_much = {"points": 10_000, "reference": "r-3"}
    assert api.call("POST", path, key=member.key, body=too_much, headers={"Idempotency-Key": "k-2"}).code == (
        "insufficient_points"
    )
    assert services.access_items.get_claim("member:m1", "k-2") is None
    assert _entries(store) == before + 1


def test_bodies_the_api_cannot_read_are_problems(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    member = api.key_for(PrincipalKind.MEMBER, "m1")
    till = api.key_for(PrincipalKind.CHANNEL, "till-1")
    redeem = f"{M1}/redemptions"
    before = _entries(store)
    nested = "[" * 5000 + "]" * 5000
    cases = {
        "multipart without boundary": (redeem, "--x\r\n", {"content-type": "multipart/form-data"}, member),
        "plain text": (redeem, '{"points": 1, "reference": "r"}', {"content-type": "text/plain"}, member),
        "deeply nested JSON": (redeem, nested, {}, member),
        "a number too long": (redeem, '{"points": 1' + "0" * 5000 + ', "reference": "r"}', {}, member),
        "an over-long reference on capture": (f"{M1}/holds/{'r' * 200}/capture", "{}", {}, till),
        "a year-9999 time with an offset": (
            "/partners/acme/programs/demo/members/m1/transfers-in",
            '{"transfer_id": "t", "points": 1, "occurred_at": "9999-12-31T23:59:59-05:00"}',
            {},
            api.key_for(PrincipalKind.PARTNER, "acme"),
        ),
    }
    seen = {}
    for name, (path, raw, headers, key) in cases.items():
        reply = api.call("POST", path, key=key, raw=raw, headers=headers)
        seen[name] = (reply.status, reply.code)
    assert seen == {
        "multipart without boundary": (415, "unsupported_media_type"),
        "plain text": (415, "unsupported_media_type"),
        "deeply nested JSON": (400, "malformed_json"),
        "a number too long": (400, "malformed_json"),
        "an over-long reference on capture": (400, "invalid_input"),
        # The schema refuses the time before anything else looks at the request
        "a year-9999 time with an offset": (400, "invalid_input"),
    }
    # A body that is not UTF-8 (API Gateway passes it base64-encoded)
    event_body = base64.b64encode(b'{"points": 1, "reference": "\xff\xfe"}').decode()
    event = {"body": event_body, "isBase64Encoded": True, "headers": {}, "httpMethod": "POST"}
    raw_reply = handler(event, FakeContext())  # type: ignore[arg-type]
    assert raw_reply["statusCode"] == 400 and '"malformed_json"' in raw_reply["body"]
    assert _entries(store) == before
