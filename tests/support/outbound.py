"""The outbound events as a subscriber receives them, checked against the committed contract.

`capture(events, sqs, bus)` puts a rule on the bus (every source of the catalogue) with a fresh
queue as its target, as template.yaml's CrmEventsRule does; `drain()` reads what arrived and checks
each event against its JSON Schema under docs/events/ (the committed file, not the model: the file
is what subscribers code against). Works against moto in process and against the sandbox alike.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from shared.events.catalogue import SCHEMA_DIR, SOURCES


@cache
def committed_schema(detail_type: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{detail_type}.json"
    assert path.exists(), f"{detail_type} is published but has no schema under docs/events/"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def check(event: dict[str, Any]) -> None:
    """One EventBridge event (source, detail-type, detail) against its committed schema."""
    schema = committed_schema(event["detail-type"])
    assert event["source"] == schema["x-source"], (event["source"], schema["x-source"])
    jsonschema.validate(event["detail"], schema, cls=jsonschema.Draft202012Validator)


@dataclass
class Capture:
    sqs: Any
    queue_url: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    def drain(self, wait_seconds: int = 0) -> list[dict[str, Any]]:
        """Every event that arrived since the last drain, each checked against its schema."""
        arrived: list[dict[str, Any]] = []
        while True:
            reply = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
            )
            messages = reply.get("Messages", [])
            if not messages:
                break
            for message in messages:
                event = json.loads(message["Body"])
                check(event)
                arrived.append(event)
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            wait_seconds = 0
        self.seen.extend(arrived)
        return arrived

    def of(self, detail_type: str) -> list[dict[str, Any]]:
        self.drain()
        return [event["detail"] for event in self.seen if event["detail-type"] == detail_type]


def capture(events: Any, sqs: Any, bus: str) -> Capture:
    """Subscribe a fresh queue to every outbound event on `bus` (made if it does not exist)."""
    if bus not in {b["Name"] for b in events.list_event_buses()["EventBuses"]}:
        events.create_event_bus(Name=bus)
    name = f"outbound-{uuid.uuid4().hex[:12]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": list(SOURCES)}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "capture", "Arn": arn}])
    return Capture(sqs, url)
