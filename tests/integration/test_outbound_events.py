"""Outbound events from the table's stream: each cause published once, as the committed schemas say."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer

from functions.watch.app import STREAMED
from functions.watch.app import handler as watch_handler
from shared.events.catalogue import LEDGER_EVENTS
from shared.infra import aws
from shared.jobs.notify import EventBridgeNotifier
from shared.jobs.walk import JobInput
from shared.ledger.commands import Earn
from shared.members.records import TierChange, TierRecord
from shared.program.config import AnomalyRules, ProgramConfig, Tier
from tests.support.iam import template_name
from tests.support.jobs import World, make_world
from tests.support.outbound import Capture, capture

if TYPE_CHECKING:
    from collections.abc import Sequence

    from functions.services import Services

AT = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
TIERS = (Tier(name="member", rank=0), Tier(name="gold", rank=1, threshold=100))


class Context:
    function_name, memory_limit_in_mb, invoked_function_arn, aws_request_id = "watch", 128, "arn", "req"


@pytest.fixture
def world(services: Services) -> World:
    config = ProgramConfig(
        program="demo", name="Demo", tiers=TIERS, anomaly=AnomalyRules(max_earns_per_card_per_hour=2)
    )
    return make_world(services, config)


@pytest.fixture
def crm() -> Capture:
    return capture(boto3.client("events"), boto3.client("sqs"), template_name("NotificationsBus"))


def stream(world: World) -> dict[str, Any]:
    """Every INSERT record the watch's event source passes (entries, tier moves, flags) for the table now."""
    serializer = TypeSerializer()
    records = []
    for n, item in enumerate(world.items()):
        if item.get("type") not in STREAMED:
            continue
        image = {k: serializer.serialize(v) for k, v in item.items()}
        keys = {"PK": image["PK"], "SK": image["SK"]}
        records.append(
            {
                "eventID": f"{item['PK']}|{item['SK']}",
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "dynamodb": {"Keys": keys, "NewImage": image, "SequenceNumber": str(n + 1)},
            }
        )
    return {"Records": records}


def deliver(world: World) -> None:
    assert watch_handler(stream(world), Context()) == {"batchItemFailures": []}  # type: ignore[arg-type]


def test_each_cause_is_published_once_in_the_committed_shape(world: World, crm: Capture) -> None:
    # Given a purchase at a till, three more with one card in the hour (the third raises a flag),
    # a reward, a move up to gold and an earn that expires
    purchase = {"basis_amount": "64.00", "currency": "USD", "channel": "pos", "order_ref": "R1001"}
    world.ledger.earn(
        Earn(
            program="demo",
            member="ann",
            points=64,
            source="till:S01",
            external_id="R1001",
            reason="purchase",
            event_time=AT,
            details=purchase,
        ),
        at=AT,
    )
    for i in range(3):
        world.ledger.earn(
            Earn(
                program="demo",
                member="bob",
                points=10,
                source="till:S01",
                external_id=f"t-{i}",
                reason="purchase",
                event_time=AT + timedelta(minutes=i),
                details={"card": "c" * 64},
            ),
            at=AT + timedelta(minutes=i),
        )
    world.spend("ann", 20, "r-1", AT + timedelta(hours=1))
    change = TierChange(
        at="2026-02-03T11:00:00Z",
        from_tier="member",
        to_tier="gold",
        reason="upgrade: 120 points earned in 12 months reaches gold (100)",
        points=120,
        spend="0",
        config_version=1,
    )
    record = TierRecord(tier="gold", since=change.at, period_ends="2027-02-03T11:00:00Z", due_at="2027-02-03T11:00:00Z")
    assert world.services.members.move_tier("demo", "ann", record, change)
    world.earn("cy", 30, "o-9", AT, expires_at=AT + timedelta(days=10))
    world.services.expiry_job.run(JobInput(now=AT + timedelta(days=11), simulate=True))

    # When the stream delivers everything, and then all of it again (at-least-once)
    deliver(world)
    deliver(world)

    # Then each cause arrived once, every event valid against docs/events/<type>.json (Capture checks)
    earned = crm.of("PointsEarned")
    assert sorted((e["member"], e["points"]) for e in earned) == [
        ("ann", 64),
        ("bob", 10),
        ("bob", 10),
        ("bob", 10),
        ("cy", 30),
    ]
    till = next(e for e in earned if e["member"] == "ann")
    assert till["channel"] == "pos" and till["pending"] is False
    assert till["words"]["en"].startswith("Points for your purchase in store: order R1001 at store S01, 64.00 USD")
    assert till["words"]["zh-CN"].startswith("门店消费积分")
    assert [(e["member"], e["points"]) for e in crm.of("PointsRedeemed")] == [("ann", 20)]
    expired = crm.of("PointsExpired")
    assert [(e["member"], e["points"]) for e in expired] == [("cy", 30)]
    assert "2026-02-03" in expired[0]["words"]["en"]  # which earn: the one of that day
    tiers = crm.of("TierChanged")
    assert [(t["member"], t["from_tier"], t["to_tier"], t["direction"]) for t in tiers] == [
        ("ann", "member", "gold", "up")
    ]
    flags = crm.of("FlagRaised")
    assert [(f["member"], f["check"]) for f in flags] == [("bob", "card_velocity")]
    ids = [event["detail"]["id"] for event in crm.seen]
    assert len(ids) == len(set(ids)) == 5 + 1 + 1 + 1 + 1


