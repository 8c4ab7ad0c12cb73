"""Behaviour points are paid once per real thing, whatever event ids the app sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shared.events.model import BehaviourAction
from shared.program.config import BehaviourRules
from tests.integration.ingest_support import NOW, Clock, audited, available, behaviour, program, wire

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.store import DynamoLedgerStore

RULES = BehaviourRules(review=20, birthday=100, member_day=50, sign_in=5)


def test_a_review_of_the_same_product_is_paid_once_per_member(services: Services, store: DynamoLedgerStore) -> None:
    ingest = wire(services, program(behaviour=RULES))
    review = BehaviourAction.REVIEW

    # When m-1 reviews a product, the app sends the review again under a new event id, and m-1
    # reviews a second product; m-2 reviews the first one
    first = ingest.handle(behaviour(review, "ev-1", "m-1", subject="sku:PINK"))
    again = ingest.handle(behaviour(review, "ev-2", "m-1", subject="sku:PINK"))
    other = ingest.handle(behaviour(review, "ev-3", "m-1", subject="sku:BLUE"))
    someone_else = ingest.handle(behaviour(review, "ev-4", "m-2", subject="sku:PINK"))

    # Then the duplicate is answered as skipped, with why, and nothing else changed
    assert [o.status for o in (first, again, other, someone_else)] == ["posted", "skipped", "posted", "posted"]
    assert again.note == "a review of sku:PINK was already rewarded"
    assert again.entry_id == first.entry_id == "app:app:review:m-1:sku:PINK"
    assert (available(store, "m-1"), available(store, "m-2")) == (40, 20)
    # And a true redelivery of the first review is a replay, not a duplicate
    assert ingest.handle(behaviour(review, "ev-1", "m-1", subject="sku:PINK")).status == "replayed"
    assert available(store, "m-1") == 40
    audited(store)


def test_a_birthday_bonus_once_per_program_local_year(services: Services, store: DynamoLedgerStore) -> None:
    clock = Clock()
    ingest = wire(services, program(behaviour=RULES, timezone="Asia/Tokyo"), clock)
    birthday = BehaviourAction.BIRTHDAY
    # 2026-12-31 20:00 UTC is already 2027-01-01 in Tokyo
    new_year_in_tokyo = datetime(2026, 12, 31, 20, 0, tzinfo=UTC)
    clock.now = new_year_in_tokyo + timedelta(minutes=10)

    # When the birthday is claimed in June, again in December (UTC 2026, still 2026 in Tokyo), and at
    # 20:00 UTC on 31 December (2027 in Tokyo)
    june = ingest.handle(behaviour(birthday, "b-1", "m-1", at=NOW))
    december = ingest.handle(behaviour(birthday, "b-2", "m-1", at=new_year_in_tokyo - timedelta(hours=12)))
    next_year = ingest.handle(behaviour(birthday, "b-3", "m-1", at=new_year_in_tokyo))

    # Then it is paid once in 2026 and once in 2027 (the program's calendar)
    assert [o.status for o in (june, december, next_year)] == ["posted", "skipped", "posted"]
    assert december.note == "the birthday bonus was already paid for 2026"
    assert next_year.entry_id == "app:app:birthday:m-1:2027"
    assert available(store, "m-1") == 200
    audited(store)


def test_a_member_day_bonus_once_per_local_date(services: Services, store: DynamoLedgerStore) -> None:
    ingest = wire(services, program(behaviour=RULES, timezone="America/New_York"))
    member_day = BehaviourAction.MEMBER_DAY
    # 2026-06-10 02:00 UTC is still 9 June in New York
    late_on_the_ninth = datetime(2026, 6, 10, 2, 0, tzinfo=UTC)

    outcomes = [
        ingest.handle(behaviour(member_day, "d-1", "m-1", at=late_on_the_ninth - timedelta(hours=10))),
        ingest.handle(behaviour(member_day, "d-2", "m-1", at=late_on_the_ninth)),
        ingest.handle(behaviour(member_day, "d-3", "m-1", at=late_on_the_ninth + timedelta(hours=6))),
    ]

    assert [o.status for o in outcomes] == ["posted", "skipped", "posted"]
    assert outcomes[1].note == "the member day bonus was already paid on 2026-06-09"
    assert outcomes[2].entry_id == "app:app:member_day:m-1:2026-06-10"
    assert available(store, "m-1") == 100
    audited(store)


def test_a_very_long_product_key_still_fits_the_ledger_key(services: Services, store: DynamoLedgerStore) -> None:
    ingest = wire(services, program(behaviour=RULES))
    subject = "sku:" + "X" * 196

    first = ingest.handle(behaviour(BehaviourAction.REVIEW, "ev-1", "m-1", subject=subject))
    again = ingest.handle(behaviour(BehaviourAction.REVIEW, "ev-2", "m-1", subject=subject))

    assert (first.status, again.status) == ("posted", "skipped")
    assert first.entry_id.startswith("app:app:review:") and len(first.entry_id) <= 200
    assert available(store, "m-1") == 20
