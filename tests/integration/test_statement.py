"""A member's statement read as a member would: each line says what, with the facts, and adds up."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from shared.earning.core import provisional_member
from shared.events.model import Identity, IdentityKind
from shared.ledger.commands import Authorise, ExpireLot, Release, Send, Spend, Transfer
from shared.ledger.models import Account
from shared.ledger.statement import LANGUAGES, Language, StatementLine, choose_language, line, related_ids
from shared.program.config import ExpiryPolicy
from tests.integration.ingest_support import NOW, Clock, partner_points, program, purchase, refund, wire
from tests.support.statements import INTERNAL

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.store import DynamoLedgerStore

SHOPPER = Identity(kind=IdentityKind.EMAIL, value="b" * 64)
FLYER = Identity(kind=IdentityKind.PARTNER, value="pm-1", scope="airline")


def _history(services: Services) -> tuple[str, str]:
    """Earn online and from a partner, refund part, redeem, reserve and release, gift, expire, merge."""
    clock = Clock()
    ingest = wire(services, program(expiry=ExpiryPolicy(months=1)), clock)
    ledger = services.ledger
    shopper, flyer = provisional_member(SHOPPER), provisional_member(FLYER)
    ingest.handle(purchase("5851032617034", "470.00", identity=SHOPPER, at=NOW - timedelta(days=3)))
    note = partner_points("flight-1", 1200, identity=SHOPPER).model_copy(update={"reason": "flight PEK-SHA"})
    ingest.handle(note)
    ingest.handle(refund("r-1", "5851032617034", "94.00"))
    ledger.spend(
        Spend(
            program="demo",
            member=shopper,
            points=300,
            source="redemption",
            external_id="r-100",
            reason="redeemed 1 x Tea set",
            details={"reward": "tea-set", "quantity": "1", "cash": "0"},
        )
    )
    ledger.authorise(
        Authorise(
            program="demo",
            member=shopper,
            points=100,
            source="checkout",
            external_id="order-77",
            reason="checkout",
            lapses_at=NOW + timedelta(hours=1),
        )
    )
    ledger.release(Release(program="demo", member=shopper, hold_id="checkout:order-77"))
    ingest.handle(partner_points("flight-2", 50, identity=FLYER))
    ledger.send(
        Send(
            program="demo",
            member=shopper,
            to_program="demo",
            to_member=flyer,
            points=20,
            credited=20,
            source="gift",
            external_id=f"{shopper}:g-1",
            reason=f"gift from {shopper} to {flyer}: happy birthday",
            keep_expiry=True,
            hold_until=NOW + timedelta(days=2),
        )
    )
    clock.now = NOW + timedelta(days=40)
    for lot in services.ledger_store.get_account_and_lots("demo", flyer)[1]:
        ledger.expire_lot(ExpireLot(program="demo", member=flyer, lot_id=lot.lot_id), at=clock.now)
    ledger.transfer(Transfer(program="demo", member=flyer, to_member=shopper, external_id="m-1", reason="linked"))
    return shopper, flyer


def _lines(store: DynamoLedgerStore, member: str, language: Language) -> list[StatementLine]:
    entries = store.entries("demo", member, after_seq=0, limit=100)
    named = store.get_entries("demo", related_ids(entries))
    return [line(e, language, named) for e in entries]


def assert_readable(told: StatementLine) -> None:
    assert told.title and told.date and told.sentence, told
    assert not INTERNAL.search(told.sentence), told.sentence


def test_every_line_names_its_facts(services: Services, store: DynamoLedgerStore) -> None:
    shopper, flyer = _history(services)
    lines = _lines(store, shopper, "en")
    texts = [told.sentence for told in lines]
    purchase_line = next(t for t in lines if t.kind.value == "earn" and "order" in t.detail)
    # The order, the shop, the amount with its currency and the rule's arithmetic, dated by the order.
    assert purchase_line.title == "Points for your online order"
    assert "order 5851032617034 at acme.myshopify.com, 470.00 USD" in purchase_line.detail
    assert "how: 470 base (1 per USD) = 470" in purchase_line.detail
    assert purchase_line.date == NOW - timedelta(days=3)
    assert purchase_line.rule_version == 1
    # The partner by name and its own note; the refund with its amount and order; the reward.
    assert "Points from airline: flight PEK-SHA" in texts
    clawback = next(t for t in lines if t.kind.value == "clawback")
    assert clawback.detail == "refund of 94.00 USD on order 5851032617034; 470 points earned x 94.00 / 470.00 refunded"
    assert clawback.points == -94
    assert "Reward redeemed: 1 x tea-set" in texts
    assert "Points reserved at checkout: order-77" in texts
    assert "Checkout reservation released: points back: order-77" in texts
    assert "Gift sent: happy birthday" in texts  # to a provisional member: no id that means nothing
    assert (
        "Your other account was joined to this one: its points, pending points and reservations moved with it" in texts
    )
    # The expiry names the earn that expired, on the account that expired it.
    expiry = next(t for t in _lines(store, flyer, "en") if t.kind.value == "expiry")
    day = expiry.date.date().isoformat()
    assert expiry.sentence == (f"Points expired: from airline on 2026-06-10; they reached their expiry date on {day}")
    received = next(t for t in _lines(store, flyer, "en") if t.kind.value == "transfer_in")
    assert received.sentence == "Gift received: happy birthday; held until 2026-06-12"
    assert received.points == 20 and received.spendable == 0 and received.held == 20
    for language in LANGUAGES:
        for member in (shopper, flyer):
            for told in _lines(store, member, language):
                assert_readable(told)


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_running_balance_adds_up_to_the_account(
    services: Services, store: DynamoLedgerStore, language: Language
) -> None:
    shopper, flyer = _history(services)
    for member in (shopper, flyer):
        lines = _lines(store, member, language)
        running = 0
        for told in lines:
            running += told.spendable
            assert told.balance == running, told
        state = store.get_account("demo", member)
        assert state is not None
        assert (lines[-1].balance, lines[-1].pending, lines[-1].held) == (state.available, state.pending, state.held)
        assert all(told.title and told.sentence for told in lines)


def test_chinese_statement_tells_the_same_facts(services: Services, store: DynamoLedgerStore) -> None:
    shopper, _ = _history(services)
    english, chinese = _lines(store, shopper, "en"), _lines(store, shopper, "zh-CN")
    assert [t.points for t in english] == [t.points for t in chinese]
    assert all(e.title != c.title for e, c in zip(english, chinese, strict=True))
    purchase_line = next(t for t in chinese if "订单" in t.detail and t.kind.value == "earn")
    assert purchase_line.title == "网上订单积分"
    assert (
        purchase_line.detail
        == "订单 5851032617034，acme.myshopify.com，金额 470.00 USD；计算：基础 470（每 USD 1） = 470"
    )
    assert "来自 airline 的积分：flight PEK-SHA" in [t.sentence for t in chinese]


def test_activation_says_spendable_not_zero(services: Services, store: DynamoLedgerStore) -> None:
    clock = Clock()
    ingest = wire(services, program(return_window_days=14), clock)
    ingest.handle(purchase("o-9", "80", identity=SHOPPER, at=NOW - timedelta(hours=1)))
    member = provisional_member(SHOPPER)
    lines = _lines(store, member, "en")
    waiting = lines[0]
    assert waiting.title == "Points for your online order"
    assert "spendable from 2026-06-24" in waiting.detail
    assert (waiting.points, waiting.spendable, waiting.pending) == (80, 0, 80)
    # When the return window closes, the activation line shows what became spendable.
    clock.now = NOW + timedelta(days=15)
    assert len(ingest.activate_due("demo", clock.now)) == 1
    activated = _lines(store, member, "en")[-1]
    assert activated.sentence == "Points now spendable: from your order o-9 of 2026-06-10"
    assert (activated.points, activated.spendable, activated.balance, activated.pending) == (0, 80, 80, 0)


def test_language_from_the_request() -> None:
    assert choose_language(None, None) == "en"
    assert choose_language("zh-CN", "en") == "zh-CN"
    assert choose_language(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert choose_language(None, "fr-FR, en;q=0.5, zh;q=0.7") == "zh-CN"
    assert choose_language(None, "zh-TW") == "en"  # Traditional Chinese is not offered: English, not a guess
    assert choose_language(None, "de;q=x, ;;, en-GB") == "en"


def test_entries_written_before_balances_show_none(store: DynamoLedgerStore, services: Services) -> None:
    shopper, _ = _history(services)
    entry = store.entries("demo", shopper, after_seq=0, limit=1)[0]
    old = entry.model_copy(update={"details": {k: v for k, v in entry.details.items() if not k.endswith("_after")}})
    told = line(old)
    assert told.balance is None and told.title
    assert entry.delta(Account.AVAILABLE) == told.spendable


def test_a_promotion_keeps_its_arithmetic_on_partner_points() -> None:
    from datetime import UTC, datetime

    from shared.ledger.models import Entry, EntryKind, Posting

    at = datetime(2026, 6, 1, tzinfo=UTC)
    entry = Entry(
        program="demo",
        entry_id="partner:airline:f-3",
        member="m",
        kind=EntryKind.EARN,
        source="partner:airline",
        external_id="f-3",
        reason="flight PEK-SHA",
        config_version=4,
        postings=(Posting(account=Account.AVAILABLE, amount=2400), Posting(account=Account.ISSUANCE, amount=-2400)),
        event_time=at,
        recorded_at=at,
        details={
            "explanation": "2400 = 1200 flight PEK-SHA x2 holiday promo",
            "channel": "partner",
            "breakdown": '[{"kind":"producer","label":"flight PEK-SHA","points":"1200","factor":null},'
            '{"kind":"promo","label":"holiday promo","points":"1200","factor":"2"}]',
        },
        fingerprint="f",
        seq=1,
        prev_hash="0",
    )
    assert (
        line(entry).sentence
        == "Points from airline: flight PEK-SHA; how: 1200 flight PEK-SHA + 1200 promotion holiday promo = 2400"
    )
    assert (
        line(entry, "zh-CN").sentence
        == "来自 airline 的积分：flight PEK-SHA；计算：1200 flight PEK-SHA + 促销 holiday promo 1200 = 2400"
    )


def test_the_order_number_the_customer_sees_and_an_old_delivery_stays_the_same_event(
    services: Services, store: DynamoLedgerStore
) -> None:
    ingest = wire(services, program(), Clock())
    bare = purchase("820982911946154508", "51.50", identity=SHOPPER)
    named = bare.model_copy(update={"reference": "#1042"})
    assert ingest.handle(named).status == "posted"
    # A retry of the same order read by an adapter without order numbers is a replay, not a conflict
    assert ingest.handle(bare).status == "replayed"
    ingest.handle(refund("r-9", "820982911946154508", "10.00"))
    told = [t.sentence for t in _lines(store, provisional_member(SHOPPER), "en")]
    assert told[0].startswith("Points for your online order: order #1042 at acme.myshopify.com, 51.50 USD")
    assert told[1].startswith("Points taken back for a refund: refund of 10.00 USD on order #1042")
