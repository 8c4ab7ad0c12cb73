"""Support's adjustments under concurrency, over real HTTP: two agents adjusting one member at the same
moment each land exactly once with their own reason, and a retried adjustment (the same Idempotency-Key,
or the same reference) lands once. The sandbox runs two API workers, so the requests really overlap."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from shared.access.keys import AdminRole, PrincipalKind
from shared.ledger.audit import audit
from shared.members.support import ACTION, AGENT
from tests.support.desk import PROGRAM, desk_api
from tests.support.http_api import HttpApi

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import requests

pytestmark = pytest.mark.e2e
ROUNDS = 4  # rounds in which both agents press Adjust at the same moment


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApi]:
    with desk_api() as http:
        yield http


def adjustments(api: HttpApi, member: str) -> list[Any]:
    """The member's support adjustments, as the ledger holds them."""
    api.sandbox.wait_for_idle(timeout=60)
    records = api.services.ledger_store.ledger_records()
    report = audit(*records)
    entries = records[0]
    assert report.ok, report.problems
    return [e for e in entries if e.member == member and e.program == PROGRAM and e.details.get(ACTION) == "adjustment"]


def available(api: HttpApi, key: str, member: str) -> int:
    return int(api.ok("GET", f"/programs/{PROGRAM}/members/{member}/balance", key)["available"])


def at_once(*calls: Callable[[], requests.Response]) -> list[requests.Response]:
    """Each call in its own thread, released together."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], requests.Response]) -> requests.Response:
        start.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_agents_adjusting_one_member_at_once_both_land_once(api: HttpApi) -> None:
    # Given two support agents, each on their own connection, and cy's balance
    lee, kim = HttpApi(api.sandbox), HttpApi(api.sandbox)
    lee_key = api.key(PrincipalKind.ADMIN, "agent-lee", role=AdminRole.SUPPORT)
    kim_key = api.key(PrincipalKind.ADMIN, "agent-kim", role=AdminRole.SUPPORT)
    path = f"/admin/programs/{PROGRAM}/members/cy/adjustments"
    before = available(api, lee_key, "cy")
    for n in range(ROUNDS):
        # When both adjust cy at the same moment, with different reasons (one adds, one deducts)
        credit = {"points": 30, "reason": f"parcel {n} arrived late", "reference": uuid.uuid4().hex}
        debit = {"points": -20, "reason": f"welcome bonus {n} credited twice", "reference": uuid.uuid4().hex}
        replies = at_once(
            partial(lee.call, "POST", path, lee_key, credit), partial(kim.call, "POST", path, kim_key, debit)
        )
        # Then both are accepted, each its own entry with its own reason
        assert [r.status_code for r in replies] == [201, 201], [r.text for r in replies]
        entries = [r.json()["entry"] for r in replies]
        assert entries[0]["entry_id"] != entries[1]["entry_id"]
        assert f"parcel {n} arrived late" in entries[0]["explanation"]
        assert f"welcome bonus {n} credited twice" in entries[1]["explanation"]
    # And the balance moved by every adjustment once, and the ledger holds each once, with its agent
    assert available(api, lee_key, "cy") == before + ROUNDS * (30 - 20)
    found = adjustments(api, "cy")  # (the audit of the whole table passes)
    assert sorted((e.reason, e.details[AGENT]) for e in found) == sorted(
        [(f"parcel {n} arrived late", "agent-lee") for n in range(ROUNDS)]
        + [(f"welcome bonus {n} credited twice", "agent-kim") for n in range(ROUNDS)]
    )
    # And the member's statement tells each once, in the member's words
    lines = api.ok("GET", f"/programs/{PROGRAM}/members/cy/statement", lee_key, query={"limit": "100"})["entries"]
    for n in range(ROUNDS):
        assert sum(f"parcel {n} arrived late" in line["explanation"] for line in lines) == 1
        assert sum(f"welcome bonus {n} credited twice" in line["explanation"] for line in lines) == 1


def test_a_retried_adjustment_lands_once(api: HttpApi) -> None:
    agent = api.key(PrincipalKind.ADMIN, "agent-ray", role=AdminRole.SUPPORT)
    first, second = HttpApi(api.sandbox), HttpApi(api.sandbox)
    path = f"/admin/programs/{PROGRAM}/members/bob/adjustments"
    before = available(api, agent, "bob")
    # When the same adjustment is sent twice at once under one Idempotency-Key (a retry racing its original)
    body = {"points": 40, "reason": "voucher not applied at the till", "reference": uuid.uuid4().hex}
    retry = {"Idempotency-Key": uuid.uuid4().hex}
    replies = at_once(
        partial(first.call, "POST", path, agent, body, headers=retry),
        partial(second.call, "POST", path, agent, body, headers=retry),
    )
    # Then one runs; the other is its stored reply, or told the first is still running
    ran = [r for r in replies if r.status_code == 201 and r.headers.get("Idempotent-Replayed") != "true"]
    assert len(ran) == 1, [(r.status_code, r.text) for r in replies]
    for other in replies:
        if other is not ran[0]:
            assert other.status_code in (201, 409), other.text
            if other.status_code == 409:
                assert other.json()["code"] == "idempotency_in_progress"
            else:
                assert other.json() == ran[0].json()
    # And a later retry under the key gets the same reply, marked replayed
    again = first.call("POST", path, agent, body, headers=retry)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == ran[0].json()
    # When the page sends one adjustment's reference without a key twice at once (a double click, a retry)
    clicked = {**body, "reference": uuid.uuid4().hex}
    both = at_once(
        partial(first.call, "POST", path, agent, clicked), partial(second.call, "POST", path, agent, clicked)
    )
    # Then both answers name one entry
    assert [r.status_code for r in both] == [201, 201], [r.text for r in both]
    assert both[0].json()["entry"]["entry_id"] == both[1].json()["entry"]["entry_id"]
    # And so does a retry of it that comes later
    later = first.ok("POST", path, agent, clicked, status=201)
    assert later["entry"]["entry_id"] == both[0].json()["entry"]["entry_id"]
    # And bob got 40 points twice (two adjustments), not four times; the audit passes
    assert available(api, agent, "bob") == before + 2 * 40
    assert len(adjustments(api, "bob")) == 2
