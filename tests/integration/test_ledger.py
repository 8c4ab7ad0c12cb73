"""Worked examples: one story per test, balances checked after every step."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from shared.errors import (
    AlreadySettledError,
    CaptureExceedsHoldError,
    IdempotencyConflictError,
    InsufficientPointsError,
    InvalidInputError,
    NotReversibleError,
    UnknownEntryError,
    UnknownMemberError,
    UnknownProgramError,
)
from shared.infra.settings import LOCAL_CHAIN_KEY
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
from shared.ledger.models import Account, EntryKind
from tests.conftest import T0

OPS = Cause(kind=CauseKind.OPERATOR, ref="ops-1")

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore


def earn(member: str = "ann", points: int = 100, ext: str = "o-1", **extra: object) -> Earn:
    fields: dict[str, object] = {
        "program": "demo",
        "member": member,
        "points": points,
        "source": "shop",
        "external_id": ext,
        "reason": "order",
        "event_time": T0,
    }
    fields.update(extra)
    return Earn.model_validate(fields)


def spend(member: str = "ann", points: int = 10, ext: str = "r-1") -> Spend:
    return Spend(program="demo", member=member, points=points, source="web", external_id=ext, reason="reward")


def balances(ledger: Ledger, member: str = "ann") -> tuple[int, int, int]:
    state = ledger.account("demo", member)
    return state.available, state.pending, state.held


def assert_audit_ok(store: DynamoLedgerStore) -> None:
    report = audit(*store.ledger_records())
    assert report.ok, report.problems


def test_earn_online_spend_in_store_refund_and_expire(ledger: Ledger, store: DynamoLedgerStore) -> None:
    # Given an online order worth 100 points
    first = ledger.earn(earn(points=100, expires_at=T0 + timedelta(days=30)))
    assert balances(ledger) == (100, 0, 0)
    assert first.seq == 1 and first.kind is EntryKind.EARN

    # When a second order earns 50 points expiring later, and the member spends 120 in store
    ledger.earn(earn(points=50, ext="o-2", expires_at=T0 + timedelta(days=90)))
    spent = ledger.spend(spend(points=120))

    # Then the earliest-expiring lot is consumed first
    assert balances(ledger) == (30, 0, 0)
    assert [(m.lot_id, m.amount) for m in spent.lots] == [("shop:o-1", -100), ("shop:o-2", -20)]

    # When the spend is refunded, the points come back with their original expiry dates
    ledger.reverse(Reverse(program="demo", member="ann", entry_id="web:r-1", reason="refund", cause=OPS))
    assert balances(ledger) == (150, 0, 0)
    lots = ledger.lots("demo", "ann")
    assert [lot.expires_at for lot in lots] == sorted(lot.expires_at for lot in lots)
    assert sum(lot.remaining for lot in lots) == 150

    # When the first lot's date passes, it can no longer be spent, even before the expiry job
    later = T0 + timedelta(days=31)
    with pytest.raises(InsufficientPointsError):
        ledger.spend(spend(points=51, ext="r-2"), at=later)

    # And expiring it moves exactly its unspent remainder to breakage
    expired = [
        ledger.expire_lot(ExpireLot(program="demo", member="ann", lot_id=lot.lot_id), at=later)
        for lot in ledger.lots("demo", "ann")
        if lot.expired(later)
    ]
    assert sum(e.delta(Account.BREAKAGE) for e in expired) == 100
    assert balances(ledger) == (50, 0, 0)
    assert_audit_ok(store)


def test_replayed_earn_yields_one_entry_and_the_same_reply(ledger: Ledger, store: DynamoLedgerStore) -> None:
    # Given an earn
    command = earn(points=70)

    # When it is sent three times
    replies = [ledger.earn(command) for _ in range(3)]

    # Then one entry exists and every reply equals the first
    assert replies[0] == replies[1] == replies[2]
    assert balances(ledger) == (70, 0, 0)
    assert len(store.entries("demo", "ann")) == 1


def test_replay_with_a_different_payload_is_a_conflict_and_writes_nothing(
    ledger: Ledger, store: DynamoLedgerStore
) -> None:
    ledger.earn(earn(points=70))
    with pytest.raises(IdempotencyConflictError):
        ledger.earn(earn(points=71))
    assert balances(ledger) == (70, 0, 0)
    assert len(store.entries("demo", "ann")) == 1


def test_rejected_spend_is_evaluated_afresh_on_retry(ledger: Ledger) -> None:
    # Given a member with 30 points whose spend of 50 is refused
    ledger.earn(earn(points=30))
    with pytest.raises(InsufficientPointsError) as refused:
        ledger.spend(spend(points=50))
    assert refused.value.context == {"needed": 50, "available": 30}

    # When the member earns more and the same request is retried
    ledger.earn(earn(points=30, ext="o-2"))
    retried = ledger.spend(spend(points=50))

    # Then the retry succeeds: a refusal records nothing, so it never sticks
    assert retried.delta(Account.AVAILABLE) == -50
    assert balances(ledger) == (10, 0, 0)


def test_replay_of_a_successful_spend_returns_it_even_when_the_balance_no_longer_covers_it(
    ledger: Ledger,
) -> None:
    ledger.earn(earn(points=30))
    first = ledger.spend(spend(points=30))
    assert ledger.spend(spend(points=30)) == first
    assert balances(ledger) == (0, 0, 0)


def test_pending_earn_activates_or_voids_once(ledger: Ledger, store: DynamoLedgerStore) -> None:
    # Given two orders whose points wait for the return window
    ledger.earn(earn(points=40, pending=True))
    ledger.earn(earn(points=60, ext="o-2", pending=True))
    assert balances(ledger) == (0, 100, 0)
    with pytest.raises(InsufficientPointsError):
        ledger.spend(spend(points=1))

    # When one window closes and the other order is returned
    ledger.activate(Activate(program="demo", member="ann", entry_id="shop:o-1"))
    ledger.void(Void(program="demo", member="ann", entry_id="shop:o-2", cause=OPS))

    # Then only the kept order's points are spendable, and each settles once
    assert balances(ledger) == (40, 0, 0)
    with pytest.raises(AlreadySettledError):
        ledger.void(Void(program="demo", member="ann", entry_id="shop:o-1", cause=OPS))
    assert ledger.activate(Activate(program="demo", member="ann", entry_id="shop:o-1")).kind is EntryKind.ACTIVATE
    assert balances(ledger) == (40, 0, 0)
    assert_audit_ok(store)


def test_checkout_hold_captured_in_part_gives_back_the_rest(ledger: Ledger, store: DynamoLedgerStore) -> None:
    # Given 100 points and a checkout that holds 80
    ledger.earn(earn(points=100))
    hold = ledger.authorise(
        Authorise(
            program="demo",
            member="ann",
            points=80,
            source="pos",
            external_id="cart-9",
            reason="checkout",
            lapses_at=T0 + timedelta(minutes=15),
        )
    )
    assert balances(ledger) == (20, 0, 80)

    # When the till captures 50
    with pytest.raises(CaptureExceedsHoldError):
        ledger.capture(Capture(program="demo", member="ann", hold_id=hold.entry_id, points=81))
    captured = ledger.capture(Capture(program="demo", member="ann", hold_id=hold.entry_id, points=50))

    # Then 50 are redeemed, 30 come back, and the hold cannot be released afterwards
    assert balances(ledger) == (50, 0, 0)
    assert captured.delta(Account.REDEMPTION) == 50
    with pytest.raises(AlreadySettledError):
        ledger.release(Release(program="demo", member="ann", hold_id=hold.entry_id))

    # When the captured order is refunded, the 50 come back too
    ledger.reverse(Reverse(program="demo", member="ann", entry_id=captured.entry_id, reason="returned", cause=OPS))
    assert balances(ledger) == (100, 0, 0)
    assert_audit_ok(store)


def test_released_hold_restores_points(ledger: Ledger, store: DynamoLedgerStore) -> None:
    ledger.earn(earn(points=100))
    hold = ledger.authorise(
        Authorise(
            program="demo",
            member="ann",
            points=100,
            source="web",
            external_id="cart-1",
            reason="checkout",
            lapses_at=T0 + timedelta(minutes=15),
        )
    )
    ledger.release(Release(program="demo", member="ann", hold_id=hold.entry_id))
    assert balances(ledger) == (100, 0, 0)
    with pytest.raises(NotReversibleError):
        ledger.reverse(Reverse(program="demo", member="ann", entry_id=hold.entry_id, reason="x", cause=OPS))
    assert_audit_ok(store)


def test_reversing_an_earn_claws_back_its_own_lot_first(ledger: Ledger, store: DynamoLedgerStore) -> None:
    ledger.earn(earn(points=100, expires_at=T0 + timedelta(days=10)))
    ledger.earn(earn(points=40, ext="o-2", expires_at=T0 + timedelta(days=300)))
    reversal = ledger.reverse(
        Reverse(program="demo", member="ann", entry_id="shop:o-2", reason="order cancelled", cause=OPS)
    )
    assert [(m.lot_id, m.amount) for m in reversal.lots] == [("shop:o-2", -40)]
    assert balances(ledger) == (100, 0, 0)
    assert_audit_ok(store)


@pytest.mark.parametrize("points", [0, -5, 1.5, "10", True, 10**12])
def test_points_must_be_whole_positive_and_sane(points: object) -> None:
    with pytest.raises(ValueError):
        earn(points=points)  # type: ignore[arg-type]


def test_bad_requests_write_nothing(ledger: Ledger, services: Services) -> None:
    with pytest.raises(UnknownProgramError):
        ledger.earn(earn().model_copy(update={"program": "nope"}))
    with pytest.raises(UnknownMemberError):
        ledger.spend(spend(member="ghost"))
    with pytest.raises(UnknownEntryError):
        ledger.capture(Capture(program="demo", member="ghost", hold_id="web:nothing"))
    with pytest.raises(InvalidInputError):
        ledger.earn(earn(expires_at=T0 - timedelta(days=1)))
    assert list(services.table.scan()) == [
        item for item in services.table.scan() if item["type"] in ("config", "live_config")
    ]


def test_audit_detects_a_tampered_entry(ledger: Ledger, store: DynamoLedgerStore) -> None:
    ledger.earn(earn(points=100))
    ledger.spend(spend(points=10))
    entries, accounts, lots, holds = store.ledger_records()
    tampered = [e.model_copy(update={"reason": "edited"}) if e.seq == 1 else e for e in entries]
    key = LOCAL_CHAIN_KEY.encode()
    found = audit(tampered, accounts, lots, holds, chain_key=key)
    assert not found.ok
    assert found.accounts_changed == ["demo/ann"]
    assert audit(entries, accounts, lots, holds, chain_key=key).ok
    # Without the key the keyed hashes go unchecked, and the report says how many
    assert audit(tampered, accounts, lots, holds).unverified == 2
