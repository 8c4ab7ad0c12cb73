"""Partner exchange over real HTTP: quotes, execution, transfers in and out, settlement from the stream."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pointbridge.sandbox import Sandbox
from shared.access.keys import PrincipalKind
from shared.exchange import agreements as exchange
from shared.ledger.audit import audit
from shared.ledger.commands import Earn
from tests.support.http_api import HttpApi, problem

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
MEMBERS = ("m0", "m1", "m2", "m3")
AGREEMENT = {
    "id": "demo-air",
    "version": 1,
    "from_program": "demo",
    "to_program": "air",
    "rate": "0.333",
    "minimum": 100,
    "increment": 10,
    "fee_points": 10,
    "daily_limit": 5000,
}


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApi]:
    """Programs demo and air and the agreement demo -> air, published over HTTP; four members with 3,000 demo points."""
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        api = HttpApi(sb)
        admin = api.key(PrincipalKind.ADMIN, "ops")
        for program in ("demo", "air"):
            config = {"program": program, "version": 1, "name": program.title()}
            api.mutate("PUT", f"/admin/programs/{program}", admin, config, other={**config, "name": "x"})
        api.mutate("PUT", "/admin/agreements/demo-air", admin, AGREEMENT, other={**AGREEMENT, "rate": "0.5"})
        ledger = api.services.ledger
        for member in MEMBERS:
            earn = Earn(
                program="demo",
                member=member,
                points=3000,
                source="seed",
                external_id=member,
                reason="welcome",
                event_time=datetime.now(UTC),
            )
            ledger.earn(earn)
        yield api


def member_key(api: HttpApi, member: str) -> str:
    return api.key(PrincipalKind.MEMBER, member, ("demo", "air"))


def balance(api: HttpApi, program: str, member: str) -> Any:
    return api.ok("GET", f"/programs/{program}/members/{member}/balance", api.key(PrincipalKind.ADMIN, "ops"))


def settlement(api: HttpApi, partner: str, program: str) -> Any:
    today = datetime.now(UTC).date()
    period = {"start": (today - timedelta(days=1)).isoformat(), "end": (today + timedelta(days=1)).isoformat()}
    path = f"/partners/{partner}/programs/{program}/settlement"
    return api.ok("GET", path, api.key(PrincipalKind.PARTNER, partner, ("demo", "air")), query=period)


def test_quote_and_execute_round_down_and_replay(api: HttpApi) -> None:
    key = member_key(api, "m0")
    body = {"member": "m0", "points": 250}
    # When m0 asks for a quote of 250 demo-points and executes it
    quote = api.mutate("POST", "/agreements/demo-air/quotes", key, body, other={**body, "points": 260})
    # Then (250 - 10) * 0.333 = 79.92: 79 air-points credited, 0.92 lost to rounding down
    assert (quote["gross"], quote["fee"], quote["credited"], quote["residue"]) == (250, 10, 79, "0.920")
    done = api.mutate("POST", f"/quotes/{quote['quote_id']}/execute", key)
    assert (done["debit"]["available_change"], done["credit"]["available_change"]) == (-250, 79)
    # And executing again (without a key) replays the same entries
    assert api.ok("POST", f"/quotes/{quote['quote_id']}/execute", key, status=201) == done
    assert balance(api, "air", "m0")["available"] == 79
    assert balance(api, "demo", "m0")["available"] == 3000 - 250
    problem(api.call("POST", "/agreements/demo-air/quotes", key, {"member": "m0", "points": 105}), 400, "invalid_input")
    problem(api.call("POST", "/quotes/no-such-quote/execute", key), 404, "unknown_quote")


def test_an_expired_quote_is_refused_and_writes_nothing(api: HttpApi) -> None:
    # Given a quote issued an hour ago (its lifetime is five minutes)
    agreement = exchange.Agreement.model_validate(AGREEMENT)
    old = exchange.quote(agreement, "m1", "m1", 200, datetime.now(UTC) - timedelta(hours=1))
    exchange.save_quote(api.services.exchange_items, old)
    m1 = member_key(api, "m1")
    before = api.table_items()
    # When m1 executes it
    reply = api.call("POST", f"/quotes/{old.quote_id}/execute", m1)
    # Then a typed problem, and nothing written
    problem(reply, 422, "quote_expired")
    assert api.table_items() == before


def test_an_exchange_run_audits_clean_and_the_stream_settles_it(api: HttpApi) -> None:
    # Given the settlement statements as they stand (the stream watcher caught up)
    api.sandbox.wait_for_idle(timeout=60)
    sent_before, received_before = settlement(api, "air", "demo"), settlement(api, "demo", "air")

    # When four members exchange three times each, at once
    def run(member: str) -> list[Any]:
        key, done = member_key(api, member), []
        for n in range(3):
            quote = api.ok(
                "POST", "/agreements/demo-air/quotes", key, {"member": member, "points": 100 + 10 * n}, status=201
            )
            done.append((quote, api.ok("POST", f"/quotes/{quote['quote_id']}/execute", key, status=201)))
        return done

    with ThreadPoolExecutor(len(MEMBERS)) as pool:
        executed = [pair for batch in pool.map(run, MEMBERS) for pair in batch]
    # Then the ledger audits clean: every program sums to zero, and every pair re-derives from its rule
    entries, accounts, lots, holds = api.services.ledger_store.ledger_records()
    report = audit(entries, accounts, lots, holds)
    assert report.ok, report.problems
    assert exchange.check_exchanges(entries) == []
    # And once the stream watcher has written its settlement lines, the statements over HTTP carry the run
    api.sandbox.wait_for_idle(timeout=60)
    sent, received = settlement(api, "air", "demo"), settlement(api, "demo", "air")
    assert sent["entries"] - sent_before["entries"] == len(executed) == 12
    assert sent["sent"] - sent_before["sent"] == sum(q["gross"] for q, _ in executed)
    assert sent["fees"] - sent_before["fees"] == 10 * len(executed)
    assert received["received"] - received_before["received"] == sum(q["credited"] for q, _ in executed)
    residue = sum(Decimal(q["residue"]) for q, _ in executed)
    assert Decimal(received["residue"]) - Decimal(received_before["residue"]) == residue
    assert received["net"] == -received["received"]
    assert report.totals["demo"]["partner:air"] == sent["sent"]
    [today] = sent["days"]
    assert today["sent"] == sent["sent"]


def test_inbound_transfer_is_idempotent_on_the_partners_transfer_id(api: HttpApi) -> None:
    acme = api.key(PrincipalKind.PARTNER, "acme", ("demo",))
    path = "/partners/acme/programs/demo/members/m2/transfers-in"
    body = {"transfer_id": "t-1", "points": 40, "occurred_at": "2026-11-30T10:00:00Z"}
    start = balance(api, "demo", "m2")["available"]
    # Only a member who linked acme's id (acme links it itself) may be credited by acme
    problem(api.call("POST", path, acme, body), 403, "forbidden")
    api.link_partner(acme, "demo", "m2", "ACME-0002")
    first = api.mutate("POST", path, acme, body, other={**body, "points": 41})
    # The same transfer id again, without an Idempotency-Key: the stored entry, credited once
    again = api.ok("POST", path, acme, body, status=201)
    assert again["entry_id"] == first["entry_id"]
    assert first["entry_id"].startswith("partner-in:acme:") and first["entry_id"].endswith(":t-1")
    assert balance(api, "demo", "m2")["available"] == start + 40
    # The same transfer id with other points is a conflict, never a second credit
    problem(api.call("POST", path, acme, {**body, "points": 41}), 409, "idempotency_conflict")
    assert balance(api, "demo", "m2")["available"] == start + 40


def test_outbound_transfer_held_until_the_partner_confirms_or_rejects(api: HttpApi) -> None:
    m3, acme = member_key(api, "m3"), api.key(PrincipalKind.PARTNER, "acme", ("demo",))
    start = balance(api, "demo", "m3")["available"]
    out = "/programs/demo/members/m3/transfers-out"
    for transfer_id, points in (("o-1", 100), ("o-2", 60)):
        body = {"partner": "acme", "transfer_id": transfer_id, "points": points}
        api.mutate("POST", out, m3, body, other={**body, "points": points + 1})
    pending = balance(api, "demo", "m3")
    assert (pending["available"], pending["held"]) == (start - 160, 160)
    base = "/partners/acme/programs/demo/members/m3/transfers-out"
    # A confirm wider than the transfer is refused; one for part of it is honoured, the rest returns
    problem(api.call("POST", f"{base}/o-1/confirm", acme, {"points": 101}), 422, "capture_exceeds_hold")
    confirmed = api.mutate("POST", f"{base}/o-1/confirm", acme, {"points": 80}, other={"points": 79})
    rejected = api.mutate("POST", f"{base}/o-2/reject", acme)
    assert (confirmed["kind"], confirmed["details"]["captured"], rejected["kind"]) == ("capture", "80", "release")
    after = balance(api, "demo", "m3")
    assert (after["available"], after["held"]) == (start - 80, 0)
    problem(api.call("POST", f"{base}/o-2/confirm", acme), 409, "already_settled")


def test_a_partner_outside_its_agreements_is_refused_and_nothing_is_written(api: HttpApi) -> None:
    # Given partner hotel, whose agreements cover only its own program, and a quote m0 holds
    hotel = api.key(PrincipalKind.PARTNER, "hotel", ("hotel",))
    quote = api.ok(
        "POST", "/agreements/demo-air/quotes", member_key(api, "m0"), {"member": "m0", "points": 100}, status=201
    )
    api.ok(
        "POST",
        "/programs/demo/members/m0/transfers-out",
        member_key(api, "m0"),
        {"partner": "acme", "transfer_id": "o-9", "points": 10},
        status=201,
    )
    before = api.table_items()
    # When hotel reaches for demo and air
    attempts = [
        api.call("POST", "/agreements/demo-air/quotes", hotel, {"member": "m0", "points": 100}),
        api.call("POST", f"/quotes/{quote['quote_id']}/execute", hotel),
        api.call(
            "POST",
            "/partners/hotel/programs/demo/members/m0/transfers-in",
            hotel,
            {"transfer_id": "h-1", "points": 10, "occurred_at": "2026-11-30T10:00:00Z"},
        ),
        api.call(
            "POST",
            "/partners/acme/programs/demo/members/m0/transfers-in",
            hotel,
            {"transfer_id": "h-2", "points": 10, "occurred_at": "2026-11-30T10:00:00Z"},
        ),
        api.call("POST", "/partners/acme/programs/demo/members/m0/transfers-out/o-9/confirm", hotel),
        api.call("POST", "/programs/demo/members/m0/redemptions", hotel, {"points": 1, "reference": "h-3"}),
        api.call("GET", "/programs/demo/members/m0/balance", hotel),
        api.call(
            "GET", "/partners/acme/programs/demo/settlement", hotel, query={"start": "2026-11-01", "end": "2026-11-30"}
        ),
    ]
    # Then every one is a 403 problem, and the table holds exactly what it held
    for reply in attempts:
        problem(reply, 403, "forbidden")
    assert api.table_items() == before
