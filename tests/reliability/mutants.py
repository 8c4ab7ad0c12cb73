"""Negative controls: the real code with one defect put in by monkeypatching, in this process.

Each mutant names the proofs that must fail on it (a representative subset of the suite); a mutant
is caught when one of them fails with an AssertionError. A proof that fails otherwise (the mutant
broke it outright) is reported as such, not counted as caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from shared.errors import InsufficientPointsError
from shared.ledger.commands import Earn, Spend
from tests.integration.ingest_support import NOW, program
from tests.reliability.concurrency import SCENARIOS, _race

if TYPE_CHECKING:
    from collections.abc import Callable


def balance_condition_dropped(mp: pytest.MonkeyPatch) -> None:
    """The account's sequence condition and the lots' remaining-points conditions left out."""
    import shared.ledger.store as store

    real = store.transaction_items

    def unguarded(table: str, change: Any) -> list[Any]:
        items = real(table, change)
        for item in items:
            for action in ("Put", "Update", "Delete"):
                body = item.get(action)
                if body and body.get("ConditionExpression") in ("#seq = :expected", "remaining = :before"):
                    body.pop("ConditionExpression")
                    body.pop("ExpressionAttributeNames", None) if action == "Put" else None
                    values = body.get("ExpressionAttributeValues", {})
                    values.pop(":expected", None)
                    values.pop(":before", None)
                    if not values:
                        body.pop("ExpressionAttributeValues", None)
        return items

    mp.setattr(store, "transaction_items", unguarded)


def dedup_on_message_id(mp: pytest.MonkeyPatch) -> None:
    """The ingest handler keys each event on the SQS message id instead of the sender's id."""
    import functions.ingest.app as app

    real = app.read_message

    def deliver(record: Any) -> None:
        event = real(record.body)
        keyed = event.model_copy(update={"external_id": f"{event.external_id}:{record.message_id}"})
        app.services().ingest.handle(keyed)

    mp.setattr(app, "deliver", deliver)


def unconditional_counter(mp: pytest.MonkeyPatch) -> None:
    """A tally (a day's points under a cap, an order's refunded money) added to without its condition."""
    import shared.ledger.store as store

    real = store.tally_update

    def unconditional(table: str, tally: Any) -> dict[str, Any]:
        update = real(table, tally)
        update.pop("ConditionExpression", None)
        update.get("ExpressionAttributeValues", {}).pop(":expected", None)
        return update

    mp.setattr(store, "tally_update", unconditional)


def handler_swallows_errors(mp: pytest.MonkeyPatch) -> None:
    """The ingest handler catches whatever fails and reports the record as done."""
    import functions.ingest.app as app

    real = app.deliver

    def deliver(record: Any) -> None:
        try:
            real(record)
        except Exception:  # noqa: BLE001 - the defect itself
            return

    mp.setattr(app, "deliver", deliver)


def expiry_unchecked_at_redemption(mp: pytest.MonkeyPatch) -> None:
    """A debit takes lots whatever their expiry (as if it were always the epoch)."""
    import shared.ledger.debits as debits

    real = debits.take_from_lots
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def take(lots: Any, points: int, at: datetime, **kwargs: Any) -> Any:
        return real(lots, points, epoch, **kwargs)

    mp.setattr(debits, "take_from_lots", take)


def void_without_cause(mp: pytest.MonkeyPatch) -> None:
    """A take-back written without naming its cause."""
    from shared.ledger.commands import Cause

    mp.setattr(Cause, "details", lambda self: {})


# A proof the suite runs: raises AssertionError when what it proves does not hold.


def expired_points_cannot_be_spent() -> None:
    """Points past their expiry cannot be redeemed, though the expiry job has not run yet."""
    with _race(1, program()) as race:
        earn = Earn(
            program="demo",
            member="ann",
            points=50,
            source="shop",
            external_id="o-1",
            reason="x",
            event_time=NOW - timedelta(days=400),
            expires_at=NOW - timedelta(days=1),
        )
        race.services.ledger.earn(earn, at=NOW - timedelta(days=400))
        spend = Spend(program="demo", member="ann", points=20, source="redeem", external_id="r-1", reason="x")
        try:
            race.services.ledger.spend(spend, at=NOW)
        except InsufficientPointsError:
            return
        raise AssertionError("20 points were spent from a lot that expired the day before")


def _delivery(copies: int, fault_rate: float) -> Callable[[], None]:
    def prove() -> None:
        from tests.reliability.proofs import delivery_proof

        delivery_proof(20261207, rounds=1, copies=copies, fault_rate=fault_rate)

    return prove


def _crash(name: str) -> Callable[[], None]:
    def prove() -> None:
        from tests.reliability.proofs import crash_proof

        crash_proof([name])

    return prove


@dataclass(frozen=True)
class Mutant:
    apply: Callable[[pytest.MonkeyPatch], None]
    proofs: tuple[Callable[[], None], ...]


MUTANTS: dict[str, Mutant] = {
    "balance condition dropped": Mutant(balance_condition_dropped, (lambda: SCENARIOS["redemptions"](8),)),
    "dedup keyed on the SQS message id": Mutant(dedup_on_message_id, (_delivery(3, 0.0),)),
    "unconditional counter": Mutant(unconditional_counter, (lambda: SCENARIOS["daily cap"](8),)),
    "handler swallows an error and reports success": Mutant(handler_swallows_errors, (_delivery(1, 0.15),)),
    "expiry not checked at redemption": Mutant(expiry_unchecked_at_redemption, (expired_points_cannot_be_spent,)),
    "void without a cause": Mutant(void_without_cause, (_crash("a refund voiding its order and the referral"),)),
}


def caught(name: str) -> str:
    """Run the mutant's proofs with it in place; the failure that caught it ('' if none did)."""
    mutant = MUTANTS[name]
    with pytest.MonkeyPatch.context() as mp:
        mutant.apply(mp)
        for prove in mutant.proofs:
            try:
                prove()
            except AssertionError as failure:
                return str(failure).splitlines()[0][:200] or "AssertionError"
    return ""
