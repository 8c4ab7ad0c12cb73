"""`pointbridge dlq`: what is in the dead-letter queues, why, and sending it back.

Two queues (docs/channels.md, "DLQ reasons" and "Stream dead letters"):

- `ingest` (IngestDeadLetterQueue): one message per event. The ingest function sends poison and
  given-up messages with attributes `code` and `reason`; a message without them was moved by the
  queue's redrive after its last delivery, which happens only when every delivery ended without
  the function reporting (a crash, a timeout, out of memory), and is named as such. `redrive`
  sends messages back to IngestQueue and deletes them from the DLQ: by default the ones a retry
  may fix (no reason recorded, or `retries_exhausted`), others with `--code CODE` or `--all`.
  Sending back is safe: ingest posts each event once, whatever the number of deliveries.
- `watch` (WatchDeadLetterQueue): one message per stream batch WatchFunction gave up on, in
  Lambda's on-failure record (shard and sequence range, not the records). `list` reads the range
  back from the stream and names each record's last error from the function's failure notes;
  `redrive` replays each entry of the range through the same projections (figures, settlement
  lines, the anomaly watch: each idempotent per entry, so a record counts once however often it
  is replayed), clears its note and deletes the message. Once the stream has trimmed the range (24
  hours), the notes whose sequence numbers fall in it say which entries to replay from the table.

Against the running sandbox by default (its resources from .pointbridge/sandbox.json), or AWS with
`--dlq-url`, `--queue-url` and `--table`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pointbridge.cli import live_sandbox, register
from shared.projections.dead_letters import HIDE_SECONDS, RETRIES_EXHAUSTED, Letter, in_range, read_letters
from shared.projections.dead_letters import show_again as _show_again

if TYPE_CHECKING:
    import argparse

    from functions.services import Services

# How long a listed message stays hidden from other readers (listing receives it).
LIST_HIDE_SECONDS = HIDE_SECONDS


# --- ingest -----------------------------------------------------------------------------------


def list_ingest(sqs: Any, dlq_url: str) -> list[dict[str, Any]]:
    letters = read_letters(sqs, dlq_url)
    _show_again(sqs, dlq_url, letters)
    return [
        {"message_id": x.message_id, "code": x.code or "none", "reason": x.reason, "body": x.body[:300]}
        for x in letters
    ]


def redrive_ingest(
    sqs: Any, dlq_url: str, queue_url: str, codes: frozenset[str] = frozenset(), everything: bool = False
) -> dict[str, Any]:
    """Send the chosen messages back to the ingest queue (then delete them here); leave the others."""
    wanted = codes | {"", RETRIES_EXHAUSTED}
    moved, kept = [], []
    letters = read_letters(sqs, dlq_url)
    for letter in letters:
        if not everything and letter.code not in wanted:
            kept.append(letter)
            continue
        # Sent before it is deleted here: a crash between the two sends it twice, and ingest posts it once.
        sqs.send_message(QueueUrl=queue_url, MessageBody=letter.body)
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=letter.receipt)
        moved.append(letter.message_id)
    _show_again(sqs, dlq_url, kept)
    return {
        "moved": moved,
        "kept": [{"message_id": x.message_id, "code": x.code, "reason": x.reason} for x in kept],
    }


# --- watch (stream) ---------------------------------------------------------------------------


@dataclass
class BatchReplay:
    message_id: str
    start: str
    end: str
    batch_size: int
    entries: list[dict[str, str]] = field(default_factory=list)  # entry PK, last error
    replayed: list[str] = field(default_factory=list)
    unreadable: str = ""  # why the range could not be read back from the stream
    missing: int = 0  # records of the range that could be replayed neither from the stream nor from notes
    failed: list[dict[str, str]] = field(default_factory=list)
    deleted: bool = False


def _range_records(streams: Any, info: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream records of a failed batch, read back by sequence number (the stream keeps 24 hours)."""
    start, end = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
    iterator = streams.get_shard_iterator(
        StreamArn=info["streamArn"],
        ShardId=info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    found: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        records = page.get("Records", [])
        for record in records:
            if int(record["dynamodb"]["SequenceNumber"]) > end:
                return found
            if int(record["dynamodb"]["SequenceNumber"]) >= start:
                found.append(record)
        if not records or len(found) >= int(info.get("batchSize", 0)) > 0:
            return found
        iterator = page.get("NextShardIterator")
    return found


def _entry_pk(record: dict[str, Any]) -> str | None:
    """The entry a stream record carries, if it is one the watch consumes (INSERT of an entry)."""
    image = record.get("dynamodb", {}).get("NewImage", {})
    if record.get("eventName") != "INSERT" or image.get("type", {}).get("S") != "entry":
        return None
    return str(image["PK"]["S"])


def _replay(services: Services, entry_pk: str) -> None:
    from functions.watch.app import project
    from shared.ledger.models import Entry

    item = services.table.get(_entry_key(entry_pk))
    if item is None:
        raise LookupError(f"no entry item {entry_pk}")
    project(services, Entry.model_validate_json(str(item["body"])))


def _entry_key(entry_pk: str) -> Any:
    from shared.infra.keys import ItemKey

    return ItemKey(entry_pk, "E")


def _watch_batches(sqs: Any, streams: Any, services: Services, dlq_url: str) -> list[tuple[Letter, BatchReplay]]:
    notes = {note.entry_pk: note for note in services.failure_notes.all()}
    batches = []
    for letter in read_letters(sqs, dlq_url):
        info = json.loads(letter.body)["DDBStreamBatchInfo"]
        batch = BatchReplay(
            letter.message_id, info["startSequenceNumber"], info["endSequenceNumber"], int(info.get("batchSize", 0))
        )
        try:
            pks = [pk for pk in (_entry_pk(r) for r in _range_records(streams, info)) if pk is not None]
        except Exception as error:  # trimmed (older than 24 hours), or the stream is gone
            batch.unreadable = f"{type(error).__name__}: {error}"
            pks = [pk for pk, note in notes.items() if in_range(note, batch.start, batch.end)]
            batch.missing = max(0, batch.batch_size - len(pks))
        for pk in pks:
            note = notes.get(pk)
            last = note.error if note else "no failure noted (the function crashed or timed out on its batch)"
            batch.entries.append({"entry": pk, "last_error": last})
        batches.append((letter, batch))
    return batches


def list_watch(sqs: Any, streams: Any, services: Services, dlq_url: str) -> list[dict[str, Any]]:
    batches = _watch_batches(sqs, streams, services, dlq_url)
    _show_again(sqs, dlq_url, [letter for letter, _ in batches])
    return [asdict(batch) for _, batch in batches]


def redrive_watch(sqs: Any, streams: Any, services: Services, dlq_url: str) -> dict[str, Any]:
    """Replay every entry of every dead-lettered batch; a batch replayed whole is deleted from the DLQ."""
    batches = _watch_batches(sqs, streams, services, dlq_url)
    kept = []
    days: set[tuple[str, str]] = set()
    for letter, batch in batches:
        for entry in batch.entries:
            try:
                _replay(services, entry["entry"])
            except Exception as error:
                batch.failed.append({"entry": entry["entry"], "error": f"{type(error).__name__}: {error}"})
                continue
            batch.replayed.append(entry["entry"])
            services.failure_notes.clear(entry["entry"])
            days |= _settlement_days(services, entry["entry"])
        if batch.failed or batch.missing:
            kept.append(letter)
            continue
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=letter.receipt)
        batch.deleted = True
    _show_again(sqs, dlq_url, kept)
    return {
        "batches": [asdict(batch) for _, batch in batches],
        # Statements already written for these days miss the replayed lines: rewrite them.
        "settlement_days": [{"program": p, "day": d} for p, d in sorted(days)],
    }


