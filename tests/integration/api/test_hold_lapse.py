from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from functions.holds.app import handler
from shared.access.keys import PrincipalKind
from shared.ledger.audit import audit
from tests.integration.api.conftest import FakeContext

if TYPE_CHECKING:
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from tests.integration.api.conftest import Client


def test_lapsed_hold_released_by_schedule(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    # Given a hold that lapses in 60 seconds
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    reply = api.call("POST", "/programs/demo/members/m1/holds", key=key, body={"points": 70, "reference": "L1"})
    assert reply.status == 201
    _, _, _, holds = store.ledger_records()
    lapses = holds[0].lapses_at
    # When the schedule runs before and after the lapse time
    early = handler({"scheduled_time": (lapses - timedelta(seconds=1)).isoformat(), "simulate": True}, FakeContext())  # type: ignore[arg-type]
    late = handler({"scheduled_time": (lapses + timedelta(minutes=5)).isoformat(), "simulate": True}, FakeContext())  # type: ignore[arg-type]
    rerun = handler({"scheduled_time": (lapses + timedelta(minutes=10)).isoformat(), "simulate": True}, FakeContext())  # type: ignore[arg-type]
    # Then only the later run releases it, once, and the ledger still audits clean
    assert (early["released"], late["released"], rerun["released"]) == (0, 1, 0)
    balance = api.call("GET", "/programs/demo/members/m1/balance", key=key).body
    assert (balance["available"], balance["held"]) == (1000, 0)
    assert audit(*store.ledger_records()).ok
