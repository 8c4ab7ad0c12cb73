"""The ingest function reads a batch's identity links in one request (`MemberDirectory.read_ahead`)
and the views of the members they name in one more (`read_views_ahead`), and each event then posts
exactly as it would have with its own reads: the same items in the table, an identity GetItem and a
view BatchGetItem fewer per known member, a stranger claimed once, a member's second event and a
member another event of the batch wrote to read afresh, and what lands between the read ahead and
the event from elsewhere (a merge, a rival earn) refused by the earn's conditions, as for a read
that old."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from shared.earning.core import provisional_member
from shared.events.model import BehaviourAction, Identity, IdentityKind
from shared.infra.codec import to_item
from shared.infra.keys import ItemKey
from shared.ledger.models import Account
from shared.program.config import BehaviourRules, Caps, QualifyingBasis, Tier, TierQualification
from tests.integration.ingest_support import CARD, EMAIL, available, behaviour, program, purchase, wire
from tests.integration.test_channels import sqs_event
from tests.support.aws import create_table
from tests.support.services import table_services

if TYPE_CHECKING:
    from collections.abc import Sequence

    from functions.services import Services
    from shared.events.model import PurchaseEvent
    from shared.members.store import ViewWanted
    from shared.members.view import MemberView
    from shared.program.config import ProgramConfig

TWIN = "points-twin"
MINUTE = timedelta(minutes=1)
POINTS_QUALIFY = TierQualification(basis=QualifyingBasis.POINTS)
TIERS = (
    Tier(name="member", rank=0),
    Tier(name="gold", rank=1, threshold=Decimal(500), multiplier=Decimal(2)),
)


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

    # Then the tables hold the same items; the eight known links were read in one request, and their
    # members' views in one more (the twice-seen member's second view, the stranger's two, afresh)
    assert items(services) == items(twin)
    # (less the program's config, which the views read ahead need once, read afresh here: uncached in tests)
    assert one_by_one["GetItem"] - batch["GetItem"] == 8 - 1
    assert (one_by_one["BatchGetItem"], batch["BatchGetItem"]) == (11, 1 + 1 + 3)
    assert services.members._read_ahead == {}  # noqa: SLF001 - nothing is kept past the batch
    assert services.members._views_ahead == {}  # noqa: SLF001


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


def test_a_view_an_earlier_event_of_the_batch_wrote_to_is_read_afresh(services: Services, twin: Services) -> None:
    from functions.ingest.app import handler

    # Given a referrer with points and a member it referred, who has not bought yet, on both tables,
    # in a program whose referral reward takes the referrer to gold (twice the points)
    rules = program(behaviour=BehaviourRules(referral=500), tier_qualification=POINTS_QUALIFY, tiers=TIERS)
    for side in (services, twin):
        ingest = wire(side, rules, tiers=True)
        ingest.handle(purchase("ref-first", "10", identity=member_identity("m-ref")))
        side.members.claim(shopper(1).key, "m-new", provisional=False)
        ingest.handle(behaviour(BehaviourAction.REFERRAL, "r-1", "m-ref", subject="m-new"))
    # When one batch brings the referred member's first purchase (which pays the referrer), then
    # the referrer's own purchase
    paying = purchase("new-1", "20", identity=shopper(1))
    events = [paying, purchase("ref-2", "30", identity=member_identity("m-ref"), at=paying.occurred_at + MINUTE)]
    views = _views_read(services)
    assert handler(sqs_event([body(e) for e in events]), Context()) == {"batchItemFailures": []}
    alone = wire(twin, rules, tiers=True)
    for event in events:
        alone.handle(event)

    # Then the referrer's view, read ahead before its reward, was read again for its purchase,
    # which earned at gold
    assert items(services) == items(twin)
    ahead = [("m-new", "ahead"), ("m-ref", "ahead"), ("m-new", "used")]
    assert views == [*ahead, ("m-ref", "read"), ("m-ref", "read")]  # the reward's view, the purchase's
    earned = services.ledger_store.get_entry("demo", "shopify:acme.myshopify.com:ref-2")
    assert earned is not None and (earned.details["tier"], earned.delta(Account.AVAILABLE)) == ("gold", 60)


def test_a_rival_earn_after_the_read_ahead_is_refused_and_the_earn_decided_again(services: Services) -> None:
    # Given a daily cap of 100 and a member who earned 1 point today
    ingest = wire(services, program(caps=Caps(per_member_per_day=100)))
    ingest.handle(purchase("0", "1"))
    member = provisional_member(EMAIL)
    later = purchase("1", "90")
    # When the batch's views are read, and then another worker posts 80 points for the member
    ingest.read_ahead([later])
    rival = table_services(services.table.name, services.table.client, services.clock)
    assert wire(rival, _program_capped()).handle(purchase("rival", "80")).points == 80
    # Then the earn, decided first on the view read ahead, is refused by the tally and the balance
    # it read, and decided again: 100 - 1 - 80 = 19 points
    outcome = ingest.handle(later)
    ingest.forget_read_ahead()
    assert (outcome.status, outcome.points) == ("posted", 19)
    assert available(services.ledger_store, member) == 1 + 80 + 19


def test_a_merge_elsewhere_after_the_views_are_read_posts_on_the_survivor(services: Services) -> None:
    # Given a till shopper (provisional member) and a registered online member
    ingest = wire(services, _program())
    ingest.handle(purchase("T1:R1", "25", identity=CARD, source="till:store-1"))
    services.members.claim(EMAIL.key, "m-online", provisional=False)
    ingest.handle(purchase("1001", "40", identity=EMAIL))
    later = purchase("T1:R2", "30", identity=CARD, source="till:store-1")
    # When the batch's links and views are read, and then an operator links the card to the e-mail
    # through another process (whose writes this one does not see)
    ingest.read_ahead([later])
    rival = table_services(services.table.name, services.table.client, services.clock)
    assert wire(rival, _program()).link("demo", CARD, EMAIL).survivor == "m-online"
    # Then the till's next purchase, decided on the merged member's view read before the merge,
    # posts on the survivor: the merged member's account is closed
    outcome = ingest.handle(later)
    ingest.forget_read_ahead()
    assert (outcome.status, outcome.member) == ("posted", "m-online")
    assert available(services.ledger_store, provisional_member(CARD)) == 0
    assert available(services.ledger_store, "m-online") == 25 + 40 + 30


def member_identity(member: str) -> Identity:
    return Identity(kind=IdentityKind.MEMBER, value=member)


def _views_read(services: Services) -> list[tuple[str, str]]:
    """(member, how) for each view the members' directory reads from now on: read ahead, used as read
    ahead, or read on its own."""
    members = services.members
    read: list[tuple[str, str]] = []
    read_ahead, view, view_ahead = members.read_views_ahead, members.view, members._view_ahead  # noqa: SLF001

    def reading_ahead(wanted: Sequence[ViewWanted]) -> None:
        read.extend((w.member, "ahead") for w in wanted)
        read_ahead(wanted)

    def viewing(program: str, member: str, tallies: Sequence[str] = (), **options: bool) -> MemberView:
        served = len(read)
        found = view(program, member, tallies, **options)
        if len(read) == served:
            read.append((member, "read"))
        return found

    def using(wanted: ViewWanted) -> MemberView | None:
        found = view_ahead(wanted)
        if found is not None:
            read.append((wanted.member, "used"))
        return found

    members.read_views_ahead = reading_ahead  # type: ignore[method-assign]
    members.view = viewing  # type: ignore[method-assign]
    members._view_ahead = using  # type: ignore[method-assign]  # noqa: SLF001
    return read


def _program_capped() -> ProgramConfig:
    return program(caps=Caps(per_member_per_day=100))


def _program() -> ProgramConfig:
    return program()


def test_the_table_notes_every_item_it_writes_until_told_to_stop(services: Services) -> None:
    table = services.table
    a, b, c, d, e, checked = (ItemKey(f"NOTE#{n}", "X") for n in "abcdef")
    table.put({"PK": checked.pk, "SK": checked.sk})
    noted = table.note_writes()
    # When the table puts, updates, deletes, batch-puts and writes in a transaction (one action only a check)
    table.put({"PK": a.pk, "SK": a.sk})
    table.update(b, "SET v = :v", ExpressionAttributeValues=to_item({":v": 1}))
    table.delete(c)
    table.batch_put([{"PK": d.pk, "SK": d.sk}])
    check = {
        "ConditionCheck": {
            "TableName": table.name,
            "Key": table.key(checked),
            "ConditionExpression": "attribute_exists(PK)",
        }
    }
    table.transact([table.put_action({"PK": e.pk, "SK": e.sk}), check])
    table.stop_noting(noted)
    table.put({"PK": "NOTE#after", "SK": "X"})
    # Then each written key is noted, not the checked one, and nothing after the stop
    assert noted == {a, b, c, d, e}