def _settlement_days(services: Services, entry_pk: str) -> set[tuple[str, str]]:
    from shared.ledger.models import Account, Entry

    item = services.table.get(_entry_key(entry_pk))
    if item is None:
        return set()
    entry = Entry.model_validate_json(str(item["body"]))
    if not any(posting.account is Account.PARTNER for posting in entry.postings):
        return set()
    return {(entry.program, entry.recorded_at.date().isoformat())}


# --- command line -----------------------------------------------------------------------------


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "redrive"])
    parser.add_argument("queue", choices=["ingest", "watch"], help="which dead-letter queue")
    parser.add_argument("--dlq-url", help="the dead-letter queue (default: the running sandbox's)")
    parser.add_argument("--queue-url", help="ingest: the queue to send messages back to (default: the sandbox's)")
    parser.add_argument("--table", help="watch: the points table (default: the sandbox's)")
    parser.add_argument("--code", action="append", default=[], help="ingest redrive: also send back this code")
    parser.add_argument("--all", action="store_true", help="ingest redrive: send back every message")


_SANDBOX_IDS = {
    ("ingest", "dlq"): "IngestDeadLetterQueue",
    ("ingest", "queue"): "IngestQueue",
    ("watch", "dlq"): "WatchDeadLetterQueue",
    ("watch", "table"): "PointsTable",
}


