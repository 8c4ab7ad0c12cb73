"""The partner settlement statement is served from the stream watcher's settlement lines, never a scan."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from shared.access.keys import PrincipalKind
from shared.exchange.agreements import Agreement, publish_agreement
from shared.exchange.settlement import record_partner_postings
from tests.integration.api.conftest import link_partner, second_program

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from shared.program.store import ProgramRepository
    from tests.integration.api.conftest import Client


def _project_stream(services: Services, times: int = 2) -> None:
    """What WatchFunction does for each new entry, delivered `times` times (streams are at-least-once)."""
    entries = services.ledger_store.ledger_records()[0]
    for _ in range(times):
        for entry in entries:
            record_partner_postings(services.exchange_items, entry)


def _period(services: Services) -> dict[str, str]:
    # The entries are recorded "now" by the API's ledger (the services' clock); a day either side
    # covers a run at midnight.
    today = services.now().date()
    return {"start": (today - timedelta(days=1)).isoformat(), "end": (today + timedelta(days=1)).isoformat()}


def test_statement_sums_exchange_and_transfer_lines_per_partner(
    api: Client, funded: Ledger, services: Services, programs: ProgramRepository
) -> None:
    # Given an exchange demo -> air of 250 points (fee 10, rate 0.333: 79 credited, 0.92 lost to rounding)
    second_program(programs, "air")
    agreement = Agreement(
        id="demo-air",
        version=1,
        from_program="demo",
        to_program="air",
        rate=Decimal("0.333"),
        fee_points=10,
        minimum=100,
    )
    publish_agreement(services.documents, agreement)
    member = api.key_for(PrincipalKind.MEMBER, "m1", ("demo", "air"))
    quote = api.call("POST", "/agreements/demo-air/quotes", key=member, body={"member": "m1", "points": 250}).body
    assert api.call("POST", f"/quotes/{quote['quote_id']}/execute", key=member).status == 201
    # And partner acme credited 40 points in, and took 100 out (confirmed)
    acme = api.key_for(PrincipalKind.PARTNER, "acme", ("demo",))
    link_partner(api, acme, "m1", "ACME-1")
    inbound = {"transfer_id": "t-1", "points": 40, "occurred_at": "2026-01-20T10:00:00Z"}
    assert (
        api.call("POST", "/partners/acme/programs/demo/members/m1/transfers-in", key=acme, body=inbound).status == 201
    )
    outbound = {"partner": "acme", "transfer_id": "o-1", "points": 100}
    assert api.call("POST", "/programs/demo/members/m1/transfers-out", key=member, body=outbound).status == 201
    confirm = "/partners/acme/programs/demo/members/m1/transfers-out/o-1/confirm"
    assert api.call("POST", confirm, key=acme, body={}).status == 201
    # And the stream watcher wrote the settlement lines (each record delivered twice)
    _project_stream(services)
    admin = api.key_for(PrincipalKind.ADMIN, "ops", ())
    services.table.stats.reset()  # from here on, only the API's requests
    # When the statements are read over the API
    demo_air = api.call("GET", "/partners/air/programs/demo/settlement", key=admin, query=_period(services))
    air_demo = api.call("GET", "/partners/demo/programs/air/settlement", key=admin, query=_period(services))
    demo_acme = api.call("GET", "/partners/acme/programs/demo/settlement", key=acme, query=_period(services))
    # Then each names what moved, once, with the exchange's fee and rounding residue
    assert demo_air.status == air_demo.status == demo_acme.status == 200, (demo_air.body, demo_acme.body)
    figures = ("entries", "sent", "received", "net", "fees", "residue")
    assert [demo_air.body[f] for f in figures] == [1, 250, 0, 250, 10, "0"]
    assert [air_demo.body[f] for f in figures] == [1, 0, 79, -79, 0, "0.920"]
    assert [demo_acme.body[f] for f in figures] == [2, 100, 40, 60, 0, "0"]
    [day] = demo_acme.body["days"]
    assert (day["day"], day["net"], day["entries"]) == (services.now().date().isoformat(), 60, 2)
    # And the API read day partitions: no Scan (the template no longer allows one)
    assert services.table.stats.requests["Scan"] == 0


def test_statement_before_the_stream_caught_up_is_empty_not_wrong(
    api: Client, funded: Ledger, services: Services
) -> None:
    # Given a transfer in that the watcher has not projected yet
    acme = api.key_for(PrincipalKind.PARTNER, "acme", ("demo",))
    link_partner(api, acme, "m1", "ACME-1")
    inbound = {"transfer_id": "t-9", "points": 40, "occurred_at": "2026-01-20T10:00:00Z"}
    assert (
        api.call("POST", "/partners/acme/programs/demo/members/m1/transfers-in", key=acme, body=inbound).status == 201
    )
    # When acme reads its statement
    reply = api.call("GET", "/partners/acme/programs/demo/settlement", key=acme, query=_period(services))
    # Then it has no lines yet (the projection lags the ledger by the stream's delay)
    assert reply.status == 200
    assert (reply.body["entries"], reply.body["days"]) == (0, [])


def test_statement_period_and_access_are_checked(api: Client, funded: Ledger, services: Services) -> None:
    admin = api.key_for(PrincipalKind.ADMIN, "ops", ())
    path = "/partners/acme/programs/demo/settlement"
    backwards = api.call("GET", path, key=admin, query={"start": "2026-02-01", "end": "2026-01-31"})
    assert (backwards.status, backwards.code) == (400, "invalid_input")
    too_long = api.call("GET", path, key=admin, query={"start": "2026-01-01", "end": "2026-04-30"})
    assert (too_long.status, too_long.code) == (400, "invalid_input")
    assert "at most 93 days" in too_long.body["detail"]
    not_a_date = api.call("GET", path, key=admin, query={"start": "yesterday", "end": "2026-01-31"})
    assert (not_a_date.status, not_a_date.code) == (400, "invalid_input")
    # Another partner may not read acme's statement; nor may acme read a program it has no agreement with
    zeta = api.key_for(PrincipalKind.PARTNER, "zeta", ("demo",))
    assert api.call("GET", path, key=zeta, query=_period(services)).code == "forbidden"
    acme_elsewhere = api.key_for(PrincipalKind.PARTNER, "acme", ("air",))
    assert api.call("GET", path, key=acme_elsewhere, query=_period(services)).code == "forbidden"
    unknown = api.call("GET", "/partners/acme/programs/nope/settlement", key=admin, query=_period(services))
    assert (unknown.status, unknown.code) == (404, "unknown_program")
