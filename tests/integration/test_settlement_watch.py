"""Partner settlement statements and the anomaly watch, driven through the stream handler."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer

from functions.watch.app import handler as watch_handler
from shared.exchange.settlement import statement
from shared.jobs.walk import JobInput
from shared.ledger.commands import Earn, Spend
from shared.ledger.models import Account
from shared.members.flags import FlagNotFoundError, clear_flag, is_flagged
from shared.program.config import AnomalyRules, ProgramConfig
from tests.support.jobs import World, make_world

if TYPE_CHECKING:
    from functions.services import Services

AT = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
RULES = AnomalyRules(max_earns_per_card_per_hour=3, max_exchanges_per_member_per_hour=2)


class Context:
    function_name, memory_limit_in_mb, invoked_function_arn, aws_request_id = "watch", 128, "arn", "req"


@pytest.fixture
def world(services: Services) -> World:
    """The program on the test's services, which the stream handler gets (installed)."""
    return make_world(services, ProgramConfig(program="demo", name="Demo", anomaly=RULES))


def stream_event(world: World, seen: set[str]) -> dict[str, Any]:
    """The INSERT records DynamoDB Streams would deliver for entries written since the last call."""
    serializer = TypeSerializer()
    records = []
    for item in world.items():
        if item.get("type") != "entry" or item["PK"] in seen:
            continue
        seen.add(item["PK"])
        image = {k: serializer.serialize(v) for k, v in item.items()}
        records.append(
            {
                "eventID": item["PK"],
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "dynamodb": {"Keys": {"PK": image["PK"], "SK": image["SK"]}, "NewImage": image, "SequenceNumber": "1"},
            }
        )
    return {"Records": records}


def partner_earn(world: World, member: str, ext: str, points: int, partner: str, at: datetime) -> None:
    world.ledger.earn(
        Earn(
            program="demo",
            member=member,
            points=points,
            source="partner",
            external_id=ext,
            reason="partner earn",
            event_time=at,
            counter=Account.PARTNER,
            counter_owner=partner,
        ),
        at=at,
    )


def test_daily_statement_nets_each_partner_and_lands_in_s3(world: World) -> None:
    # Given acme issued 100 + 50 points to members, and ann spent 30 at acme; beta issued 20
    partner_earn(world, "ann", "a-1", 100, "acme", AT)
    partner_earn(world, "bob", "a-2", 50, "acme", AT)
    partner_earn(world, "cy", "b-1", 20, "beta", AT)
    spend = Spend(program="demo", member="ann", points=30, source="acme", external_id="x-1", reason="swap")
    world.ledger.spend(spend.model_copy(update={"counter": Account.PARTNER, "counter_owner": "acme"}), at=AT)
    world.earn("dan", 10, "o-1", AT)  # not a partner entry
    # When the stream delivers the entries (twice: at-least-once) and the daily job runs
    seen: set[str] = set()
    event = stream_event(world, seen)
    assert watch_handler(event, Context()) == {"batchItemFailures": []}  # type: ignore[arg-type]
    watch_handler(event, Context())  # type: ignore[arg-type]
    bucket = world.services.settings.statements_bucket
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    world.services.settlement_job.run(JobInput(now=AT + timedelta(days=1), simulate=True))
    # Then the statement nets each partner once, in JSON and CSV
    result = statement(world.services.exchange_items, "demo", date(2026, 2, 3))
    acme, beta = result.positions
    assert (acme.partner, acme.points_to_partner, acme.points_from_partner, acme.net) == ("acme", 30, 150, -120)
    assert (beta.partner, beta.net, beta.entries) == ("beta", -20, 1)
    stored = json.loads(s3.get_object(Bucket=bucket, Key="statements/demo/2026-02-03/settlement.json")["Body"].read())
    assert stored["positions"][0]["net"] == -120
    rows = list(
        csv.DictReader(
            io.StringIO(
                s3.get_object(Bucket=bucket, Key="statements/demo/2026-02-03/settlement.csv")["Body"].read().decode()
            )
        )
    )
    assert [(r["partner"], r["net"]) for r in rows] == [("acme", "-120"), ("beta", "-20")]


