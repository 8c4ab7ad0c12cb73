"""The table's stream: velocity checks (anomaly watch), partner settlement lines, program figures and outbound events.

New entries feed every projection; a tier move's and a flag's records feed the outbound events only
(`shared.projections.outbound`: the stream is the outbox, each cause published once by its marker).

Each projection is idempotent per entry (a marker, a line keyed by entry, a set-add), so a record
delivered again, or replayed by `pointbridge dlq redrive watch`, counts once. A record that fails is
noted with its error (`FailureNotes`, keyed by its entry) before it is reported failed: after
MaximumRetryAttempts Lambda sends only where the batch was to the on-failure destination
(WatchDeadLetterQueue), and the note is what says why, and what to replay once the stream has
trimmed the record (24 hours).

A batch's program figures are counted first, in a transaction per program and day for all its
entries (`count_figures`), since a transaction per entry was most of what the stream cost the
table; its outbound events are then published together (`publish_outbound`: one marker read,
PutEvents ten at a time, batched marker writes, instead of three requests per event), and its
velocity windows are added in one transaction when no entry of it can flag (`watch_quietly`,
`Watch.observe_quiet`). Each entry is parsed once for all of these. The records' own handling then
does only what those left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from functions import handler_loaded
from functions.services import services
from shared.exchange.settlement import record_batch_postings, record_partner_postings
from shared.ledger.models import Entry
from shared.projections.figures import record_entries, record_entry

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from functions.services import Services
    from shared.projections.watch import Finding

logger = Logger()
# The item types the event source passes (template.yaml, FilterCriteria): entries, tier moves, flags.
STREAMED = frozenset({"entry", "tier_change", "flag_decision"})
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


# Entries of the batch being handled whose figures `count_figures` already recorded, by entry id.
_figures_counted: set[str] = set()
# Records of the batch whose outbound event `publish_outbound` already sent (or that have none), by sequence number.
_published: set[str] = set()
# The batch's entries, parsed once, by their item's key (`batch_entries`).
_parsed: dict[str, Entry] = {}
# Entries of the batch whose settlement lines `settle_batch` already wrote, by entry id.
_settled: set[str] = set()
# Entries of the batch `watch_quietly` counted in their velocity windows (none of them flags), by program and id.
_watched: set[tuple[str, str]] = set()


def project(
    s: Services,
    entry: Entry,
    figures_counted: bool = False,
    published: bool = False,
    watched: bool = False,
    settled: bool = False,
) -> list[Finding]:
    """Everything the stream feeds from one new entry; safe to repeat."""
    if not settled:
        record_partner_postings(s.exchange_items, entry)
    if not figures_counted:
        record_entry(s.figure_items, s.programs, entry)
    findings = [] if watched else s.watch.observe(entry)
    if not published:
        s.outbound.on_entry(entry)
    return findings


def _streamed_image(record: DynamoDBRecord) -> dict[str, Any] | None:
    image = record.dynamodb.new_image if record.dynamodb else None
    kind = image.get("type") if image else None
    if record.event_name is None or record.event_name.name != "INSERT" or not image or kind not in STREAMED:
        return None  # the event source's FilterCriteria drops these already (on AWS and in the sandbox)
    return image


def _entry_image(record: DynamoDBRecord) -> dict[str, Any] | None:
    image = _streamed_image(record)
    return image if image is not None and image.get("type") == "entry" else None


def batch_entries(records: list[DynamoDBRecord]) -> dict[str, Entry]:
    """The entries of the batch's records by their item's key (an entry item is written once, never
    changed), in order, each parsed once for every step (one that does not parse is left to its record's handling)."""
    entries = {}
    for record in records:
        image = _entry_image(record)
        if image is None or str(image.get("PK", "")) in entries:
            continue
        try:
            entries[str(image.get("PK", ""))] = Entry.model_validate_json(image["body"])
        except ValueError:
            continue
    return entries


def count_figures(s: Services, entries: list[Entry]) -> set[str]:
    """The batch's figures in a transaction per program and day (not one per entry); the ids counted.

    Whatever is not counted here (an entry counted before, a record that does not parse, busy
    counters, any error) is counted by its own record's handling, which reports its failure."""
    try:
        return record_entries(s.figure_items, s.programs, entries)
    except Exception:  # noqa: BLE001 - each record's own handling meets the error again and reports it
        logger.exception("figures of the batch not counted at once; counting them one by one")
        return set()


def settle_batch(s: Services, entries: list[Entry]) -> set[str]:
    """The batch's settlement lines in batch writes (not a put per entry); the entry ids done.

    What is not written here (any error) is written by its own record's handling, which reports its failure."""
    try:
        return record_batch_postings(s.exchange_items, entries)
    except Exception:  # noqa: BLE001 - each record's own handling meets the error again and reports it
        logger.exception("settlement lines of the batch not written at once; writing them one by one")
        return set()


def watch_quietly(s: Services, entries: list[Entry]) -> set[tuple[str, str]]:
    """The batch's velocity windows at once when no entry of it flags (`Watch.observe_quiet`); the entries counted.

    What is not counted here (a window the batch may take past its limit, any error) is counted by
    its own record's handling, entry by entry, which raises the flags and reports its failure."""
    try:
        return s.watch.observe_quiet(entries)
    except Exception:  # noqa: BLE001 - each record's own handling meets the error again and reports it
        logger.exception("velocity windows of the batch not counted at once; counting them one by one")
        return set()


def publish_outbound(s: Services, records: list[DynamoDBRecord], entries: dict[str, Entry]) -> set[str]:
    """The batch's outbound events at once (`Outbound.on_batch`); the sequence numbers done.

    As with the figures, what is not done here (a record that does not parse, an event refused,
    any error) is sent by its own record's handling, which reports its failure."""
    causes: dict[str, Entry | dict[str, Any]] = {}
    for record in records:
        image = _streamed_image(record)
        sequence = _sequence(record)
        if image is None or not sequence:
            continue
        if image.get("type") != "entry":
            causes[sequence] = image
        elif str(image.get("PK", "")) in entries:
            causes[sequence] = entries[str(image.get("PK", ""))]
    try:
        return s.outbound.on_batch(causes)
    except Exception:  # noqa: BLE001 - each record's own handling meets the error again and reports it
        logger.exception("outbound events of the batch not sent at once; sending them one by one")
        return set()


def _sequence(record: DynamoDBRecord) -> str:
    return (record.dynamodb.sequence_number if record.dynamodb else None) or ""


def record_handler(record: DynamoDBRecord) -> None:
    image = _streamed_image(record)
    if image is None:
        return
    kind = image.get("type")
    s = services()
    published = _sequence(record) in _published
    if kind != "entry":
        if published:
            return
        try:
            s.outbound.on_item(image)
        except Exception as error:
            _note_failure(s, record, str(image.get("PK", "")), error)
            raise
        return
    try:
        entry = _parsed.get(str(image.get("PK", ""))) or Entry.model_validate_json(image["body"])
        findings = project(
            s,
            entry,
            figures_counted=entry.entry_id in _figures_counted,
            published=published,
            watched=(entry.program, entry.entry_id) in _watched,
            settled=entry.entry_id in _settled,
        )
    except Exception as error:
        _note_failure(s, record, str(image.get("PK", "")), error)
        raise
    for finding in findings:
        logger.warning(
            "member flagged", extra={"program": entry.program, "member": finding.member, "check": finding.check}
        )


def _note_failure(s: Services, record: DynamoDBRecord, entry_pk: str, error: Exception) -> None:
    sequence = _sequence(record)
    reason = f"{type(error).__name__}: {error}"
    logger.warning("stream record failed", extra={"entry": entry_pk, "sequence_number": sequence, "error": reason})
    try:
        s.failure_notes.note(entry_pk, sequence, reason, s.now())
    except Exception:  # the note is best effort: the record's own failure is what gets reported
        logger.exception("could not note the failure", extra={"entry": entry_pk})


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = [DynamoDBRecord(r) for r in event.get("Records", [])]
    _parsed.clear()
    _parsed.update(batch_entries(records))
    entries = list(_parsed.values())
    _figures_counted.clear()
    _figures_counted.update(count_figures(services(), entries))
    _settled.clear()
    _settled.update(settle_batch(services(), entries))
    _watched.clear()
    _watched.update(watch_quietly(services(), entries))
    _published.clear()
    _published.update(publish_outbound(services(), records, _parsed))
    try:
        return dict(
            process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
        )
    finally:
        _parsed.clear()
        _figures_counted.clear()
        _settled.clear()
        _watched.clear()
        _published.clear()


handler_loaded()
