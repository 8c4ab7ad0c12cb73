"""The ingest function reads a batch's identity links in one request (`MemberDirectory.read_ahead`)
and each event then posts exactly as it would have with its own read: the same items in the table,
an identity GetItem fewer per known member, a stranger claimed once, and a merge that lands between
the read ahead and the event followed to the survivor."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from shared.earning.core import provisional_member
from shared.events.model import Identity, IdentityKind
from tests.integration.ingest_support import CARD, EMAIL, program, purchase, wire
from tests.integration.test_channels import sqs_event
from tests.support.aws import create_table
from tests.support.services import table_services

if TYPE_CHECKING:
    from functions.services import Services
    from shared.events.model import PurchaseEvent
    from shared.program.config import ProgramConfig

TWIN = "points-twin"


class Context:
    function_name, memory_limit_in_mb, invoked_function_arn, aws_request_id = "ingest", 128, "arn", "req"


def shopper(n: int) -> Identity:
    return Identity(kind=IdentityKind.EMAIL, value=f"{n:064d}")


def body(event: PurchaseEvent) -> str:
    return json.dumps({"event": event.model_dump(mode="json")})


def items(services: Services) -> list[dict[str, Any]]:
    return sorted(services.table.scan(), key=lambda item: (str(item["PK"]), str(item["SK"])))


@pytest.fixture
def twin(services: Services) -> Services:
    """A second table: the same events, each handled on its own there."""
    create_table(services.table.client, TWIN)
    return table_services(TWIN, services.table.client, services.clock)


def test_a_batch_read_ahead_posts_as_each_event_on_its_own_with_fewer_requests(
    services: Services, twin: Services
) -> None:
    from functions.ingest.app import handler

    # Given eight members who bought before, on both tables
    for side in (services, twin):
        ingest = wire(side, _program())
        for n in range(8):
            ingest.handle(purchase(f"first-{n}", "10", identity=shopper(n)))
    # When a batch brings their repeat purchases, one member twice and a stranger twice
    events = [purchase(f"again-{n}", "20", identity=shopper(n)) for n in range(8)]
    events += [purchase("again-0b", "5", identity=shopper(0)), purchase("s-1", "7", identity=CARD)]
    events += [purchase("s-2", "9", identity=CARD)]
    services.table.stats.reset()
    assert handler(sqs_event([body(e) for e in events]), Context()) == {"batchItemFailures": []}
    batch = Counter(services.table.stats.requests)
    alone = wire(twin, _program())
    twin.table.stats.reset()
    for event in events:
        alone.handle(event)
    one_by_one = Counter(twin.table.stats.requests)

    # Then the tables hold the same items, and the eight known links were read in one request
    assert items(services) == items(twin)
    assert one_by_one["GetItem"] - batch["GetItem"] == 8
    assert batch["BatchGetItem"] - one_by_one["BatchGetItem"] == 1
    assert services.members._read_ahead == {}  # noqa: SLF001 - nothing is kept past the batch


def test_a_merge_after_the_read_ahead_is_followed_to_the_survivor(services: Services) -> None:
    # Given a till shopper (provisional member) and an online member
    ingest = wire(services, _program())
    ingest.handle(purchase("T1:R1", "25", identity=CARD, source="till:store-1"))
    ingest.handle(purchase("1001", "40", identity=EMAIL))
    later = purchase("T1:R2", "30", identity=CARD, source="till:store-1")
    # When the batch's links are read, and then an operator links the card to the e-mail
    ingest.read_ahead([later])
    assert services.members._read_ahead == {CARD.key: provisional_member(CARD)}  # noqa: SLF001
    survivor = ingest.link("demo", CARD, EMAIL).survivor
    # Then the till's next purchase, read ahead as the merged member's, posts on the survivor
    outcome = ingest.handle(later)
    ingest.forget_read_ahead()
    assert outcome.status == "posted" and outcome.member == survivor == ingest.resolve(CARD, "demo")


def _program() -> ProgramConfig:
    return program()
