from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from shared.access.keys import PrincipalKind
from shared.rewards.catalogue import Catalogue, Reward, RewardKind, publish_catalogue

if TYPE_CHECKING:
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from shared.program.store import Documents
    from tests.integration.api.conftest import Client

REDEEM = "/programs/demo/members/m1/redemptions"


def _catalogue(documents: Documents) -> None:
    publish_catalogue(
        documents,
        Catalogue(
            program="demo",
            version=1,
            rewards=(
                Reward(id="mug", name="Mug", kind=RewardKind.PHYSICAL, points=100, stock=1),
                Reward(
                    id="film",
                    name="Film ticket",
                    kind=RewardKind.DIGITAL,
                    points=300,
                    cash_price=Decimal("9.99"),
                    per_member_limit=2,
                ),
                Reward(id="trees", name="Plant trees", kind=RewardKind.DONATION, points=10, cause="Forests"),
            ),
        ),
    )


def _count_entries(store: DynamoLedgerStore) -> int:
    return len(store.ledger_records()[0])


def test_redeem_points_then_insufficient(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    reply = api.call("POST", REDEEM, key=key, body={"points": 400, "reference": "r1"})
    assert reply.status == 201, reply.body
    assert reply.body["entry"]["available_change"] == -400
    before = _count_entries(store)
    # When the member asks for more than is left
    refused = api.call("POST", REDEEM, key=key, body={"points": 601, "reference": "r2"})
    # Then a typed problem and nothing written
    assert refused.status == 422
    assert refused.code == "insufficient_points"
    assert _count_entries(store) == before


def test_reward_stock_limits_and_cash_split(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    _catalogue(api.services.documents)
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    assert api.call("POST", REDEEM, key=key, body={"reward_id": "mug", "reference": "a"}).status == 201
    before = _count_entries(store)
    out = api.call("POST", REDEEM, key=key, body={"reward_id": "mug", "reference": "b"})
    assert (out.status, out.code) == (409, "out_of_stock")
    assert _count_entries(store) == before
    # Points + cash: 150 of 300 points leaves half of 9.99, rounded up to the cent
    split = api.call("POST", REDEEM, key=key, body={"reward_id": "film", "points": 150, "reference": "c"})
    assert split.status == 201, split.body
    assert split.body["split"] == {"points": 150, "cash": "5.00", "currency": "USD"}
    assert api.call("POST", REDEEM, key=key, body={"reward_id": "film", "points": 150, "reference": "d"}).status == 201
    over = api.call("POST", REDEEM, key=key, body={"reward_id": "film", "points": 150, "reference": "e"})
    assert (over.status, over.code) == (422, "limit_reached")


def test_donation(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    _catalogue(api.services.documents)
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    body = {"reward_id": "trees", "points": 50, "reference": "d1"}
    reply = api.call("POST", "/programs/demo/members/m1/donations", key=key, body=body)
    assert reply.status == 201, reply.body
    assert reply.body["entry"]["details"]["cause"] == "Forests"


def test_idempotent_replay_and_conflict(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    headers = {"Idempotency-Key": "k-1"}
    first = api.call("POST", REDEEM, key=key, body={"points": 10, "reference": "i1"}, headers=headers)
    again = api.call("POST", REDEEM, key=key, body={"points": 10, "reference": "i1"}, headers=headers)
    assert first.status == again.status == 201
    assert first.body == again.body
    assert again.headers.get("idempotent-replayed") == "true"
    before = _count_entries(store)
    clash = api.call("POST", REDEEM, key=key, body={"points": 11, "reference": "i2"}, headers=headers)
    assert (clash.status, clash.code) == (409, "idempotency_conflict")
    assert _count_entries(store) == before


def test_bad_bodies_are_typed_problems(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    before = _count_entries(store)
    malformed = api.call("POST", REDEEM, key=key, raw="{not json")
    assert (malformed.status, malformed.code) == (400, "malformed_json")
    oversized = api.call("POST", REDEEM, key=key, raw='{"reference": "' + "x" * 70_000 + '"}')
    assert (oversized.status, oversized.code) == (413, "payload_too_large")
    wrong = api.call("POST", REDEEM, key=key, body={"points": -5, "reference": "x"})
    assert (wrong.status, wrong.code) == (400, "invalid_input")
    floaty = api.call("POST", REDEEM, key=key, body={"points": 1.5, "reference": "x"})
    assert floaty.status == 400
    assert _count_entries(store) == before


def test_hold_capture_release(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    member = api.key_for(PrincipalKind.MEMBER, "m1")
    till = api.key_for(PrincipalKind.CHANNEL, "till-1")
    base = "/programs/demo/members/m1/holds"
    assert api.call("POST", base, key=till, body={"points": 300, "reference": "h1"}).status == 201
    # The till's hold is the till's: the member finds no hold of its own by that reference
    voided = api.call("POST", f"{base}/h1/release", key=member)
    assert (voided.status, voided.code) == (404, "unknown_entry")
    too_much = api.call("POST", f"{base}/h1/capture", key=till, body={"points": 301})
    assert (too_much.status, too_much.code) == (422, "capture_exceeds_hold")
    part = api.call("POST", f"{base}/h1/capture", key=till, body={"points": 200})
    assert part.status == 201, part.body
    balance = api.call("GET", "/programs/demo/members/m1/balance", key=member).body
    assert (balance["available"], balance["held"]) == (800, 0)
    assert api.call("POST", base, key=member, body={"points": 50, "reference": "h2"}).status == 201
    assert api.call("POST", f"{base}/h2/release", key=member).status == 201
    again = api.call("POST", f"{base}/h2/release", key=member)
    assert again.status in (201, 409)
    assert api.call("GET", "/programs/demo/members/m1/balance", key=member).body["available"] == 800