def test_many_earns_from_one_card_flag_the_member_until_cleared(world: World) -> None:
    # Given four earns from one card within an hour (threshold 3)
    seen: set[str] = set()
    for i in range(4):
        world.ledger.earn(
            Earn(
                program="demo",
                member="ann",
                points=10,
                source="till",
                external_id=f"t-{i}",
                reason="purchase",
                event_time=AT + timedelta(minutes=i),
                details={"card": "card-9"},
            ),
            at=AT + timedelta(minutes=i),
        )
        if i == 2:
            watch_handler(stream_event(world, seen), Context())  # type: ignore[arg-type]
            assert not is_flagged(world.services.members, "demo", "ann")
    # When the stream delivers the fourth
    watch_handler(stream_event(world, seen), Context())  # type: ignore[arg-type]
    # Then ann is flagged with the reason, so the ingest path holds her new points
    assert is_flagged(world.services.members, "demo", "ann")
    flag = world.services.members.get_flag("demo", "ann")
    assert flag is not None and "4 earns from card card-9" in flag.reason
    # And when an operator clears it, the decision is recorded next to the flag
    clear_flag(
        world.services.members, "demo", "ann", operator="ops-1", note="family card, checked", at=AT + timedelta(hours=2)
    )
    assert not is_flagged(world.services.members, "demo", "ann")
    assert [d.decision for d in world.services.members.flag_log("demo", "ann")] == ["flagged", "cleared"]
    with pytest.raises(FlagNotFoundError):
        clear_flag(world.services.members, "demo", "ann", operator="ops-1", note="again", at=AT + timedelta(hours=3))


def test_the_same_order_from_two_channels_is_flagged(world: World) -> None:
    seen: set[str] = set()
    world.earn("bob", 10, "order-7", AT)
    world.ledger.earn(
        Earn(program="demo", member="bob", points=10, source="till", external_id="order-7", reason="x", event_time=AT),
        at=AT,
    )
    watch_handler(stream_event(world, seen), Context())  # type: ignore[arg-type]
    assert is_flagged(world.services.members, "demo", "bob")


def test_a_burst_of_exchanges_is_flagged_and_a_redelivery_counts_once(world: World) -> None:
    seen: set[str] = set()
    for i in range(2):
        partner_earn(world, "cy", f"x-{i}", 5, "acme", AT + timedelta(minutes=i))
    event = stream_event(world, seen)
    for _ in range(3):  # redelivered: still two exchanges
        watch_handler(event, Context())  # type: ignore[arg-type]
    assert not is_flagged(world.services.members, "demo", "cy")
    partner_earn(world, "cy", "x-9", 5, "acme", AT + timedelta(minutes=5))
    watch_handler(stream_event(world, seen), Context())  # type: ignore[arg-type]
    assert is_flagged(world.services.members, "demo", "cy")


def test_a_batch_of_partner_earns_writes_its_settlement_lines_in_batch_writes(world: World) -> None:
    # A partner file's rows reach the stream thirty at a time: their lines go 25 to a request, not one each.
    for n in range(30):
        partner_earn(world, f"m-{n}", f"f-{n}", 10, "acme", AT)
    event = stream_event(world, set())
    stats = world.services.table.stats
    stats.reset()

    assert watch_handler(event, Context()) == {"batchItemFailures": []}  # type: ignore[arg-type]

    assert stats.requests["PutItem"] == 0, stats.requests
    assert stats.requests["BatchWriteItem"] >= 2  # the lines' two, and the outbound marks'
    (acme,) = statement(world.services.exchange_items, "demo", date(2026, 2, 3)).positions
    assert (acme.partner, acme.points_from_partner, acme.entries) == ("acme", 300, 30)
    # A redelivery rewrites the same lines: still thirty
    watch_handler(event, Context())  # type: ignore[arg-type]
    (acme,) = statement(world.services.exchange_items, "demo", date(2026, 2, 3)).positions
    assert acme.entries == 30
