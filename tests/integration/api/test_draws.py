from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from typing import TYPE_CHECKING

import boto3

from pointbridge.cli import main
from pointbridge.draws import verify_draw
from shared.access.keys import PrincipalKind
from shared.ledger.commands import Earn
from shared.rewards.draws import entrants_root, pick_winners, signed_message
from tests.conftest import T0

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from shared.ledger.ledger import Ledger
    from tests.integration.api.conftest import Client
    from tests.integration.conftest import Clock


def test_draw_enter_freeze_sign_verify(
    api: Client,
    funded: Ledger,
    admin_key: str,
    clock: Clock,
    draw_key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    funded.earn(
        Earn(program="demo", member="m2", points=500, source="shop", external_id="o2", reason="o2", event_time=T0),
        at=T0,
    )
    closes = (clock.now + timedelta(hours=1)).isoformat()
    spec = {"id": "summer", "prize": "A bike", "ticket_points": 50, "max_tickets_per_member": 3, "closes_at": closes}
    created = api.call("POST", "/admin/programs/demo/draws", key=admin_key, body=spec)
    assert created.status == 201, created.body
    # Nothing random exists before the close: no seed, no signature
    assert "seed" not in created.body and created.body["signature"] == "" and created.body["randomness"] == ""
    m1 = api.key_for(PrincipalKind.MEMBER, "m1")
    m2 = api.key_for(PrincipalKind.MEMBER, "m2")
    entry = "/programs/demo/members/{m}/draws/summer/entries"
    assert api.call("POST", entry.format(m="m1"), key=m1, body={"tickets": 2, "reference": "a"}).status == 201
    assert api.call("POST", entry.format(m="m2"), key=m2, body={"tickets": 1, "reference": "b"}).status == 201
    over = api.call("POST", entry.format(m="m1"), key=m1, body={"tickets": 2, "reference": "c"})
    assert (over.status, over.code) == (422, "limit_reached")
    early = api.call("POST", "/admin/programs/demo/draws/summer/reveal", key=admin_key)
    assert (early.status, early.code) == (422, "draw_closed")
    clock.now += timedelta(hours=2)
    closed = api.call("POST", entry.format(m="m1"), key=m1, body={"tickets": 1, "reference": "d"})
    assert (closed.status, closed.code) == (422, "draw_closed")
    revealed = api.call("POST", "/admin/programs/demo/draws/summer/reveal", key=admin_key)
    assert revealed.status == 201, revealed.body
    # The randomness is the sha256 of KMS's signature over (program, draw, entrants root), by the draw key
    tickets = {"m1": 2, "m2": 1}
    assert revealed.body["tickets"] == tickets
    assert revealed.body["entrants_root"] == entrants_root(tickets)
    assert revealed.body["signing_key"] == draw_key
    signature = base64.b64decode(revealed.body["signature"])
    kms = boto3.client("kms")
    message = signed_message("demo", "summer", entrants_root(tickets))
    assert kms.verify(
        KeyId=draw_key, Message=message, Signature=signature, SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256"
    )["SignatureValid"]
    assert base64.b64decode(revealed.body["public_key"]) == kms.get_public_key(KeyId=draw_key)["PublicKey"]
    assert revealed.body["randomness"] == hashlib.sha256(signature).hexdigest()
    assert revealed.body["winner_ids"] == pick_winners(revealed.body["randomness"], tickets, 1)
    public = api.call("GET", "/programs/demo/draws/summer", key=m2).body
    assert public == revealed.body
    # Anyone can verify it from what it publishes, with the key's public half
    public_key = kms.get_public_key(KeyId=draw_key)["PublicKey"]
    assert verify_draw(public, public_key) == []
    # And so does `pointbridge draw verify`, which fails a draw whose entrants changed after the freeze
    key_file, draw_file = tmp_path / "draw-key.b64", tmp_path / "draw.json"
    key_file.write_text(base64.b64encode(public_key).decode())
    draw_file.write_text(json.dumps(public))
    assert main(["draw", "verify", str(draw_file), "--public-key", str(key_file)]) == 0
    draw_file.write_text(json.dumps({**public, "tickets": {"m1": 2, "m2": 2}}))
    assert main(["draw", "verify", str(draw_file), "--public-key", str(key_file)]) == 1
    out = capsys.readouterr().out
    assert "OK: draw summer of demo: 2 entrants" in out
    assert "FAILED: the published tickets give the entrants root" in out
    balance = api.call("GET", "/programs/demo/members/m1/balance", key=m1).body
    assert balance["available"] == 900


def test_pick_winners_is_deterministic_and_without_repeats() -> None:
    tickets = {"a": 5, "b": 1, "c": 3}
    assert pick_winners("s", tickets, 3) == pick_winners("s", tickets, 3)
    assert sorted(pick_winners("s", tickets, 5)) == ["a", "b", "c"]


def test_the_entrants_root_is_order_free_and_changes_with_any_entrant_or_count() -> None:
    tickets = {"a": 5, "b": 1, "c": 3}
    root = entrants_root(tickets)
    assert root == entrants_root(dict(reversed(list(tickets.items()))))
    assert root != entrants_root({**tickets, "c": 4})
    assert root != entrants_root({**tickets, "d": 1})
    assert root != entrants_root({"a": 5, "b": 1})
    # One entrant's leaf is not a pair of others' node: the leaves and the nodes hash apart
    assert entrants_root({"a": 1}) != entrants_root({"a": 1, "b": 1})
