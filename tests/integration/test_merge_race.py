"""A merge closes the merged account in the ledger: whatever raced it lands on the survivor.

The races are run deterministically: `RacingStore` is the real DynamoDB store with one hook that
runs the link in the instant between an operation's read and its commit, the interleaving that
used to strand points on the emptied provisional account.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from shared.earning.core import provisional_member
from shared.errors import AccountClosedError
from shared.ledger.audit import audit
from shared.ledger.commands import Authorise, Capture, Earn, ExpireLot, Release, Send, Spend, Transfer
from shared.ledger.models import Account, EntryKind
from shared.ledger.store import DynamoLedgerStore
from tests.conftest import T0
from tests.integration.ingest_support import (
    CARD,
    EMAIL,
    Clock,
    account,
    audited,
    program,
    purchase,
    refund,
    wire,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from functions.services import Services
    from shared.earning.ingest import Ingest
    from shared.infra.table import Table
    from shared.ledger.contract import Change
    from shared.ledger.ledger import Ledger

TILL = "till:store-1"


class RacingStore(DynamoLedgerStore):
    """The real store; `before(entry_id, action)` runs `action` once, just before that entry's commit."""

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self._hooks: dict[str, Callable[[], object]] = {}
        self.raced: list[str] = []

    def before(self, entry_id: str, action: Callable[[], object]) -> None:
        self._hooks[entry_id] = action

    def commit(self, change: Change) -> None:
        for entry in change.entries:
            action = self._hooks.pop(entry.entry_id, None)
            if action is not None:
                action()
                self.raced.append(entry.entry_id)
        super().commit(change)


@pytest.fixture
def racing(services: Services) -> RacingStore:
    """The services' ledger store, swapped for the racing one before the ledger or ingest is built on it."""
    assert "ledger_store" not in vars(services)
    racing = RacingStore(services.table)
    services.ledger_store = racing
    return racing


def registered_member_with_an_order(services: Services, ingest: Ingest) -> None:
    services.members.claim(EMAIL.key, "m-1", provisional=False)
    ingest.handle(purchase("1001", "40", identity=EMAIL))


@pytest.mark.parametrize("window", [0, 30], ids=["available", "pending"])
def test_an_earn_that_resolved_the_provisional_member_just_before_the_link_lands_on_the_survivor(
    services: Services, racing: RacingStore, window: int
) -> None:
    ingest = wire(services, program(return_window_days=window), Clock())
    card_member = provisional_member(CARD)
    # Given m-1 (registered, 40 points) and a till card nobody has claimed, which earned 64 points
    registered_member_with_an_order(services, ingest)
    ingest.handle(purchase("T1:R1", "64", identity=CARD, source=TILL))
    points = (104, 0) if window == 0 else (0, 104)

    # When the card's next purchase has read the provisional member, and the card is linked to m-1
    # before that purchase commits
    racing.before(f"{TILL}:T1:R2", lambda: ingest.link("demo", CARD, EMAIL))
    outcome = ingest.handle(purchase("T1:R2", "30", identity=CARD, source=TILL))

    # Then the purchase is posted on m-1, exactly once, and nothing is left on the provisional account
    assert racing.raced == [f"{TILL}:T1:R2"]
    assert (outcome.status, outcome.member, outcome.points) == ("posted", "m-1", 30)
    entry = racing.get_entry("demo", f"{TILL}:T1:R2")
    assert entry is not None and entry.member == "m-1"
    assert account(racing, card_member) == (0, 0)
    assert account(racing, "m-1") == (points[0] + 30 * (window == 0), points[1] + 30 * (window > 0))
    closed = racing.get_account("demo", card_member)
    assert closed is not None and closed.merged_into == "m-1"
    audited(racing)

    # And a redelivery of that purchase changes nothing
    assert ingest.handle(purchase("T1:R2", "30", identity=CARD, source=TILL)).status == "replayed"
    assert account(racing, card_member) == (0, 0)
    audited(racing)


def test_the_first_earn_of_a_stranger_racing_the_link_closes_an_account_that_never_opened(
    services: Services,
    racing: RacingStore,
) -> None:
    ingest = wire(services, program(), Clock())
    card_member = provisional_member(CARD)
    registered_member_with_an_order(services, ingest)

    # When a card nobody knows buys, and the card is linked to m-1 between that purchase's read and its commit
    racing.before(f"{TILL}:T1:R1", lambda: ingest.link("demo", CARD, EMAIL))
    outcome = ingest.handle(purchase("T1:R1", "64", identity=CARD, source=TILL))

    # Then the link closed the provisional account (created closed, no entry), and the points are m-1's
    assert racing.raced == [f"{TILL}:T1:R1"]
    assert (outcome.status, outcome.member) == ("posted", "m-1")
    closed = racing.get_account("demo", card_member)
    assert closed is not None and (closed.merged_into, closed.seq, closed.available) == ("m-1", 0, 0)
    assert racing.entries("demo", card_member) == []
    assert account(racing, "m-1") == (104, 0)
    audited(racing)


def test_a_refund_that_found_the_points_on_the_provisional_member_claws_back_from_the_survivor(
    services: Services,
    racing: RacingStore,
) -> None:
    ingest = wire(services, program(), Clock())
    card_member = provisional_member(CARD)
    registered_member_with_an_order(services, ingest)
    ingest.handle(purchase("T1:R1", "64", identity=CARD, source=TILL))

    # When a refund of a quarter of the card's order is about to claw back, and the card is linked first
    racing.before(f"{TILL}:F1", lambda: ingest.link("demo", CARD, EMAIL))
    outcome = ingest.handle(refund("F1", "T1:R1", "16", source=TILL))

    # Then the clawback is taken from m-1, where the points went
    assert (outcome.status, outcome.member, outcome.points) == ("posted", "m-1", 16)
    assert account(racing, "m-1") == (40 + 64 - 16, 0)
    assert account(racing, card_member) == (0, 0)
    audited(racing)


