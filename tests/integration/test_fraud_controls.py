"""Fraud controls that control (issue 12): the card-velocity check is fed, a flag holds spending,
gifting and exchanging, and one order sent by two channels earns once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from integrations.currency import CurrencyPolicy
from integrations.till_csv import TillCsvConfig, parse_till_csv
from shared.earning.core import provisional_member
from shared.errors import MemberOnHoldError
from shared.events.identity import hash_card
from shared.events.model import Channel, Identity, IdentityKind, PurchaseEvent
from shared.exchange.agreements import Agreement, execute, quote
from shared.ledger.commands import Authorise, Earn, Spend
from shared.ledger.models import EntryKind
from shared.members.flags import decide_flag, is_flagged
from shared.program.config import AnomalyRules, FlagHold, ProgramConfig
from shared.projections.watch import Finding
from shared.rewards.catalogue import GiftPolicy
from shared.rewards.gifts import send_gift
from tests.integration.ingest_support import Clock, account, audited, program, wire

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.store import DynamoLedgerStore

NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
KEY = "identity-key"


def till_file(card: str, sales: int, start: datetime) -> str:
    rows = ["store_id,till_id,receipt_no,occurred_at,card_number,currency,amount,type"]
    for n in range(sales):
        at = (start + timedelta(minutes=2 * n)).isoformat()
        rows.append(f"S001,T1,R{1000 + n},{at},{card},USD,10.00,sale")
    return "\n".join(rows) + "\n"


def test_card_velocity_is_fed_by_the_till_file_and_flags_the_card(services: Services, store: DynamoLedgerStore) -> None:
    # Given a program that flags more than 20 earns from one card in an hour
    ingest = wire(services, program(), Clock())
    config = TillCsvConfig(program="demo", identity_key=KEY, currency=CurrencyPolicy(program_currency="USD"))

    # When a till file brings 25 sales on one card within 50 minutes
    report = parse_till_csv(till_file("6012 3456 78", 25, NOW - timedelta(hours=2)), config, now=NOW)
    assert len(report.accepted) == 25 and not report.rejected
    hashed = hash_card(KEY.encode(), "6012345678")
    assert all(isinstance(e, PurchaseEvent) and e.card == hashed for e in report.accepted)
    for event in report.accepted:
        ingest.handle(event)

    # Then each earn carries the hashed card, never the number
    member = provisional_member(Identity(kind=IdentityKind.CARD, value=hashed))
    first = store.get_entry("demo", "till:S001:T1:R1000")
    assert first is not None and first.details["card"] == hashed and "6012345678" not in first.details["card"]

    # And the anomaly watch, reading the entries as the stream delivers them, flags the member
    findings = []
    for n in range(25):
        entry = store.get_entry("demo", f"till:S001:T1:R{1000 + n}")
        assert entry is not None
        findings += services.watch.observe(entry)
    assert [f.check for f in findings][:1] == ["card_velocity"]
    assert is_flagged(services.members, "demo", member)
    audited(store)


def flagged_member_with_points(services: Services, holds: frozenset[FlagHold] | None = None) -> None:
    anomaly = AnomalyRules() if holds is None else AnomalyRules(flag_holds=holds)
    services.clock = Clock()
    services.programs.publish(ProgramConfig(program="demo", name="Demo", anomaly=anomaly))
    services.programs.publish(ProgramConfig(program="air", name="Air"))
    earn = Earn(program="demo", member="ann", points=500, source="shop", external_id="o-1", reason="x", event_time=NOW)
    services.ledger.earn(earn, at=NOW)
    services.watch.flag("demo", Finding("ann", "card_velocity", "21 earns from one card in an hour"), NOW, "c-1")


def test_a_flagged_member_cannot_redeem_hold_gift_or_exchange(services: Services, store: DynamoLedgerStore) -> None:
    flagged_member_with_points(services)
    ledger = services.ledger
    spend = Spend(program="demo", member="ann", points=100, source="redemption", external_id="r-1", reason="x")

    # Redeeming, a checkout hold, a gift, a transfer out to a partner and an exchange are all held
    with pytest.raises(MemberOnHoldError) as held:
        ledger.spend(spend, at=NOW)
    assert held.value.code == "member_on_hold"
    assert held.value.detail == "ann is flagged for review in demo: spending is held until an operator decides"
    checkout = Authorise(
        program="demo",
        member="ann",
        points=50,
        source="checkout",
        external_id="c-1",
        reason="x",
        lapses_at=NOW + timedelta(hours=1),
    )
    with pytest.raises(MemberOnHoldError):
        ledger.authorise(checkout, at=NOW)
    with pytest.raises(MemberOnHoldError, match="gifting is held"):
        send_gift(ledger, GiftPolicy(), "demo", "ann", "bob", 10, "g-1", NOW)
    outbound = checkout.model_copy(update={"source": "partner-out:acme", "external_id": "t-1", "to_partner": True})
    with pytest.raises(MemberOnHoldError, match="exchanging is held"):
        ledger.authorise(outbound, at=NOW)
    agreement = Agreement(id="demo-air", version=1, from_program="demo", to_program="air", rate=Decimal(1))
    with pytest.raises(MemberOnHoldError, match="exchanging is held"):
        execute(ledger, agreement, quote(agreement, "ann", "ann", 100, NOW), NOW)
    assert account(store, "ann") == (500, 0)

    # Once an operator releases the flag, the member spends again
    decide_flag(services.members, "demo", "ann", "release", "ops-1", "checked", NOW)
    assert ledger.spend(spend, at=NOW).kind is EntryKind.SPEND
    assert account(store, "ann") == (400, 0)
    audited(store)


def test_what_a_flag_holds_is_the_programs_choice(services: Services, store: DynamoLedgerStore) -> None:
    # Given a program whose flags hold spending only
    flagged_member_with_points(services, frozenset({FlagHold.SPENDING}))
    # Then the flagged member may still gift
    send_gift(services.ledger, GiftPolicy(), "demo", "ann", "bob", 10, "g-1", NOW)
    assert account(store, "bob") == (10, 0)
    with pytest.raises(MemberOnHoldError):
        services.ledger.spend(
            Spend(program="demo", member="ann", points=1, source="redemption", external_id="r-1", reason="x"), at=NOW
        )


def test_a_spend_posted_before_the_flag_replays_after_it(services: Services) -> None:
    services.clock = Clock()
    services.programs.publish(ProgramConfig(program="demo", name="Demo"))
    earn = Earn(program="demo", member="ann", points=50, source="shop", external_id="o-1", reason="x", event_time=NOW)
    services.ledger.earn(earn, at=NOW)
    spend = Spend(program="demo", member="ann", points=20, source="redemption", external_id="r-1", reason="x")
    first = services.ledger.spend(spend, at=NOW)
    services.watch.flag("demo", Finding("ann", "card_velocity", "21 earns"), NOW, "c-1")
    assert services.ledger.spend(spend, at=NOW) == first  # the client's retry gets its answer


def order(source: str, order_id: str, amount: str, channel: Channel = Channel.ONLINE) -> PurchaseEvent:
    return PurchaseEvent(
        program="demo",
        channel=channel,
        source=source,
        external_id=order_id,
        identity=Identity(kind=IdentityKind.MEMBER, value="m-flag"),
        occurred_at=NOW - timedelta(minutes=5),
        currency="USD",
        eligible_amount=Decimal(amount),
    )


def test_one_order_sent_by_the_shop_and_the_app_earns_once(services: Services, store: DynamoLedgerStore) -> None:
    # Given a member whose flag is open (so earns are held)
    ingest = wire(services, program(), Clock())
    services.watch.flag("demo", Finding("m-flag", "card_velocity", "21 earns"), NOW, "c-1")

    # When the shop and then the app send the same order
    first = ingest.handle(order("shopify:acme.myshopify.com", "o-1", "10"))
    second = ingest.handle(order("app:app", "o-1", "10", Channel.APP))

    # Then it earned once; the duplicate is skipped with the reason, before any point landed
    assert first.status == "posted"
    assert second.status == "skipped"
    assert second.note == "order o-1 already earned through another channel: one order, earned once"
    assert account(store, "m-flag") == (0, 10)
    assert store.get_entry("demo", "app:app:o-1") is None
    # And the member's flag says so, for the operator deciding it
    flag = services.members.get_flag("demo", "m-flag")
    assert flag is not None and flag.check == "order_two_channels"
    # And a redelivery of either changes nothing
    assert ingest.handle(order("shopify:acme.myshopify.com", "o-1", "10")).status == "replayed"
    assert ingest.handle(order("app:app", "o-1", "10", Channel.APP)).status == "skipped"
    assert account(store, "m-flag") == (0, 10)
    audited(store)


def test_the_same_order_id_for_two_members_is_two_orders(services: Services, store: DynamoLedgerStore) -> None:
    ingest = wire(services, program(), Clock())
    ingest.handle(order("till:store-1", "T1:R1", "10"))
    other = order("till:store-2", "T1:R1", "7").model_copy(
        update={"identity": Identity(kind=IdentityKind.MEMBER, value="m-other")}
    )
    assert ingest.handle(other).status == "posted"
    assert (account(store, "m-flag"), account(store, "m-other")) == ((10, 0), (7, 0))
