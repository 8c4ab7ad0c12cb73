"""SQS -> ledger. One message is one normalised event (`{"event": {...}}` or the bare event).

Every message that ends in the dead-letter queue carries its reason (attributes `reason`, `code`,
`original_message_id`):

- a poison message (unparseable, too deeply nested, a time outside any sensible range, unknown
  program, invalid, a conflicting reuse of an id) would fail the same way on every retry, so it is
  sent to the DLQ at once with its reason and reported as done;
- anything that may pass later (contention, throttling, an outage, a bug) raises, and the record
  alone is retried through the partial batch response; on its last delivery (the queue's
  maxReceiveCount, `INGEST_MAX_RECEIVES`) it is dead-lettered by this function with the error
  (`retries_exhausted`) instead of being moved by the redrive with none;
- only a message whose every delivery ended without the function reporting (a crash, a timeout)
  reaches the DLQ through the queue's redrive, bare: `pointbridge dlq` names those as such and
  sends them back (docs/channels.md, "DLQ reasons").

A batch's messages are parsed once, first, the identity links they name read in one request and
the members' views in one more (`read_ahead`); each message is then delivered on its own as above.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from pydantic import ValidationError

from functions import handler_loaded
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
RETRIES_EXHAUSTED = "retries_exhausted"
# The batch's messages that parsed, by message id: parsed once, before the batch, for `read_ahead`.
_parsed: dict[str, Event] = {}


class PoisonMessageError(PointbridgeError):
    """Raised when a message is not a normalised event at all (not JSON, wrong shape)."""

    code = "malformed_event"
    status = 400


def read_message(body: str) -> Event:
    try:
        data: Any = json.loads(body)
    except ValueError as exc:
        raise PoisonMessageError(f"message is not JSON: {exc}") from None
    except RecursionError:
        raise PoisonMessageError("message is JSON nested too deeply to read") from None
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


def _dead_letter(record: SQSRecord, code: str, reason: str) -> None:
    logger.warning("dead-lettered", extra={"code": code, "message_id": record.message_id})
    metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=1)
    services().dead_letter_queue.dead_letter(
        record.body, code=code, reason=reason, original_message_id=record.message_id
    )


def _last_delivery(record: SQSRecord) -> bool:
    received = int(record.attributes.approximate_receive_count or 1)
    return received >= services().settings.ingest_max_receives


def deliver(record: SQSRecord) -> None:
    try:
        message = _parsed.pop(record.message_id, None)
        outcome = services().ingest.handle(read_message(record.body) if message is None else message)
    except ContentionError as error:
        if not _last_delivery(record):
            raise  # transient: let SQS redeliver this record
        _dead_letter(record, RETRIES_EXHAUSTED, f"still failing on delivery {_receives(record)}: {error.detail}")
        return
    except PointbridgeError as error:
        _dead_letter(record, error.code, error.detail)
        return
    except Exception as error:
        if not _last_delivery(record):
            raise  # may pass later (throttling, an outage): SQS redelivers this record
        detail = f"still failing on delivery {_receives(record)}: {type(error).__name__}: {error}"
        logger.exception("giving up on a message", extra={"message_id": record.message_id})
        _dead_letter(record, RETRIES_EXHAUSTED, detail)
        return
    metrics.add_metric(name=f"Events{outcome.status.title()}", unit=MetricUnit.Count, value=1)


def _receives(record: SQSRecord) -> str:
    return record.attributes.approximate_receive_count or "1"


def read_ahead(records: list[dict[str, Any]]) -> bool:
    """Parse the batch's messages once, read the identity links they name in one request and the
    views their earns decide on in one more (`Ingest.read_ahead`).

    A message that does not parse, or a read that fails, is left to its own delivery (which meets
    the error again and reports it, or reads its link and view itself). False: nothing was read ahead."""
    _parsed.clear()
    for record in records:
        try:
            _parsed[str(record["messageId"])] = read_message(str(record["body"]))
        except Exception:  # noqa: BLE001 - its delivery meets the error again and dead-letters it
            continue
    if not _parsed:
        return False
    try:
        services().ingest.read_ahead(list(_parsed.values()))
    except Exception:  # noqa: BLE001 - each event reads its own link then
        logger.exception("the batch's identity links or views not read at once; reading them one by one")
    return True


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    read = read_ahead(list(event.get("Records", [])))
    try:
        return process_partial_response(event=event, record_handler=deliver, processor=processor, context=context)
    finally:
        _parsed.clear()
        if read:
            services().ingest.forget_read_ahead()


handler_loaded()
