from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from functions.holds.app import handler
from shared.access.keys import PrincipalKind
from shared.ledger.audit import audit
from shared.ledger.commands import Earn, Transfer
from shared.rewards.catalogue import Catalogue, GiftPolicy, publish_catalogue
from tests.conftest import T0
from tests.integration.api.conftest import FakeContext

if TYPE_CHECKING:
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from tests.integration.api.conftest import Client


def test_gift_keeps_expiry_and_daily_limit(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    # Given gifts limited to 500 points a day
    publish_catalogue(api.services.documents, Catalogue(program="demo", version=1, gifts=GiftPolicy(daily_limit=500)))
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    path = "/programs/demo/members/m1/gifts"
    reply = api.call("POST", path, key=key, body={"to_member": "m2", "points": 300, "reference": "g1"})
    assert reply.status == 201, reply.body
    _, _, lots, _ = store.ledger_records()
    by_member = {lot.member: lot for lot in lots}
    assert by_member["m2"].expires_at == by_member["m1"].expires_at  # the lot moved with its date
    assert by_member["m2"].remaining == 300
    assert reply.body["received"]["explanation"].startswith("Gift received from m1")
    refused = api.call("POST", path, key=key, body={"to_member": "m3", "points": 201, "reference": "g2"})
    assert (refused.status, refused.code) == (422, "limit_reached")
    assert api.call("POST", path, key=key, body={"to_member": "m1", "points": 5, "reference": "g3"}).status == 400
    assert audit(*store.ledger_records()).ok


def test_admin_publish_rejects_bad_config(api: Client, admin_key: str, store: DynamoLedgerStore) -> None:
    bad = {"program": "demo", "version": 2, "name": "Demo", "tiers": [{"name": "gold", "rank": 1, "threshold": 5}]}
    reply = api.call("PUT", "/admin/programs/demo", key=admin_key, body=bad)
    assert (reply.status, reply.code) == (422, "invalid_config")
    assert "threshold 0" in reply.body["detail"]
    good = {"program": "demo", "version": 2, "name": "Demo v2"}
    assert api.call("PUT", "/admin/programs/demo", key=admin_key, body=good).status == 201
    stale = api.call("PUT", "/admin/programs/demo", key=admin_key, body={**good, "name": "older"})
    assert (stale.status, stale.code) == (422, "invalid_config")
    member = api.key_for(PrincipalKind.MEMBER, "m1")
    assert api.call("PUT", "/admin/programs/demo", key=member, body=good).status == 403


def test_admin_catalogue_agreement_and_dry_run(api: Client, admin_key: str) -> None:
    cat = {"program": "demo", "version": 1, "rewards": [{"id": "mug", "name": "Mug", "kind": "physical", "points": 5}]}
    assert api.call("PUT", "/admin/programs/demo/catalogue", key=admin_key, body=cat).status == 201
    assert api.call("GET", "/programs/demo/rewards", key=admin_key).body["version"] == 1
    bad_agreement = {"id": "x", "version": 1, "from_program": "demo", "to_program": "demo", "rate": "1"}
    reply = api.call("PUT", "/admin/agreements/x", key=admin_key, body=bad_agreement)
    assert (reply.status, reply.code) == (422, "invalid_config")
    order = {
        "program": "demo",
        "channel": "online",
        "source": "shop",
        "external_id": "o-9",
        "identity": {"kind": "member", "value": "m1"},
        "occurred_at": "2026-01-15T12:00:00Z",
        "currency": "USD",
        "eligible_amount": "12.50",
    }
    draft = {"program": "demo", "version": 9, "name": "Draft", "base_rate": "2"}
    run = api.call("POST", "/admin/programs/demo/dry-run", key=admin_key, body={"config": draft, "order": order})
    assert run.status == 200, run.body
    assert run.body["points"] == 25
    assert run.body["live_version"] == 1


def test_admin_mints_keys(api: Client, admin_key: str) -> None:
    reply = api.call("POST", "/admin/keys", key=admin_key, body={"kind": "member", "id": "m7", "programs": ["demo"]})
    assert reply.status == 201
    assert api.call("GET", "/programs/demo/members/m7/balance", key=reply.body["key"]).code == "unknown_member"


def test_held_gift_released_with_original_expiry(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    # Given gifts held for 3 days
    publish_catalogue(api.services.documents, Catalogue(program="demo", version=1, gifts=GiftPolicy(hold_days=3)))
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    body = {"to_member": "m2", "points": 80, "reference": "h"}
    reply = api.call("POST", "/programs/demo/members/m1/gifts", key=key, body=body)
    assert reply.status == 201, reply.body
    admin = api.key_for(PrincipalKind.ADMIN, "ops", ())
    held = api.call("GET", "/programs/demo/members/m2/balance", key=admin).body
    assert (held["available"], held["held"]) == (0, 80)
    # When the lapse job runs after the three days
    _, _, lots, holds = store.ledger_records()
    sender_expiry = next(lot.expires_at for lot in lots if lot.member == "m1")
    due = {"scheduled_time": (holds[0].lapses_at + timedelta(minutes=1)).isoformat(), "simulate": True}
    assert handler(due, FakeContext())["released"] == 1  # type: ignore[arg-type]
    # Then the points are spendable, with the sender's expiry date, and the ledger audits clean
    after = api.call("GET", "/programs/demo/members/m2/balance", key=admin).body
    assert (after["available"], after["held"]) == (80, 0)
    _, _, lots, _ = store.ledger_records()
    assert [lot.expires_at for lot in lots if lot.member == "m2"] == [sender_expiry]
    assert audit(*store.ledger_records()).ok


def test_points_for_a_merged_member_are_refused_naming_the_survivor(
    api: Client, funded: Ledger, store: DynamoLedgerStore
) -> None:
    # Given a provisional member pv-9 (5 points) merged into m2
    publish_catalogue(api.services.documents, Catalogue(program="demo", version=1, gifts=GiftPolicy(daily_limit=500)))
    funded.earn(
        Earn(program="demo", member="pv-9", points=5, source="shop", external_id="o9", reason="o", event_time=T0)
    )
    funded.transfer(Transfer(program="demo", member="pv-9", to_member="m2", external_id="merge:pv-9", reason="linked"))
    gift = {"to_member": "pv-9", "points": 10, "reference": "g1"}
    till = api.key_for(PrincipalKind.CHANNEL, "till-1")

    # When a member gifts to pv-9, and a till redeems for pv-9
    gifted = api.call("POST", "/programs/demo/members/m1/gifts", key=api.key_for(PrincipalKind.MEMBER, "m1"), body=gift)
    redeemed = api.call(
        "POST", "/programs/demo/members/pv-9/redemptions", key=till, body={"points": 5, "reference": "r-9"}
    )

    # Then both are refused with a problem that names the member to use instead, and nothing moved
    for reply in (gifted, redeemed):
        assert (reply.status, reply.code, reply.body["survivor"]) == (409, "account_closed", "m2"), reply.body
    balances = {a.member: a.available for a in store.ledger_records()[1]}
    assert balances == {"m1": 1000, "pv-9": 0, "m2": 5}
    assert audit(*store.ledger_records()).ok
    # And the emptied account's balance says where its points went
    closed = api.call("GET", "/programs/demo/members/pv-9/balance", key=till).body
    assert (closed["available"], closed["merged_into"]) == (0, "m2")