# --- The ledger's side: a closed account takes nothing and gives nothing -------------------------


def earn(ledger: Ledger, member: str, points: int, order: str, expires_at: datetime | None = None) -> None:
    cmd = Earn(
        program="demo",
        member=member,
        points=points,
        source="shop",
        external_id=order,
        reason="order",
        event_time=T0 - timedelta(days=30),
        expires_at=expires_at,
    )
    ledger.earn(cmd, at=T0)


def merge(ledger: Ledger, merged: str, survivor: str) -> None:
    ledger.transfer(
        Transfer(program="demo", member=merged, to_member=survivor, external_id=f"merge:{merged}", reason="merge"),
        at=T0,
    )


def test_a_closed_account_refuses_credits_and_debits_naming_the_survivor(
    store: DynamoLedgerStore, ledger: Ledger
) -> None:
    # Given pv-1 merged into m-1
    earn(ledger, "pv-1", 50, "o1")
    earn(ledger, "m-1", 10, "o2")
    merge(ledger, "pv-1", "m-1")
    assert account(store, "m-1") == (60, 0)
    gift = Send(
        program="demo",
        member="m-1",
        to_program="demo",
        to_member="pv-1",
        points=5,
        credited=5,
        source="gift",
        external_id="g1",
        reason="gift",
    )
    spend = Spend(program="demo", member="pv-1", points=1, source="shop", external_id="s1", reason="reward")
    refusals: list[Callable[[], object]] = [
        lambda: earn(ledger, "pv-1", 5, "o3"),
        lambda: ledger.spend(spend, at=T0),
        lambda: ledger.send(gift, at=T0),
        lambda: merge(ledger, "m-2", "pv-1"),  # nothing merges into a closed account either
    ]
    for refused in refusals:
        # When anything would credit or debit pv-1
        with pytest.raises(AccountClosedError) as caught:
            refused()
        # Then it is refused, naming the member to use instead
        assert caught.value.survivor == "m-1"
        assert caught.value.code == "account_closed"
    assert account(store, "pv-1") == (0, 0)
    assert account(store, "m-1") == (60, 0)
    audited(store)


def test_holds_move_with_the_merge_and_settle_on_the_survivor(store: DynamoLedgerStore, ledger: Ledger) -> None:
    # Given pv-1 with two checkout holds open (30 and 20 of its 100 points)
    earn(ledger, "pv-1", 100, "o1")
    for ref, points in (("h1", 30), ("h2", 20)):
        hold = Authorise(
            program="demo",
            member="pv-1",
            points=points,
            source="checkout",
            external_id=ref,
            reason="checkout",
            lapses_at=T0 + timedelta(days=1),
        )
        ledger.authorise(hold, at=T0)

    # When pv-1 is merged into m-1
    merge(ledger, "pv-1", "m-1")

    # Then m-1 holds the holds, and the merged account holds nothing
    survivor = store.get_account("demo", "m-1")
    assert survivor is not None and (survivor.available, survivor.held) == (50, 50)
    assert store.get_holds("demo", "pv-1") == []
    assert sorted(h.hold_id for h in store.get_holds("demo", "m-1")) == ["checkout:h1", "checkout:h2"]
    audited(store)

    # And a capture by the old member id is told where the hold is; on the survivor it settles
    with pytest.raises(AccountClosedError) as caught:
        ledger.capture(Capture(program="demo", member="pv-1", hold_id="checkout:h1"), at=T0)
    assert caught.value.survivor == "m-1"
    ledger.capture(Capture(program="demo", member="m-1", hold_id="checkout:h1", points=10), at=T0)
    ledger.release(Release(program="demo", member="m-1", hold_id="checkout:h2"), at=T0)
    survivor = store.get_account("demo", "m-1")
    assert survivor is not None and (survivor.available, survivor.held) == (50 + 20 + 20, 0)
    audited(store)

    # And the audit would notice a closed account that still held points
    entries, accounts, lots, holds, pending = store.audit_records()
    tampered = [a.model_copy(update={"held": 5}) if a.member == "pv-1" else a for a in accounts]
    problems = audit(entries, tampered, lots, holds, pending).problems
    assert "demo/pv-1: closed into m-1 but holds 0 pending and 5 held" in problems


def test_lots_already_expired_at_the_merge_stay_and_expire_on_the_closed_account(
    store: DynamoLedgerStore, ledger: Ledger
) -> None:
    # Given pv-1 with a lot that expired before the merge and one that did not
    earn(ledger, "pv-1", 10, "old", expires_at=T0 - timedelta(days=1))
    earn(ledger, "pv-1", 70, "new", expires_at=T0 + timedelta(days=100))
    merge(ledger, "pv-1", "m-1")
    assert account(store, "pv-1") == (10, 0)
    assert account(store, "m-1") == (70, 0)

    # When the expiry job reaches the expired lot
    ledger.expire_lot(ExpireLot(program="demo", member="pv-1", lot_id="shop:old"), at=T0)

    # Then it expires where it was, and the closed account is empty
    assert account(store, "pv-1") == (0, 0)
    expired = store.get_entry("demo", "expiry:shop:old")
    assert expired is not None and expired.kind is EntryKind.EXPIRY and expired.delta(Account.BREAKAGE) == 10
    audited(store)
