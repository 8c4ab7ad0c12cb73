"""Dead letters for operators: each message of the ingest and watch dead-letter queues with why it is
there, and a redrive of one message (operators act, auditors read). docs/operations.md.

A redrive answers when it is done: a watch batch is replayed there and then (`redrive_failed`, 409,
when an entry fails again: the message stays, with the new error as its reason); an ingest message
is sent back to the ingest queue, which posts its event once (if it fails again, the ingest
function dead-letters it again with the new reason).
"""

from enum import StrEnum
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from functions.api import context
from functions.services import services

router = APIGatewayRouter()


class Queue(StrEnum):
    """A dead-letter queue: `ingest` (one message per event) or `watch` (one per stream batch)."""

    INGEST = "ingest"
    WATCH = "watch"


QueuePath = Annotated[Queue, Path(description="`ingest` (events) or `watch` (the stream's projections).")]
MessageIdPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9-]{1,100}$", description="The message's id, as the list gives it.")
]


class EntryError(BaseModel):
    """A ledger entry of a dead-lettered stream batch, and why the watch failed on it."""

    entry: str = Field(description="The ledger entry the failed stream record carried (its item's key).")
    last_error: str = Field(description="The error the watch noted on its last attempt.")


class DeadLetterOut(BaseModel):
    """One dead-lettered message."""

    queue: Queue = Field(description="Which dead-letter queue holds it.")
    message_id: str = Field(description="The message's id: name it to redrive it.")
    code: str = Field(
        description="Why, as a code: the ingest function's error code; `none` when the queue moved it after its last "
        "delivery; `watch_failed` for a stream batch."
    )
    reason: str = Field(description="Why, for people.")
    receives: int = Field(description="How often it was received here (listing receives it too).")
    sent_at: str = Field(description="When it reached the dead-letter queue, epoch milliseconds.")
    body: str = Field(description="The message, cut at 2,000 characters.")
    entries: list[EntryError] = Field(description="Watch: each entry of the batch, with its last error.")
    unknown_records: int = Field(description="Watch: records of the batch that no failure note names.")


class DeadLettersOut(BaseModel):
    """What the dead-letter queues hold, by queue."""

    queues: dict[str, list[DeadLetterOut]] = Field(description="Each queue's messages.")


class RedrivenOut(BaseModel):
    """What the redrive did; the message has left the dead-letter queue."""

    queue: Queue = Field(description="The queue it left.")
    message_id: str = Field(description="The message.")
    replayed: list[str] = Field(description="Watch: the entries projected again (each counted once).")
    sent_back: bool = Field(description="Ingest: sent back to the ingest queue.")
    settlement_days: list[dict[str, str]] = Field(
        description="Watch: partner statements already written for these days miss the replayed lines; run the "
        "settlement job for them again."
    )


@router.get("/admin/dead-letters")
def list_dead_letters() -> DeadLettersOut:
    """The dead-letter queues.

    Every message now in the ingest and watch dead-letter queues, with its reason. Reading hides each
    message for 30 seconds from other readers (a redrive meanwhile still finds it).
    """
    context.authorize(router)
    desk = services().dead_letter_queues
    found = {
        queue.value: [DeadLetterOut.model_validate(vars(letter)) for letter in desk.letters(queue.value)]
        for queue in Queue
    }
    return DeadLettersOut(queues=found)


@router.post("/admin/dead-letters/<queue>/<message_id>/redrive")
def redrive(queue: QueuePath, message_id: MessageIdPath) -> RedrivenOut:
    """Redrive one dead letter.

    Watch: replays the batch's entries through the projections (each counts once however often it is
    replayed), then deletes the message; an entry that fails again is `redrive_failed` and the
    message stays with the new reason. Ingest: sends it back to the ingest queue, then deletes it.
    """
    context.authorize(router)
    done = services().dead_letter_queues.redrive(queue.value, message_id)
    return RedrivenOut.model_validate(vars(done))
