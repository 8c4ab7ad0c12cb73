"""A program's end through the API: the announcement, then earning and spending closing on their dates."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from shared.access.keys import PrincipalKind
from shared.exchange.agreements import Agreement, publish_agreement
from shared.rewards.catalogue import Catalogue, Reward, RewardKind, publish_catalogue
from tests.integration.api.conftest import link_partner, second_program

if TYPE_CHECKING:
    from datetime import datetime

    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from shared.program.store import ProgramRepository
    from tests.integration.api.conftest import Client
    from tests.integration.conftest import Clock

M1 = "/programs/demo/members/m1"


def _entries(store: DynamoLedgerStore) -> int:
    return len(store.ledger_records()[0])


def _at(clock: Clock, moment: datetime) -> None:
    """The services' clock (the API's time) moves to `moment`."""
    clock.now = moment


def test_announcement_refuses_what_makes_no_sense_and_keeps_the_live_version(api: Client, admin_key: str) -> None:
    path = "/admin/programs/demo/sunset"
    # Given a live program (version 1), when its end is announced with too short a notice
    short = api.call("POST", path, key=admin_key, body={"notice_days": 10, "redemption_days": 30})
    backwards = api.call("POST", path, key=admin_key, body={"notice_days": 30, "redemption_days": -1})
    # Then each is refused with its reason and the live config stays
    assert (short.status, short.code) == (422, "invalid_sunset")
    assert "30 days' notice" in short.body["detail"]
    assert (backwards.status, backwards.code) == (422, "invalid_sunset")
    assert api.call("GET", "/admin/programs/demo", key=admin_key).body["version"] == 1
    # When it is announced properly
    done = api.call("POST", path, key=admin_key, body={"notice_days": 30, "redemption_days": 60})
    # Then a new version carries the dates, and a second announcement is refused
    assert done.status == 201, done.body
    assert done.body["version"] == 2
    assert done.body["earning_ends_at"] > done.body["announced_at"]
    live = api.call("GET", "/admin/programs/demo", key=admin_key).body
    assert live["config"]["sunset"]["ends_at"].startswith(done.body["ends_at"][:10])
    again = api.call("POST", path, key=admin_key, body={"notice_days": 40, "redemption_days": 60})
    assert (again.status, again.code) == (422, "invalid_sunset")
    assert "already ends" in again.body["detail"]
    member = api.key_for(PrincipalKind.MEMBER, "m1")
    assert api.call("POST", path, key=member, body={"notice_days": 30, "redemption_days": 0}).code == "forbidden"
    unknown = api.call(
        "POST", "/admin/programs/nope/sunset", key=admin_key, body={"notice_days": 30, "redemption_days": 0}
    )
    assert unknown.code == "unknown_program"


def test_an_ordinary_publish_cannot_set_move_or_drop_the_sunset(api: Client, admin_key: str) -> None:
    # Given a program without a sunset, a config that sets one (bypassing the notice rules) is refused
    early = {"announced_at": "2026-01-01T00:00:00Z", "earning_ends_at": "2026-01-02T00:00:00Z"}
    sneaky = {"program": "demo", "version": 2, "name": "Demo", "sunset": {**early, "ends_at": "2026-01-03T00:00:00Z"}}
    refused = api.call("PUT", "/admin/programs/demo", key=admin_key, body=sneaky)
    assert (refused.status, refused.code) == (422, "invalid_config")
    assert "/sunset" in refused.body["detail"]
    # Given an announced end, a config that drops it is refused, and one that copies it unchanged is published
    api.call("POST", "/admin/programs/demo/sunset", key=admin_key, body={"notice_days": 30, "redemption_days": 0})
    live = api.call("GET", "/admin/programs/demo", key=admin_key).body["config"]
    dropped = {**live, "version": 3, "sunset": None}
    assert api.call("PUT", "/admin/programs/demo", key=admin_key, body=dropped).code == "invalid_config"
    kept = {**live, "version": 3, "name": "Demo, closing"}
    assert api.call("PUT", "/admin/programs/demo", key=admin_key, body=kept).status == 201


@pytest.fixture
def closing(api: Client, funded: Ledger, services: Services, programs: ProgramRepository, admin_key: str) -> datetime:
    """demo with a catalogue, a draw and agreements both ways with air; its end announced now (30 + 30 days)."""
    second_program(programs, "air")
    documents = services.documents
    rewards = (
        Reward(id="mug", name="Mug", kind=RewardKind.PHYSICAL, points=100),
        Reward(id="trees", name="Plant trees", kind=RewardKind.DONATION, points=10, cause="Forests"),
    )
    publish_catalogue(documents, Catalogue(program="demo", version=1, rewards=rewards))
    for source, target in (("demo", "air"), ("air", "demo")):
        agreement = Agreement(
            id=f"{source}-{target}", version=1, from_program=source, to_program=target, rate=Decimal(1)
        )
        publish_agreement(documents, agreement)
    now = services.now()
    draw = {"id": "car", "prize": "A car", "ticket_points": 10, "closes_at": (now + timedelta(days=90)).isoformat()}
    assert api.call("POST", "/admin/programs/demo/draws", key=admin_key, body=draw).status == 201
    announced = api.call(
        "POST", "/admin/programs/demo/sunset", key=admin_key, body={"notice_days": 30, "redemption_days": 30}
    )
    assert announced.status == 201, announced.body
    return now


def test_earning_closes_on_its_date_while_redemption_stays_open(
    api: Client, closing: datetime, store: DynamoLedgerStore, clock: Clock
) -> None:
    acme = api.key_for(PrincipalKind.PARTNER, "acme", ("demo",))
    link_partner(api, acme, "m1", "ACME-1")
    member = api.key_for(PrincipalKind.MEMBER, "m1", ("demo", "air"))
    inbound = "/partners/acme/programs/demo/members/m1/transfers-in"
    sent = {"transfer_id": "t-1", "points": 40, "occurred_at": "2026-01-20T10:00:00Z"}
    # Given a partner credit accepted during the notice period
    _at(clock, closing + timedelta(days=29))
    assert api.call("POST", inbound, key=acme, body=sent).status == 201
    # When earning has ended
    _at(clock, closing + timedelta(days=31))
    before = _entries(store)
    late = api.call("POST", inbound, key=acme, body={**sent, "transfer_id": "t-2"})
    into_demo = api.call("POST", "/agreements/air-demo/quotes", key=member, body={"member": "m1", "points": 10})
    # Then new credits are refused with a typed problem and nothing is written
    assert (late.status, late.code) == (422, "earning_closed")
    assert "earning_ended_at" in late.body
    assert (into_demo.status, into_demo.code) == (422, "earning_closed")
    assert _entries(store) == before
    # But the credit posted in time still replays on its transfer id, and members may still spend
    replay = api.call("POST", inbound, key=acme, body=sent)
    assert replay.status == 201, replay.body
    assert api.call("POST", f"{M1}/redemptions", key=member, body={"points": 5, "reference": "late"}).status == 201


def test_every_spending_route_refuses_after_the_end(
    api: Client, closing: datetime, store: DynamoLedgerStore, clock: Clock
) -> None:
    member = api.key_for(PrincipalKind.MEMBER, "m1", ("demo", "air"))
    till = api.key_for(PrincipalKind.CHANNEL, "till", ("demo",))
    # Given, while the program was open: a redemption, a checkout hold and a quote out of demo
    _at(clock, closing + timedelta(days=59))
    first = api.call("POST", f"{M1}/redemptions", key=member, body={"points": 5, "reference": "r-open"})
    assert first.status == 201
    hold = {"points": 50, "reference": "h-open", "lapses_in_seconds": 3600}
    assert api.call("POST", f"{M1}/holds", key=till, body=hold).status == 201
    quote = api.call("POST", "/agreements/demo-air/quotes", key=member, body={"member": "m1", "points": 10}).body
    # When the program has ended
    _at(clock, closing + timedelta(days=60, seconds=1))
    before = _entries(store)
    attempts = {
        "points": ("POST", f"{M1}/redemptions", {"points": 5, "reference": "r-late"}),
        "reward": ("POST", f"{M1}/redemptions", {"reward_id": "mug", "reference": "r-mug"}),
        "donation": ("POST", f"{M1}/donations", {"reward_id": "trees", "points": 10, "reference": "d"}),
        "hold": ("POST", f"{M1}/holds", {"points": 5, "reference": "h-late"}),
        "gift": ("POST", f"{M1}/gifts", {"to_member": "m2", "points": 5, "reference": "g"}),
        "transfer out": ("POST", f"{M1}/transfers-out", {"partner": "acme", "transfer_id": "o", "points": 5}),
        "draw": ("POST", f"{M1}/draws/car/entries", {"tickets": 1, "reference": "t"}),
        "quote": ("POST", "/agreements/demo-air/quotes", {"member": "m1", "points": 10}),
        "execute": ("POST", f"/quotes/{quote['quote_id']}/execute", None),
    }
    replies = {name: api.call(method, path, key=member, body=body) for name, (method, path, body) in attempts.items()}
    # Then each is refused as redemption_closed, with the end date, and nothing is written
    assert {name: (r.status, r.code) for name, r in replies.items()} == dict.fromkeys(
        attempts, (422, "redemption_closed")
    )
    assert all("ended_at" in r.body for r in replies.values())
    assert _entries(store) == before
    # But a redemption posted before the end replays, and the open hold can still be captured
    replay = api.call("POST", f"{M1}/redemptions", key=member, body={"points": 5, "reference": "r-open"})
    assert (replay.status, replay.body["entry"]["entry_id"]) == (201, first.body["entry"]["entry_id"])
    assert api.call("POST", f"{M1}/holds/h-open/capture", key=till, body={"points": 20}).status == 201