def _calls(operation: str) -> list[int]:
    """A counter of `operation` calls by the shared EventBridge client (a hook on the real client)."""
    counted = [0]

    def count(**_: Any) -> None:
        counted[0] += 1

    aws.events().meta.events.register(f"before-call.events.{operation}", count)
    return counted


def test_a_batch_is_published_ten_events_a_request_with_one_marker_read(world: World, crm: Capture) -> None:
    # Given thirty purchases by thirty members, delivered in one stream batch
    for n in range(30):
        world.earn(f"m{n:02d}", 10 + n, f"o-{n}", AT)
    put_events = _calls("PutEvents")
    world.services.table.stats.reset()
    deliver(world)
    # Then each arrives once, sent ten a request, their markers read once and written 25 a request
    assert sorted(e["points"] for e in crm.of("PointsEarned")) == [10 + n for n in range(30)]
    requests = world.services.table.stats.requests
    assert (put_events[0], requests["BatchGetItem"], requests["BatchWriteItem"], requests["PutItem"]) == (3, 1, 2, 0)
    # And the same batch again (at-least-once) sends nothing and writes no marker
    world.services.table.stats.reset()
    deliver(world)
    assert crm.drain() == [] and put_events[0] == 3
    assert world.services.table.stats.requests["BatchWriteItem"] == 0


@dataclass
class HalfAccepting:
    """A bus that takes only every other event of a batch (as PutEvents may answer), and single ones."""

    bus: EventBridgeNotifier
    refused: list[str] = field(default_factory=list)

    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        self.bus.publish(detail_type, event_id, detail)

    def publish_all(self, events: Sequence[tuple[str, str, dict[str, Any]]]) -> set[str]:
        taken, left = list(events[::2]), list(events[1::2])
        self.refused += [event_id for _, event_id, _ in left]
        return self.bus.publish_all(taken)


def test_events_a_batch_request_refused_are_sent_by_their_own_records(services: Services, crm: Capture) -> None:
    bus = HalfAccepting(
        EventBridgeNotifier(template_name("NotificationsBus"), client=aws.events(), source=LEDGER_EVENTS)
    )
    services._notifier = bus  # noqa: SLF001 - the composition root's seam for a notifier
    world = make_world(services, ProgramConfig(program="demo", name="Demo"))
    for n in range(6):
        world.earn(f"m{n}", 10 + n, f"o-{n}", AT)
    deliver(world)
    deliver(world)
    assert len(bus.refused) == 3
    assert sorted(e["points"] for e in crm.of("PointsEarned")) == [10, 11, 12, 13, 14, 15]
