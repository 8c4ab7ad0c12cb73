"""Property: over random earns, spends and expiry runs, expiry takes exactly the unspent remainders
of the expired lots, and a spend never takes a later-expiring lot before an earlier one.

Run under two policies: plain dates, and expiry extended by activity (one month after the member's
last earn or spend, to the end of that day). Some earns arrive back-dated, already past their date
(a late partner file): they are never spendable and expire at the next run."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import boto3
import hypothesis.strategies as st
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from moto import mock_aws

from shared.errors import InsufficientPointsError, UnknownMemberError
from shared.jobs.expiry import ExpiryJob
from shared.jobs.walk import JobInput
from shared.program.config import ExpiryPolicy, ProgramConfig
from tests.support.aws import create_table
from tests.support.jobs import PUBLISHED, make_world
from tests.support.services import table_services

members = st.sampled_from(("ann", "bob"))
earn = st.tuples(st.just("earn"), members, st.integers(1, 50), st.integers(1, 240))  # expiry in hours
late = st.tuples(st.just("late"), members, st.integers(1, 50), st.integers(2, 240))  # happened hours ago
spend = st.tuples(st.just("spend"), members, st.integers(1, 80), st.just(0))
advance = st.tuples(st.just("advance"), st.just(""), st.integers(1, 240), st.just(0))  # hours, then a run


def kept_until(last_activity: datetime | None) -> datetime | None:
    """One month after the last activity, to the end of that (UTC) day: the model's own arithmetic."""
    if last_activity is None:
        return None
    return datetime.combine((last_activity + relativedelta(months=1)).date(), time(23, 59, 59), tzinfo=UTC)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(st.one_of(earn, late, spend, advance), min_size=1, max_size=14))
def test_expiry_takes_exactly_the_remainders_and_spends_go_earliest_first(
    extended: bool, ops: list[tuple[str, str, int, int]]
) -> None:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, "points-prop")
        policy = ExpiryPolicy(months=1, extend_on_activity=extended)
        world = make_world(
            table_services("points-prop", client), ProgramConfig(program="demo", name="D", expiry=policy)
        )
        job = ExpiryJob(world.ledger, world.programs, world.jobs)
        now = PUBLISHED + timedelta(hours=1)
        model: dict[str, dict[str, list[Any]]] = {"ann": {}, "bob": {}}  # lot id -> [expires, remaining]
        active: dict[str, datetime | None] = {"ann": None, "bob": None}
        breakage = 0

        def effective(member: str, expires: datetime) -> datetime:
            kept = kept_until(active[member]) if extended else None
            return max(expires, kept) if kept else expires

        for n, (op, member, amount, hours) in enumerate(ops):
            if op in ("earn", "late"):
                happened = now if op == "earn" else now - timedelta(hours=hours)
                expires = now + timedelta(hours=hours) if op == "earn" else happened + timedelta(hours=hours // 2 or 1)
                lot = world.earn(member, amount, f"o-{n}", happened, expires_at=expires, written_at=now)
                model[member][lot] = [expires, amount]
                active[member] = max(filter(None, (active[member], happened)))
            elif op == "spend":
                usable = sorted(
                    (exp, lot_id, rem)
                    for lot_id, (exp, rem) in model[member].items()
                    if effective(member, exp) > now and rem > 0
                )
                try:
                    entry = world.spend(member, amount, f"s-{n}", now)
                except (InsufficientPointsError, UnknownMemberError):
                    assert sum(rem for _, _, rem in usable) < amount
                    continue
                active[member] = now
                taken = [(m.lot_id, -m.amount) for m in entry.lots]
                # Earliest expiry first: the lots taken are a prefix of the usable lots in that order,
                # each taken whole except possibly the last.
                assert [lot_id for lot_id, _ in taken] == [lot_id for _, lot_id, _ in usable[: len(taken)]]
                for i, (lot_id, points) in enumerate(taken):
                    if i < len(taken) - 1:
                        assert points == model[member][lot_id][1]
                    model[member][lot_id][1] -= points
            else:
                now += timedelta(hours=amount)
                due = [
                    (m, lot_id)
                    for m, lots in model.items()
                    for lot_id, (exp, _) in lots.items()
                    if effective(m, exp) <= now
                ]
                expected = sum(model[m][lot_id][1] for m, lot_id in due)
                job.run(JobInput(now=now, simulate=True))
                breakage += expected
                assert world.breakage() == breakage
                for m, lot_id in due:
                    del model[m][lot_id]
        for member, lots in model.items():
            if lots:
                state = world.ledger.account("demo", member)
                assert state.available == sum(rem for _, rem in lots.values())
                assert state.active_at == active[member]
