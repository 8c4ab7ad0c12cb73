"""The dead-letter queues as an operator sees them: each message with why it is there, and a redrive.

Two queues (docs/channels.md, "DLQ reasons" and "Stream dead letters"; docs/operations.md):

- `ingest`: one message per event. The ingest function dead-letters poison and given-up messages with
  attributes `code` and `reason`; a bare message was moved by the queue's own redrive after its
  last delivery (every delivery ended without the function reporting: a crash, a timeout). A
  redrive sends the message back to the ingest queue and deletes it here: ingest posts each event
  once however often it is delivered, so the event counts once. If it fails again, the ingest
  function dead-letters it again with its new reason.
- `watch`: one message per stream batch the watch gave up on (Lambda's on-failure record: a
  sequence range, not the records). The watch noted each failing record's error by its entry
  (`FailureNotes`) before giving up; a redrive replays those entries through the same projections
  (each idempotent per entry, so a replay counts once however often it runs) and deletes the
  message only when every entry of the batch replayed. An entry that fails again gets its new
  error noted and the message stays, hidden from nobody, with that reason.

The queue client is passed in (the composition root builds it), so this module stays free of AWS imports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.errors import NotFoundError, PointbridgeError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.projections.store import FailureNote, FailureNotes

RETRIES_EXHAUSTED = "retries_exhausted"
# How long a message stays hidden from other readers while it is listed or redriven.
HIDE_SECONDS = 30
QUEUES = ("ingest", "watch")
BARE_REASON = (
    "no reason recorded: moved here by the queue's redrive after its last delivery; every delivery "
    "ended without the function reporting (a crash, a timeout or running out of memory)"
)


class UnknownDeadLetterError(NotFoundError):
    """Raised when a redrive names a message that is not (or no longer) in the dead-letter queue."""

    code = "unknown_dead_letter"


class RedriveFailedError(PointbridgeError):
    """Raised when a redriven message fails again: it stays in its queue with the new reason."""

    code = "redrive_failed"
    status = 409


@dataclass(frozen=True)
class Letter:
    message_id: str
    receipt: str
    body: str
    code: str  # "" when the message carries none (moved by the queue's redrive)
    reason: str
    receives: int
    sent_at: str  # when it reached the dead-letter queue, epoch milliseconds as SQS says


def read_letters(sqs: Any, url: str, hide_seconds: int = HIDE_SECONDS) -> list[Letter]:
    """Every message now in the queue, each hidden for `hide_seconds` (it comes back unless deleted)."""
    letters: dict[str, Letter] = {}
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=hide_seconds,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return list(letters.values())
        for message in got:
            letters[message["MessageId"]] = _letter(message)


def _letter(message: dict[str, Any]) -> Letter:
    attributes = {k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()}
    system = message.get("Attributes", {})
    code = attributes.get("code", "")
    reason = attributes.get("reason", "") if code else BARE_REASON
    return Letter(
        message["MessageId"],
        message["ReceiptHandle"],
        message["Body"],
        code,
        reason,
        int(system.get("ApproximateReceiveCount", "0")),
        str(system.get("SentTimestamp", "")),
    )


def show_again(sqs: Any, url: str, letters: list[Letter]) -> None:
    for letter in letters:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=letter.receipt, VisibilityTimeout=0)


def in_range(note: FailureNote, start: str, end: str) -> bool:
    return note.sequence_number.isdigit() and int(start) <= int(note.sequence_number) <= int(end)


@dataclass
class DeadLetter:
    """One message as the console lists it."""

    queue: str
    message_id: str
    code: str
    reason: str
    receives: int
    sent_at: str
    body: str  # the first 2,000 characters
    entries: list[dict[str, str]] = field(default_factory=list)  # watch: each entry and its last error
    unknown_records: int = 0  # watch: records of the batch no note names


@dataclass
class Redriven:
    queue: str
    message_id: str
    replayed: list[str] = field(default_factory=list)
    sent_back: bool = False
    settlement_days: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class DeadLetterQueues:
    sqs: Any
    ingest_dlq_url: str
    ingest_queue_url: str
    watch_dlq_url: str
    notes: FailureNotes
    replay: Callable[[str], set[tuple[str, str]]]  # entry PK -> (program, UTC day) of statements to rewrite
    now: Callable[[], datetime]

    def _url(self, queue: str) -> str:
        return self.ingest_dlq_url if queue == "ingest" else self.watch_dlq_url

    def letters(self, queue: str) -> list[DeadLetter]:
        url = self._url(queue)
        letters = read_letters(self.sqs, url)
        show_again(self.sqs, url, letters)
        notes = self.notes.all() if queue == "watch" else []
        return [self._described(queue, letter, notes) for letter in letters]

    def _described(self, queue: str, letter: Letter, notes: list[FailureNote]) -> DeadLetter:
        found = DeadLetter(
            queue, letter.message_id, letter.code or "none", letter.reason, letter.receives, letter.sent_at,
            letter.body[:2000],
        )  # fmt: skip
        if queue != "watch":
            return found
        info = _batch_info(letter)
        if info is None:
            found.code, found.reason = "unreadable", "not a stream batch record: nothing to replay"
            return found
        start, end, size = info
        mine = [note for note in notes if in_range(note, start, end)]
        found.entries = [{"entry": note.entry_pk, "last_error": note.error} for note in mine]
        found.unknown_records = max(0, size - len(mine))
        found.code = "watch_failed"
        found.reason = "; ".join(f"{n.entry_pk}: {n.error}" for n in mine) or (
            "no failure noted: the function crashed or timed out on its batch (read the range from the stream "
            "with `pointbridge dlq redrive watch`)"
        )
        return found

    def redrive(self, queue: str, message_id: str) -> Redriven:
        """Replay (watch) or send back (ingest) one message; it leaves the queue only if that worked."""
        url = self._url(queue)
        letters = read_letters(self.sqs, url)
        target = next((x for x in letters if x.message_id == message_id), None)
        show_again(self.sqs, url, [x for x in letters if x is not target])
        if target is None:
            raise UnknownDeadLetterError(f"no message {message_id} in the {queue} dead-letter queue", queue=queue)
        try:
            done = self._send_back(target) if queue == "ingest" else self._replay_batch(target)
        except BaseException:
            show_again(self.sqs, url, [target])
            raise
        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=target.receipt)
        return done

    def _send_back(self, letter: Letter) -> Redriven:
        # Sent before it is deleted: a crash between the two sends it twice, and ingest posts it once.
        self.sqs.send_message(QueueUrl=self.ingest_queue_url, MessageBody=letter.body)
        return Redriven("ingest", letter.message_id, sent_back=True)

    def _replay_batch(self, letter: Letter) -> Redriven:
        info = _batch_info(letter)
        if info is None:
            raise RedriveFailedError(
                f"message {letter.message_id} is not a stream batch record: nothing to replay; it stays",
                message_id=letter.message_id,
            )
        start, end, size = info
        mine = [note for note in self.notes.all() if in_range(note, start, end)]
        if len(mine) < size:
            raise RedriveFailedError(
                f"{size - len(mine)} of the batch's {size} records have no failure note (the function crashed "
                "or timed out): `pointbridge dlq redrive watch` reads them from the stream; the message stays",
                message_id=letter.message_id,
            )
        done = Redriven("watch", letter.message_id)
        days: set[tuple[str, str]] = set()
        failed: list[dict[str, str]] = []
        for note in mine:
            try:
                days |= self.replay(note.entry_pk)
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                self.notes.note(note.entry_pk, note.sequence_number, reason, self.now())
                failed.append({"entry": note.entry_pk, "error": reason})
                continue
            done.replayed.append(note.entry_pk)
        if failed:
            said = "; ".join(f"{x['entry']}: {x['error']}" for x in failed)
            raise RedriveFailedError(
                f"the redrive failed again and the message stays with the new reason: {said}",
                message_id=letter.message_id,
            )
        # Notes go only when the whole batch replayed: a later redrive of a kept message replays its
        # entries again (each counts once), and needs every one of them noted.
        for pk in done.replayed:
            self.notes.clear(pk)
        # Statements already written for these days miss the replayed lines: the settlement job rewrites them.
        done.settlement_days = [{"program": p, "day": d} for p, d in sorted(days)]
        return done


def _batch_info(letter: Letter) -> tuple[str, str, int] | None:
    try:
        info = json.loads(letter.body)["DDBStreamBatchInfo"]
        return str(info["startSequenceNumber"]), str(info["endSequenceNumber"]), int(info.get("batchSize", 0))
    except (ValueError, KeyError, TypeError):
        return None
