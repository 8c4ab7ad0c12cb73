"""Concurrent redemptions, holds, exchanges, merges and links on the same members: threads against
mock_aws.

Each request is atomic, as DynamoDB's are (moto's backend is not thread-safe, so one lock around
each call of the shared client), and requests of different threads interleave freely. To make the
race certain rather than lucky, every thread's first transaction waits at a barrier until every
thread has planned its own: all of them read the same state, then all try to commit it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from shared.errors import ContentionError, InsufficientPointsError, PointbridgeError
from shared.jobs.audit import audit_table
from shared.ledger.commands import Authorise, Earn, Send, Spend
from shared.ledger.models import Account
from shared.program.config import Caps
from tests.integration.ingest_support import CARD, EMAIL, NOW, Clock, program, purchase
from tests.support.aws import create_table
from tests.support.services import table_services

if TYPE_CHECKING:
    from collections.abc import Callable

    from functions.services import Services


class Gate:
    """One lock per request; a barrier before each thread's first transaction."""

    def __init__(self, client: Any, parties: int) -> None:
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(parties, timeout=20)
        self._waited: set[int] = set()
        real = getattr(client, "_unlocked_call", client._make_api_call)
        client._unlocked_call = real

        def call(operation: str, params: dict[str, Any]) -> Any:
            if operation == "TransactWriteItems":
                self.arrive()
            with self._lock:
                return real(operation, params)

        client._make_api_call = call

    def arrive(self) -> None:
        me = threading.get_ident()
        if me in self._waited:
            return
        self._waited.add(me)
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            pass


@dataclass
class Race:
    services: Services
    client: Any

    def run(self, work: list[Callable[[], object]]) -> list[object]:
        gate = Gate(self.client, len(work))  # armed now: the setup's writes went through alone

        def one(task: Callable[[], object]) -> object:
            try:
                return task()
            except (InsufficientPointsError, ContentionError) as refused:
                return refused
            except PointbridgeError as refused:
                return refused
            finally:
                gate.arrive()  # a thread refused before any transaction still lets the others go

        with ThreadPoolExecutor(len(work)) as pool:
            return list(pool.map(one, work))


def _race(threads: int, *programs: Any) -> Any:
    class Context:
        def __enter__(self) -> Race:
            self._mock = mock_aws()
            self._mock.start()
            client = boto3.client("dynamodb")
            create_table(client, "race")
            clock = Clock()
            clock.now = NOW - timedelta(days=1)
            services = table_services("race", client, clock)
            for config in programs:
                services.programs.publish(config)
            clock.now = NOW
            return Race(services, client)

        def __exit__(self, *_: object) -> None:
            self._mock.stop()

    return Context()


def _earn(services: Services, member: str, points: int, ref: str, program_id: str = "demo") -> None:
    cmd = Earn(
        program=program_id, member=member, points=points, source="shop", external_id=ref, reason="x", event_time=NOW
    )
    services.ledger.earn(cmd, at=NOW)


def _audited(services: Services, what: str) -> None:
    report = audit_table(services.table)
    assert report.ok, f"{what}: the audit found {report.problems}"


def _balance(services: Services, member: str, program_id: str = "demo") -> tuple[int, int, int]:
    state = services.ledger_store.get_account(program_id, member)
    return (state.available, state.pending, state.held) if state else (0, 0, 0)


