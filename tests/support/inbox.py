"""One-time codes as their receiver sees them: the notifications bus copied to a queue.

A rule on the bus sends `VerificationCodeIssued` events (source `pointbridge.identities`) to an SQS
queue the test made; `code_for` reads them there, as a delivery service would. Works against moto
in process (mock_aws) and against the sandbox's emulator alike.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from functions.services import IDENTITY_EVENTS
from shared.members.verification import EVENT


@dataclass
class CodeInbox:
    sqs: Any
    queue_url: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # verification id -> detail

    def detail(self, verification_id: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while verification_id not in self.events:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no VerificationCodeIssued for {verification_id}")
            for message in self.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=1).get("Messages", []):
                event = json.loads(message["Body"])
                assert event["detail-type"] == EVENT and event["source"] == IDENTITY_EVENTS, event
                self.events[event["detail"]["id"]] = event["detail"]
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return self.events[verification_id]

    def code_for(self, verification_id: str) -> str:
        return str(self.detail(verification_id)["code"])


def code_inbox(events: Any, sqs: Any, bus: str) -> CodeInbox:
    """Copy the bus's code events to a fresh queue (the bus is made if it does not exist)."""
    if bus not in {b["Name"] for b in events.list_event_buses()["EventBuses"]}:
        events.create_event_bus(Name=bus)
    name = f"codes-{uuid.uuid4().hex[:12]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": [IDENTITY_EVENTS], "detail-type": [EVENT]}
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "inbox", "Arn": arn}])
    return CodeInbox(sqs, url)
