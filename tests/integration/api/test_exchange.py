from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from shared.access.keys import PrincipalKind
from shared.exchange.agreements import Agreement, check_exchanges, publish_agreement
from shared.ledger.audit import audit
from tests.integration.api.conftest import link_partner, second_program

if TYPE_CHECKING:
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from shared.program.store import Documents, ProgramRepository
    from tests.integration.api.conftest import Client
    from tests.integration.conftest import Clock


def _agreement(documents: Documents, programs: ProgramRepository) -> None:
    second_program(programs, "air")
    second_program(programs, "hotel")
    publish_agreement(
        documents,
        Agreement(
            id="demo-air",
            version=1,
            from_program="demo",
            to_program="air",
            rate=Decimal("0.333"),
            minimum=100,
            increment=10,
            daily_limit=500,
            fee_points=10,
        ),
    )


def test_exchange_conserves_value_and_audits(
    api: Client, funded: Ledger, store: DynamoLedgerStore, programs: ProgramRepository
) -> None:
    # Given an agreement demo -> air at 0.333 air-points per demo-point, fee 10
    _agreement(api.services.documents, programs)
    key = api.key_for(PrincipalKind.MEMBER, "m1", ("demo", "air"))
    # When the member quotes and executes 250 demo-points
    quote = api.call("POST", "/agreements/demo-air/quotes", key=key, body={"member": "m1", "points": 250})
    assert quote.status == 201, quote.body
    # Then (250 - 10) * 0.333 = 79.92 -> 79 air-points, 0.92 residue, rounded down
    assert (quote.body["credited"], quote.body["residue"]) == (79, "0.920")
    done = api.call("POST", f"/quotes/{quote.body['quote_id']}/execute", key=key)
    assert done.status == 201, done.body
    assert done.body["debit"]["available_change"] == -250
    assert done.body["credit"]["available_change"] == 79
    replay = api.call("POST", f"/quotes/{quote.body['quote_id']}/execute", key=key)
    assert replay.body == done.body
    air = api.call("GET", "/programs/air/members/m1/balance", key=key).body
    assert air["available"] == 79
    # And both programs audit clean and the pair re-derives exactly
    entries, accounts, lots, holds = store.ledger_records()
    report = audit(entries, accounts, lots, holds)
    assert report.ok, report.problems
    assert report.totals["demo"]["partner:air"] == 250
    assert report.totals["air"]["partner:demo"] == -79
    assert check_exchanges(entries) == []


def test_exchange_refusals_write_nothing(
    api: Client, funded: Ledger, store: DynamoLedgerStore, programs: ProgramRepository, clock: Clock
) -> None:
    _agreement(api.services.documents, programs)
    key = api.key_for(PrincipalKind.MEMBER, "m1", ("demo", "air"))
    assert api.call("POST", "/agreements/demo-air/quotes", key=key, body={"member": "m1", "points": 95}).status == 400
    big = api.call("POST", "/agreements/demo-air/quotes", key=key, body={"member": "m1", "points": 600}).body
    before = len(store.ledger_records()[0])
    over = api.call("POST", f"/quotes/{big['quote_id']}/execute", key=key)
    assert (over.status, over.code) == (422, "limit_reached")
    q = api.call("POST", "/agreements/demo-air/quotes", key=key, body={"member": "m1", "points": 100}).body
    clock.now += timedelta(hours=1)
    expired = api.call("POST", f"/quotes/{q['quote_id']}/execute", key=key)
    assert (expired.status, expired.code) == (422, "quote_expired")
    # A partner outside the agreement is refused and nothing is written
    outsider = api.key_for(PrincipalKind.PARTNER, "hotel", ("hotel",))
    refused = api.call("POST", "/agreements/demo-air/quotes", key=outsider, body={"member": "m1", "points": 100})
    assert (refused.status, refused.code) == (403, "forbidden")
    assert len(store.ledger_records()[0]) == before


def test_inbound_idempotent_and_outbound_confirm_reject(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    partner = api.key_for(PrincipalKind.PARTNER, "acme", ("demo",))
    member = api.key_for(PrincipalKind.MEMBER, "m1")
    inbound = "/partners/acme/programs/demo/members/m1/transfers-in"
    sent = {"transfer_id": "t-1", "points": 40, "occurred_at": "2026-01-20T10:00:00Z"}
    # A partner credits only a member who linked its id (which the partner itself links)
    unlinked = api.call("POST", inbound, key=partner, body=sent)
    assert (unlinked.status, unlinked.code) == (403, "forbidden")
    link_partner(api, partner, "m1", "ACME-77")
    first = api.call("POST", inbound, key=partner, body=sent)
    again = api.call("POST", inbound, key=partner, body=sent)
    assert first.status == again.status == 201
    assert first.body["entry_id"] == again.body["entry_id"]
    clash = api.call("POST", inbound, key=partner, body={**sent, "points": 41})
    assert (clash.status, clash.code) == (409, "idempotency_conflict")
    # Outbound: pending (held) until the partner answers
    out = "/programs/demo/members/m1/transfers-out"
    for transfer_id, points in (("o-1", 100), ("o-2", 60)):
        body = {"partner": "acme", "transfer_id": transfer_id, "points": points}
        assert api.call("POST", out, key=member, body=body).status == 201
    base = "/partners/acme/programs/demo/members/m1/transfers-out"
    # A confirm for more than the transfer is refused, never widened; a partial one is honoured
    wider = api.call("POST", f"{base}/o-1/confirm", key=partner, body={"points": 101})
    assert (wider.status, wider.code) == (422, "capture_exceeds_hold")
    confirmed = api.call("POST", f"{base}/o-1/confirm", key=partner, body={"points": 70})
    assert confirmed.status == 201, confirmed.body
    assert confirmed.body["details"]["captured"] == "70"
    assert api.call("POST", f"{base}/o-2/reject", key=partner, body={}).status == 201
    balance = api.call("GET", "/programs/demo/members/m1/balance", key=member).body
    assert (balance["available"], balance["held"]) == (1000 + 40 - 70, 0)
    report = audit(*store.ledger_records())
    assert report.ok, report.problems
    assert report.totals["demo"]["partner:acme"] == -40 + 70
    # Another partner may not confirm acme's transfers
    other = api.key_for(PrincipalKind.PARTNER, "zeta", ("demo",))
    assert api.call("POST", f"{base}/o-1/confirm", key=other, body={}).status == 403
