"""SQS -> ledger. One message is one normalised event (`{"event": {...}}` or the bare event).

A poison message (unparseable, unknown program, invalid, a conflicting reuse of an id) would fail
the same way on every retry, so it goes straight to the dead-letter queue with its reason and is
reported as done; anything that may pass later (contention, throttling, an outage) raises, and the
record alone is retried through the partial batch response.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from pydantic import ValidationError

from functions.services import services
from shared.earning.core import parse_event
from shared.errors import ContentionError, PointbridgeError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from shared.earning.core import Event

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


class PoisonMessageError(PointbridgeError):
    """Raised when a message is not a normalised event at all (not JSON, wrong shape)."""

    code = "malformed_event"
    status = 400


def read_message(body: str) -> Event:
    try:
        data: Any = json.loads(body)
    except ValueError as exc:
        raise PoisonMessageError(f"message is not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("event"), dict):
        data = data["event"]
    if not isinstance(data, dict):
        raise PoisonMessageError("message is not a JSON object")
    try:
        return parse_event(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PoisonMessageError(f"not a normalised event: {where}: {first['msg']}") from None


def deliver(record: SQSRecord) -> None:
    try:
        outcome = services().ingest.handle(read_message(record.body))
    except ContentionError:
        raise  # transient: let SQS redeliver this record
    except PointbridgeError as error:
        logger.warning("dead-lettered", extra={"code": error.code, "message_id": record.message_id})
        metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=1)
        services().dead_letter_queue.dead_letter(
            record.body, code=error.code, reason=error.detail, original_message_id=record.message_id
        )
        return
    metrics.add_metric(name=f"Events{outcome.status.title()}", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=deliver, processor=processor, context=context)
