"""The ledger against a plain in-memory model, driven by hypothesis.

Random earns (active or pending), spends, holds, captures, releases, activations, voids,
reversals, clock advances with expiry, and replays of earlier commands. After every step each
member's balance equals the model's, none is negative, and the audit passes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from moto import mock_aws

from shared.errors import InsufficientPointsError, PointbridgeError
from shared.ledger.audit import audit
from shared.ledger.commands import (
    Activate,
    Authorise,
    Capture,
    Cause,
    CauseKind,
    Earn,
    ExpireLot,
    Release,
    Reverse,
    Spend,
    Void,
)
from shared.program.config import ProgramConfig
from tests.conftest import T0
from tests.support.aws import create_table
from tests.support.services import table_services

OPS = Cause(kind=CauseKind.OPERATOR, ref="ops-1")

if TYPE_CHECKING:
    from shared.ledger.models import Entry

MEMBERS = ("ann", "bob")
members = st.sampled_from(MEMBERS)  # ann is drawn far more often (shrinks towards the first)
Taken = list[tuple[str, datetime, int]]


class Model:
    """What the ledger should hold, in the plainest terms: lots by id, pending and held sums."""

    def __init__(self) -> None:
        self.lots: dict[tuple[str, str], list[Any]] = {}  # (member, lot id) -> [expires_at, remaining]
        self.pending: dict[str, tuple[str, int, datetime]] = {}  # entry id -> member, points, expiry
        self.holds: dict[str, tuple[str, int, Taken]] = {}  # hold id -> member, amount, lots taken
        self.pending_total: dict[str, int] = defaultdict(int)
        self.held_total: dict[str, int] = defaultdict(int)

    def available(self, member: str) -> int:
        return sum(rem for (m, _), (_, rem) in self.lots.items() if m == member)

    def spendable(self, member: str, now: datetime) -> int:
        return sum(rem for (m, _), (exp, rem) in self.lots.items() if m == member and exp > now)

    def take(self, member: str, points: int, now: datetime, prefer: str = "") -> Taken | None:
        if self.spendable(member, now) < points:
            return None
        usable = sorted(
            (exp, lot_id) for (m, lot_id), (exp, rem) in self.lots.items() if m == member and exp > now and rem > 0
        )
        usable.sort(key=lambda lot: lot[1] != prefer)
        taken: Taken = []
        left = points
        for exp, lot_id in usable:
            if not left:
                break
            n = min(self.lots[(member, lot_id)][1], left)
            self.lots[(member, lot_id)][1] -= n
            if self.lots[(member, lot_id)][1] == 0:
                del self.lots[(member, lot_id)]
            taken.append((lot_id, exp, n))
            left -= n
        return taken

    def restore(self, member: str, entry_id: str, taken: Taken) -> None:
        for i, (_, exp, n) in enumerate(taken):
            self.lots[(member, f"{entry_id}/{i}")] = [exp, n]


def slices(taken: Taken, *, skip: int = 0, take: int | None = None) -> Taken:
    out: Taken = []
    left = sum(n for *_, n in taken) if take is None else take
    for lot_id, exp, n in taken:
        cut = min(n, skip)
        n -= cut
        skip -= cut
        n = min(n, left)
        if n:
            out.append((lot_id, exp, n))
            left -= n
    return out


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mock = mock_aws()
        self.mock.start()
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "points-model")
        self.now = T0
        services = table_services("points-model", client, clock=lambda: self.now, config_cache_seconds=None)
        self.store = services.ledger_store
        services.programs.publish(ProgramConfig(program="demo", name="Model"))
        self.ledger = services.ledger
        self.model = Model()
        self.counter = 0
        self.done: list[tuple[Any, Entry]] = []  # every command that succeeded, with its reply
        self.earns: list[tuple[str, str]] = []  # (member, entry id) of credits that can be reversed
        self.debits: list[tuple[str, str]] = []  # (member, entry id) of spends and captures
        self.debit_lots: dict[str, tuple[str, Taken]] = {}
        self.reversed: set[str] = set()

    def teardown(self) -> None:
        self.mock.stop()

    @initialize(points=st.integers(50, 200))
    def start(self, points: int) -> None:
        # Every run starts with points on the books, so debits, holds and expiry get exercised.
        self.earn("ann", points, 3, False)
        self.earn("ann", points // 2, 40, False)

    def _id(self) -> str:
        self.counter += 1
        return f"x{self.counter}"

    def _remember(self, command: Any, entry: Entry) -> None:
        self.done.append((command, entry))

    @rule(member=members, points=st.integers(1, 60), days=st.sampled_from([1, 3, 10, 40]), pending=st.booleans())
    def earn_rule(self, member: str, points: int, days: int, pending: bool) -> None:
        self.earn(member, points, days, pending)

    def earn(self, member: str, points: int, days: int, pending: bool) -> None:
        expires = self.now + timedelta(days=days)
        cmd = Earn(
            program="demo",
            member=member,
            points=points,
            source="shop",
            external_id=self._id(),
            reason="order",
            event_time=self.now,
            expires_at=expires,
            pending=pending,
        )
        entry = self.ledger.earn(cmd)
        self._remember(cmd, entry)
        if pending:
            self.model.pending[entry.entry_id] = (member, points, expires)
            self.model.pending_total[member] += points
        else:
            self.model.lots[(member, entry.entry_id)] = [expires, points]
            self.earns.append((member, entry.entry_id))

    @rule(member=members, points=st.integers(1, 80))
    def spend(self, member: str, points: int) -> None:
        cmd = Spend(program="demo", member=member, points=points, source="web", external_id=self._id(), reason="r")
        expected = self.model.take(member, points, self.now)
        try:
            entry = self.ledger.spend(cmd)
        except PointbridgeError as error:
            assert expected is None, f"ledger refused a spend the model allows: {error}"
            return
        assert expected is not None, "ledger allowed a spend the model refuses"
        self._remember(cmd, entry)
        self.debits.append((member, entry.entry_id))
        self.debit_lots[entry.entry_id] = (member, expected)

    @rule(member=members, points=st.integers(1, 50))
    def authorise(self, member: str, points: int) -> None:
        cmd = Authorise(
            program="demo",
            member=member,
            points=points,
            source="pos",
            external_id=self._id(),
            reason="checkout",
            lapses_at=self.now + timedelta(hours=1),
        )
        expected = self.model.take(member, points, self.now)
        try:
            entry = self.ledger.authorise(cmd)
        except PointbridgeError:
            assert expected is None
            return
        assert expected is not None
        self._remember(cmd, entry)
        self.model.holds[entry.entry_id] = (member, points, expected)
        self.model.held_total[member] += points

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data(), capture=st.booleans())
    def settle_hold(self, data: st.DataObject, capture: bool) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.model.holds)))
        member, amount, taken = self.model.holds.pop(hold_id)
        self.model.held_total[member] -= amount
        settle_id = f"settle:{hold_id}"
        if capture:
            points = data.draw(st.integers(1, amount))
            cmd: Any = Capture(program="demo", member=member, hold_id=hold_id, points=points)
            entry = self.ledger.capture(cmd)
            self.model.restore(member, settle_id, slices(taken, skip=points))
            self.debits.append((member, entry.entry_id))
            self.debit_lots[entry.entry_id] = (member, slices(taken, take=points))
        else:
            cmd = Release(program="demo", member=member, hold_id=hold_id)
            entry = self.ledger.release(cmd)
            self.model.restore(member, settle_id, taken)
        self._remember(cmd, entry)

    @precondition(lambda self: self.model.pending)
    @rule(data=st.data(), keep=st.booleans())
    def settle_pending(self, data: st.DataObject, keep: bool) -> None:
        entry_id = data.draw(st.sampled_from(sorted(self.model.pending)))
        member, points, expires = self.model.pending.pop(entry_id)
        self.model.pending_total[member] -= points
        if keep:
            cmd: Any = Activate(program="demo", member=member, entry_id=entry_id)
            entry = self.ledger.activate(cmd)
            self.model.lots[(member, entry.entry_id)] = [expires, points]
            self.earns.append((member, entry.entry_id))
        else:
            cmd = Void(program="demo", member=member, entry_id=entry_id, cause=OPS)
            entry = self.ledger.void(cmd)
        self._remember(cmd, entry)

    @precondition(lambda self: self.earns)
    @rule(data=st.data())
    def reverse_credit(self, data: st.DataObject) -> None:
        member, entry_id = data.draw(st.sampled_from(self.earns))
        if entry_id in self.reversed:
            return
        original = self.store.get_entry("demo", entry_id)
        assert original is not None
        points = sum(p.amount for p in original.postings if p.account == "available")
        cmd = Reverse(program="demo", member=member, entry_id=entry_id, reason="order cancelled", cause=OPS)
        expected = self.model.take(member, points, self.now, prefer=entry_id)
        try:
            entry = self.ledger.reverse(cmd)
        except InsufficientPointsError:
            assert expected is None
            return
        assert expected is not None
        self.reversed.add(entry_id)
        self._remember(cmd, entry)

    @precondition(lambda self: self.debits)
    @rule(data=st.data())
    def reverse_debit(self, data: st.DataObject) -> None:
        member, entry_id = data.draw(st.sampled_from(self.debits))
        if entry_id in self.reversed:
            return
        cmd = Reverse(program="demo", member=member, entry_id=entry_id, reason="refund", cause=OPS)
        entry = self.ledger.reverse(cmd)
        self.model.restore(member, entry.entry_id, self.debit_lots[entry_id][1])
        self.reversed.add(entry_id)
        self._remember(cmd, entry)

    @rule(days=st.integers(1, 15))
    def advance_and_expire(self, days: int) -> None:
        self.now += timedelta(days=days)
        for member in MEMBERS:
            for lot in self.ledger.lots("demo", member) if self._has_account(member) else []:
                if lot.expired(self.now):
                    self.ledger.expire_lot(ExpireLot(program="demo", member=member, lot_id=lot.lot_id))
        self.model.lots = {k: v for k, v in self.model.lots.items() if v[0] > self.now}

    @precondition(lambda self: self.done)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        command, first = data.draw(st.sampled_from(self.done))
        methods: dict[Any, Any] = {
            Earn: self.ledger.earn,
            Spend: self.ledger.spend,
            Authorise: self.ledger.authorise,
            Capture: self.ledger.capture,
            Release: self.ledger.release,
            Activate: self.ledger.activate,
            Void: self.ledger.void,
            Reverse: self.ledger.reverse,
        }
        assert methods[type(command)](command) == first

    def _has_account(self, member: str) -> bool:
        return self.store.get_account("demo", member) is not None

    @invariant()
    def balances_match_the_model(self) -> None:
        for member in MEMBERS:
            state = self.store.get_account("demo", member)
            available, pending, held = (state.available, state.pending, state.held) if state else (0, 0, 0)
            assert min(available, pending, held) >= 0
            assert available == self.model.available(member)
            assert pending == self.model.pending_total[member]
            assert held == self.model.held_total[member]

    @invariant()
    def audit_passes(self) -> None:
        report = audit(*self.store.ledger_records())
        assert report.ok, report.problems


LedgerMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerAgainstModel = LedgerMachine.TestCase
