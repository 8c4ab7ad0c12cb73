"""The table's stream: velocity checks (anomaly watch), partner settlement lines and program figures for new entries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from functions.services import services
from shared.exchange.settlement import record_partner_postings
from shared.ledger.models import Entry
from shared.projections.figures import record_entry

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def record_handler(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else None
    if record.event_name is None or record.event_name.name != "INSERT" or not image or image.get("type") != "entry":
        return  # the event source's FilterCriteria drops these already (on AWS and in the sandbox)
    entry = Entry.model_validate_json(image["body"])
    s = services()
    record_partner_postings(s.exchange_items, entry)
    record_entry(s.figure_items, s.programs, entry)
    for finding in s.watch.observe(entry):
        logger.warning(
            "member flagged", extra={"program": entry.program, "member": finding.member, "check": finding.check}
        )


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