def redemptions(threads: int) -> None:
    with _race(threads, program()) as race:
        _earn(race.services, "ann", 10 * (threads // 2), "o-1")

        def redeem(n: int) -> Callable[[], object]:
            cmd = Spend(program="demo", member="ann", points=10, source="redeem", external_id=f"r-{n}", reason="reward")
            return lambda: race.services.ledger.spend(cmd)

        results = race.run([redeem(n) for n in range(threads)])
        spent = sum(1 for r in results if not isinstance(r, Exception))
        available, _, _ = _balance(race.services, "ann")
        assert spent <= threads // 2, f"{spent} redemptions of 10 from {10 * (threads // 2)} points"
        assert available == 10 * (threads // 2 - spent) >= 0, f"{available} left after {spent} redemptions"
        _audited(race.services, "redemptions")


def holds(threads: int) -> None:
    with _race(threads, program()) as race:
        _earn(race.services, "ann", 100, "o-1")

        def hold(n: int) -> Callable[[], object]:
            cmd = Authorise(
                program="demo",
                member="ann",
                points=30,
                source="checkout",
                external_id=f"c-{n}",
                reason="checkout",
                lapses_at=NOW + timedelta(hours=1),
            )
            return lambda: race.services.ledger.authorise(cmd)

        results = race.run([hold(n) for n in range(threads)])
        held = sum(1 for r in results if not isinstance(r, Exception))
        available, _, on_hold = _balance(race.services, "ann")
        assert held <= 3 and (available, on_hold) == (100 - 30 * held, 30 * held), (held, available, on_hold)
        _audited(race.services, "holds")


def exchanges(threads: int) -> None:
    other = program().model_copy(update={"program": "other", "name": "Other"})
    with _race(threads, program(), other) as race:
        _earn(race.services, "ann", 50, "o-1")

        def exchange(n: int) -> Callable[[], object]:
            cmd = Send(
                program="demo",
                member="ann",
                to_program="other",
                to_member="ann",
                points=20,
                credited=10,
                source="exchange",
                external_id=f"q-{n}",
                reason="exchanged with other",
                counter=Account.PARTNER,
            )
            return lambda: race.services.ledger.send(cmd)

        results = race.run([exchange(n) for n in range(threads)])
        sent = sum(1 for r in results if not isinstance(r, Exception))
        assert sent <= 2, f"{sent} exchanges of 20 from 50 points"
        assert _balance(race.services, "ann") == (50 - 20 * sent, 0, 0)
        assert _balance(race.services, "ann", "other") == (10 * sent, 0, 0)
        _audited(race.services, "exchanges")


def merges_and_links(threads: int) -> None:
    """Links of one card to one e-mail, support merges of the same two members, earns on both and
    redemptions, all at once: every point earned is somewhere exactly once."""
    with _race(threads, program()) as race:
        services = race.services
        services.members.claim(EMAIL.key, "m-1", provisional=False)
        services.ingest.handle(purchase("T1:R1", "40", identity=CARD, source="till:store-1"))
        _earn(services, "m-2", 30, "o-2")
        work: list[Callable[[], object]] = []
        for n in range(threads):
            kind = n % 4
            if kind == 0:
                work.append(lambda: services.ingest.link("demo", CARD, EMAIL))
            elif kind == 1:
                work.append(lambda: services.ingest.merge("demo", "m-2", "m-1", "same person, ticket 7"))
            elif kind == 2:
                order = purchase(f"T1:R{100 + n}", "10", identity=CARD, source="till:store-1")
                work.append(lambda order=order: services.ingest.handle(order))  # type: ignore[misc]
            else:
                cmd = Spend(program="demo", member="m-2", points=5, source="redeem", external_id=f"r-{n}", reason="x")
                work.append(lambda cmd=cmd: services.ledger.spend(cmd))  # type: ignore[misc]
        results = race.run(work)
        spent = 5 * sum(1 for n, r in enumerate(results) if n % 4 == 3 and not isinstance(r, Exception))
        earned = 40 + 30 + 10 * sum(1 for n, r in enumerate(results) if n % 4 == 2 and not isinstance(r, Exception))
        # Whatever lost its race, a repeat of the link and the merge finishes them
        services.ingest.link("demo", CARD, EMAIL)
        services.ingest.merge("demo", "m-2", "m-1", "same person, ticket 7")
        entries, accounts, *_ = services.ledger_store.audit_records()
        total = sum(a.available + a.pending + a.held for a in accounts)
        assert total == earned - spent, f"{total} points held, {earned} earned and {spent} spent"
        survivor = [a for a in accounts if a.available + a.pending + a.held]
        assert [a.member for a in survivor] in ([], ["m-1"]), survivor
        _audited(services, "merges and links")


def daily_cap(threads: int) -> None:
    """Concurrent orders of one member under a daily cap of 100: the day earns 100, never more."""
    capped = program(caps=Caps(per_member_per_day=100))
    with _race(threads, capped) as race:
        services = race.services
        orders = [purchase(f"o-{n}", str(Decimal(40))) for n in range(threads)]
        race.run([lambda order=order: services.ingest.handle(order) for order in orders])
        entries, accounts, *_ = services.ledger_store.audit_records()
        earned = sum(a.available + a.pending for a in accounts)
        assert earned <= 100, f"{earned} points earned in a day capped at 100"
        _audited(services, "daily cap")


SCENARIOS: dict[str, Callable[[int], None]] = {
    "redemptions": redemptions,
    "holds": holds,
    "exchanges": exchanges,
    "merges and links": merges_and_links,
    "daily cap": daily_cap,
}
