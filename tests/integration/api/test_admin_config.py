"""Operators read config back: the live version and every version ever published, admin only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.access.keys import PrincipalKind
from tests.integration.api.conftest import second_program

if TYPE_CHECKING:
    from functions.services import Services
    from shared.program.store import ProgramRepository
    from tests.integration.api.conftest import Client


def test_program_history_keeps_every_version_and_refusals_change_nothing(api: Client, admin_key: str) -> None:
    # Given version 1 (from the fixture) and versions 2 and 3 published through the API
    for version, name in ((2, "Demo two"), (3, "Demo three")):
        body = {"program": "demo", "version": version, "name": name}
        assert api.call("PUT", "/admin/programs/demo", key=admin_key, body=body).status == 201
    # And a bad version 4 that is refused
    bad = {"program": "demo", "version": 4, "name": "Demo", "currency": "dollars"}
    assert api.call("PUT", "/admin/programs/demo", key=admin_key, body=bad).code == "invalid_config"
    # When the operator reads the live version and the history, two at a time
    live = api.call("GET", "/admin/programs/demo", key=admin_key)
    first = api.call("GET", "/admin/programs/demo/versions", key=admin_key, query={"limit": "2"})
    rest = api.call("GET", "/admin/programs/demo/versions", key=admin_key, query={"after": "2", "limit": "2"})
    # Then version 3 is live, and the history has 1, 2, 3 with their times and bodies
    assert live.status == 200, live.body
    assert (live.body["version"], live.body["live"], live.body["config"]["name"]) == (3, True, "Demo three")
    assert live.body["published_at"] is not None
    assert first.body["live_version"] == 3
    assert [(v["version"], v["live"]) for v in first.body["versions"]] == [(1, False), (2, False)]
    assert first.body["next"] == 2
    assert [v["config"]["name"] for v in rest.body["versions"]] == ["Demo three"]
    assert rest.body["next"] is None
    # And what was read can be edited and published again as the next version
    edited = {**live.body["config"], "version": 4, "base_rate": "2"}
    assert api.call("PUT", "/admin/programs/demo", key=admin_key, body=edited).status == 201


def test_catalogue_and_agreement_history(api: Client, admin_key: str, programs: ProgramRepository) -> None:
    second_program(programs, "air")
    # Given no catalogue yet
    missing = api.call("GET", "/admin/programs/demo/catalogue", key=admin_key)
    assert (missing.status, missing.code) == (404, "unknown_catalogue")
    # When two catalogue versions and two agreement versions (the second switching it off) are published
    for version, points in ((1, 100), (2, 120)):
        cat = {
            "program": "demo",
            "version": version,
            "rewards": [{"id": "mug", "name": "Mug", "kind": "physical", "points": points}],
        }
        assert api.call("PUT", "/admin/programs/demo/catalogue", key=admin_key, body=cat).status == 201
    for version, active in ((1, True), (2, False)):
        agreement = {
            "id": "da",
            "version": version,
            "from_program": "demo",
            "to_program": "air",
            "rate": "0.5",
            "active": active,
        }
        assert api.call("PUT", "/admin/agreements/da", key=admin_key, body=agreement).status == 201
    # Then both read back, the inactive agreement included (members can no longer use it)
    cat_live = api.call("GET", "/admin/programs/demo/catalogue", key=admin_key).body
    assert (cat_live["version"], cat_live["config"]["rewards"][0]["points"]) == (2, 120)
    cat_history = api.call("GET", "/admin/programs/demo/catalogue/versions", key=admin_key).body
    assert [v["version"] for v in cat_history["versions"]] == [1, 2]
    agreement_live = api.call("GET", "/admin/agreements/da", key=admin_key).body
    assert (agreement_live["version"], agreement_live["config"]["active"]) == (2, False)
    history = api.call("GET", "/admin/agreements/da/versions", key=admin_key).body
    assert [(v["version"], v["config"]["rate"]) for v in history["versions"]] == [(1, "0.5"), (2, "0.5")]
    assert api.call("GET", "/admin/agreements/nope", key=admin_key).code == "unknown_agreement"
    assert api.call("GET", "/admin/programs/nope/versions", key=admin_key).code == "unknown_program"


def test_only_admins_read_config(api: Client) -> None:
    partner = api.key_for(PrincipalKind.PARTNER, "acme", ("demo",))
    channel = api.key_for(PrincipalKind.CHANNEL, "shop", ("demo",))
    for key in (partner, channel):
        for path in ("/admin/programs/demo", "/admin/programs/demo/versions", "/admin/programs/demo/catalogue"):
            reply = api.call("GET", path, key=key)
            assert (reply.status, reply.code) == (403, "forbidden"), path


def test_a_minted_key_is_never_stored_even_for_an_idempotent_retry(
    api: Client, admin_key: str, services: Services
) -> None:
    # Given a key minted under an Idempotency-Key
    body = {"kind": "member", "id": "m7", "programs": ["demo"]}
    first = api.call("POST", "/admin/keys", key=admin_key, body=body, headers={"Idempotency-Key": "mint-1"})
    assert first.status == 201
    minted = first.body["key"]
    # When the same request is retried under that key
    retry = api.call("POST", "/admin/keys", key=admin_key, body=body, headers={"Idempotency-Key": "mint-1"})
    # Then the retry learns it was done, but the secret is not shown again, nor stored anywhere
    assert (retry.status, retry.code) == (409, "secret_not_replayed")
    assert not any(minted in str(item) for item in services.table.scan())
    assert api.call("GET", "/programs/demo/members/m7/balance", key=minted).code == "unknown_member"
