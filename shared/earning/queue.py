"""Sending normalised events to the ingest queue, and poison messages to its dead-letter queue.

One message is one normalised event, as `{"event": {...}}`: the envelope leaves room for metadata
later without touching the event model. SQS takes at most 10 messages per batch call.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from shared.errors import PointbridgeError
from shared.infra import aws

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mypy_boto3_sqs import SQSClient

    from shared.earning.core import Event

SQS_BATCH = 10


class QueueError(PointbridgeError):
    """Raised when SQS refused some messages of a batch even after a retry; the caller retries."""

    code = "queue_unavailable"
    status = 503


def envelope(event: Event) -> str:
    return json.dumps({"event": json.loads(event.model_dump_json())}, separators=(",", ":"))


class EventQueue:
    def __init__(self, url: str, client: SQSClient | None = None) -> None:
        self.url = url
        self._client = client

    @property
    def client(self) -> SQSClient:
        return self._client or aws.sqs()

    def send(self, events: Sequence[Event]) -> int:
        """Queue every event; returns how many. Partially failed batches are resent once, then raise."""
        for start in range(0, len(events), SQS_BATCH):
            pending: dict[str, Any] = {
                str(i): {"Id": str(i), "MessageBody": envelope(event)}
                for i, event in enumerate(events[start : start + SQS_BATCH])
            }
            for _ in range(2):
                response = self.client.send_message_batch(QueueUrl=self.url, Entries=list(pending.values()))
                pending = {f["Id"]: pending[f["Id"]] for f in response.get("Failed", [])}
                if not pending:
                    break
            if pending:
                raise QueueError(f"SQS refused {len(pending)} messages", failed=len(pending))
        return len(events)

    def dead_letter(self, body: str, *, code: str, reason: str, original_message_id: str) -> None:
        self.client.send_message(
            QueueUrl=self.url,
            MessageBody=body,
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason[:1000] or code},
                "code": {"DataType": "String", "StringValue": code},
                "original_message_id": {"DataType": "String", "StringValue": original_message_id},
            },
        )