def _resolve(args: argparse.Namespace, live: dict[str, Any] | None, what: str) -> str | None:
    given: str | None = getattr(args, {"dlq": "dlq_url", "queue": "queue_url", "table": "table"}[what])
    if given or live is None:
        return given
    return str(live["resources"][_SANDBOX_IDS[(args.queue, what)]]["physical_id"])


def _clients(live: dict[str, Any] | None) -> dict[str, Any]:
    import boto3

    kwargs: dict[str, Any] = {}
    if live is not None and not os.environ.get("AWS_ENDPOINT_URL"):
        kwargs = {
            "endpoint_url": live["endpoint_url"],
            "region_name": "us-east-1",
            "aws_access_key_id": "sandbox",
            "aws_secret_access_key": "sandbox",
        }
    return {name: boto3.client(name, **kwargs) for name in ("sqs", "dynamodbstreams", "dynamodb", "events")}


def _run(args: argparse.Namespace) -> int:
    from functions.services import Services
    from shared.infra.settings import get_settings

    live = live_sandbox()
    dlq = _resolve(args, live, "dlq")
    if dlq is None:
        print("no running sandbox (start one with `pointbridge sandbox`), and no --dlq-url given")
        return 2
    clients = _clients(live)
    sqs = clients["sqs"]
    result: Any
    if args.queue == "ingest":
        if args.action == "list":
            result = list_ingest(sqs, dlq)
        else:
            queue = _resolve(args, live, "queue")
            if queue is None:
                print("ingest redrive needs --queue-url")
                return 2
            result = redrive_ingest(sqs, dlq, queue, frozenset(args.code), args.all)
    else:
        table = _resolve(args, live, "table")
        if table is None:
            print("watch needs --table")
            return 2
        # A replayed entry publishes its outbound event as the watch would: onto the stack's bus
        settings = get_settings()
        bus = (live or {}).get("resources", {}).get("NotificationsBus")
        if bus is not None:
            settings = settings.model_copy(update={"notifications_bus": str(bus["physical_id"])})
        services = Services(settings, table_name=table, client=clients["dynamodb"], events_client=clients["events"])
        streams = clients["dynamodbstreams"]
        if args.action == "list":
            result = list_watch(sqs, streams, services, dlq)
        else:
            result = redrive_watch(sqs, streams, services, dlq)
    print(json.dumps(result, indent=2))
    return 0


register("dlq", "list the dead-letter queues with each message's reason, or send them back", _configure, _run)
