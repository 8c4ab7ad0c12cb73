"""The table's stream: velocity checks (anomaly watch), partner settlement lines, program figures and outbound events.

New entries feed every projection; a tier move's and a flag's records feed the outbound events only
(`shared.projections.outbound`: the stream is the outbox, each cause published once by its marker).

Each projection is idempotent per entry (a marker, a line keyed by entry, a set-add), so a record
delivered again, or replayed by `pointbridge dlq redrive watch`, counts once. A record that fails is
noted with its error (`FailureNotes`, keyed by its entry) before it is reported failed: after
MaximumRetryAttempts Lambda sends only where the batch was to the on-failure destination
(WatchDeadLetterQueue), and the note is what says why, and what to replay once the stream has
trimmed the record (24 hours).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from functions import handler_loaded
from functions.services import services
from shared.exchange.settlement import record_partner_postings
from shared.ledger.models import Entry
from shared.projections.figures import record_entry

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from functions.services import Services
    from shared.projections.watch import Finding

logger = Logger()
# The item types the event source passes (template.yaml, FilterCriteria): entries, tier moves, flags.
STREAMED = frozenset({"entry", "tier_change", "flag_decision"})
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def project(s: Services, entry: Entry) -> list[Finding]:
    """Everything the stream feeds from one new entry; safe to repeat."""
    record_partner_postings(s.exchange_items, entry)
    record_entry(s.figure_items, s.programs, entry)
    findings = s.watch.observe(entry)
    s.outbound.on_entry(entry)
    return findings


def record_handler(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else None
    kind = image.get("type") if image else None
    if record.event_name is None or record.event_name.name != "INSERT" or not image or kind not in STREAMED:
        return  # the event source's FilterCriteria drops these already (on AWS and in the sandbox)
    s = services()
    if kind != "entry":
        try:
            s.outbound.on_item(image)
        except Exception as error:
            _note_failure(s, record, str(image.get("PK", "")), error)
            raise
        return
    try:
        entry = Entry.model_validate_json(image["body"])
        findings = project(s, entry)
    except Exception as error:
        _note_failure(s, record, str(image.get("PK", "")), error)
        raise
    for finding in findings:
        logger.warning(
            "member flagged", extra={"program": entry.program, "member": finding.member, "check": finding.check}
        )


def _note_failure(s: Services, record: DynamoDBRecord, entry_pk: str, error: Exception) -> None:
    sequence = (record.dynamodb.sequence_number if record.dynamodb else None) or ""
    reason = f"{type(error).__name__}: {error}"
    logger.warning("stream record failed", extra={"entry": entry_pk, "sequence_number": sequence, "error": reason})
    try:
        s.failure_notes.note(entry_pk, sequence, reason, s.now())
    except Exception:  # the note is best effort: the record's own failure is what gets reported
        logger.exception("could not note the failure", extra={"entry": entry_pk})


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )


handler_loaded()
