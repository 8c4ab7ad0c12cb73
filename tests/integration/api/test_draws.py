from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.access.keys import PrincipalKind
from shared.ledger.commands import Earn
from shared.rewards.draws import pick_winners
from tests.conftest import T0

if TYPE_CHECKING:
    from shared.ledger.ledger import Ledger
    from tests.integration.api.conftest import Client
    from tests.integration.conftest import Clock


def test_draw_commit_enter_reveal_verify(api: Client, funded: Ledger, admin_key: str, clock: Clock) -> None:
    funded.earn(
        Earn(program="demo", member="m2", points=500, source="shop", external_id="o2", reason="o2", event_time=T0),
        at=T0,
    )
    closes = (clock.now + timedelta(hours=1)).isoformat()
    spec = {"id": "summer", "prize": "A bike", "ticket_points": 50, "max_tickets_per_member": 3, "closes_at": closes}
    created = api.call("POST", "/admin/programs/demo/draws", key=admin_key, body=spec)
    assert created.status == 201, created.body
    assert created.body["seed"] is None
    commitment = created.body["commitment"]
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
    seed = revealed.body["seed"]
    # Anyone can verify: the seed matches the commitment and the winners follow from the tickets
    assert hashlib.sha256(seed.encode()).hexdigest() == commitment
    assert revealed.body["tickets"] == {"m1": 2, "m2": 1}
    assert revealed.body["winner_ids"] == pick_winners(seed, {"m1": 2, "m2": 1}, 1)
    public = api.call("GET", "/programs/demo/draws/summer", key=m2).body
    assert public["winner_ids"] == revealed.body["winner_ids"]
    balance = api.call("GET", "/programs/demo/members/m1/balance", key=m1).body
    assert balance["available"] == 900


def test_pick_winners_is_deterministic_and_without_repeats() -> None:
    tickets = {"a": 5, "b": 1, "c": 3}
    assert pick_winners("s", tickets, 3) == pick_winners("s", tickets, 3)
    assert sorted(pick_winners("s", tickets, 5)) == ["a", "b", "c"]
