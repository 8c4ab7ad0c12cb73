"""Poison with its reason (issue 12): every message the ingest function gives up on reaches the
dead-letter queue saying why, and a good event beside it in the batch still lands."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from shared.earning.queue import envelope
from tests.integration.test_channels import EVENTS, FakeContext, Stack, sqs_event, stack

if TYPE_CHECKING:
    from shared.earning.ingest import Ingest

__all__ = ["stack"]  # the fixture, shared with test_channels


def with_time(occurred_at: str) -> str:
    body = json.loads(envelope(EVENTS[1]))
    body["event"]["occurred_at"] = occurred_at
    return json.dumps(body)


def delivered(bodies: list[str], receive_count: int = 1) -> dict[str, Any]:
    event = sqs_event(bodies)
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return event


def dead_letters(stack: Stack) -> dict[str, dict[str, str]]:
    return {
        m["MessageAttributes"]["original_message_id"]["StringValue"]: {
            name: value["StringValue"] for name, value in m["MessageAttributes"].items()
        }
        for m in stack.messages(stack.dlq)
    }


@pytest.mark.parametrize(
    "occurred_at",
    [
        "9999-12-31T23:59:59+00:00",
        "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:00:00+00:00",
        "0001-01-01T00:00:00+05:00",
    ],
)
def test_a_date_outside_any_sensible_range_is_dead_lettered_at_once_with_the_reason(
    stack: Stack, occurred_at: str
) -> None:
    from functions.ingest.app import handler

    # Given an event from year 9999 (or year 1) beside a good one, on its first delivery
    reply = handler(delivered([with_time(occurred_at), envelope(EVENTS[0])]), FakeContext())
    # Then nothing is retried: the bad one is in the DLQ with its reason, the good one is posted
    assert reply == {"batchItemFailures": []}
    letter = dead_letters(stack)["msg-0"]
    assert letter["code"] == "malformed_event"
    assert "occurred_at" in letter["reason"] and "outside the range" in letter["reason"]
    entries, *_ = stack.services.ledger_store.ledger_records()
    assert [e.entry_id for e in entries] == [f"{EVENTS[0].source}:{EVENTS[0].external_id}"]


@pytest.mark.parametrize("depth", [5_000, 200_000])
def test_deeply_nested_json_is_dead_lettered_with_its_reason(stack: Stack, depth: int) -> None:
    from functions.ingest.app import handler

    nested = '{"event": ' + "[" * depth + "]" * depth + "}"
    reply = handler(delivered([nested, envelope(EVENTS[0])]), FakeContext())
    assert reply == {"batchItemFailures": []}
    letter = dead_letters(stack)["msg-0"]
    assert letter["code"] == "malformed_event" and "nested too deeply" in letter["reason"]
    assert len(stack.services.ledger_store.ledger_records()[0]) == 1


def failing_for(monkeypatch: pytest.MonkeyPatch, external_id: str, error: Exception) -> None:
    from shared.earning.ingest import Ingest

    real = Ingest.handle

    def handle(self: Ingest, event: Any) -> Any:
        if event.external_id == external_id:
            raise error
        return real(self, event)

    monkeypatch.setattr(Ingest, "handle", handle)


def test_a_failure_is_retried_and_on_the_last_delivery_dead_lettered_with_the_error(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.ingest.app import handler

    # Given a worker fault on one event (not a refusal: it might pass on a retry)
    failing_for(monkeypatch, EVENTS[0].external_id, RuntimeError("the table is unavailable"))
    bodies = [envelope(EVENTS[0]), envelope(EVENTS[2])]
    # When it is delivered before its last delivery, it is reported for a retry and nothing is dead-lettered
    retried = handler(delivered(bodies, receive_count=4), FakeContext())
    assert retried == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert dead_letters(stack) == {}
    # When it fails on its last delivery (the queue's maxReceiveCount)
    reply = handler(delivered(bodies, receive_count=5), FakeContext())
    # Then the function dead-letters it itself, with the error, instead of leaving it to the redrive
    assert reply == {"batchItemFailures": []}
    letter = dead_letters(stack)["msg-0"]
    assert letter["code"] == "retries_exhausted"
    assert letter["reason"] == "still failing on delivery 5: RuntimeError: the table is unavailable"


def test_contention_on_the_last_delivery_is_dead_lettered_with_its_reason(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.ingest.app import handler
    from shared.errors import ContentionError

    failing_for(monkeypatch, EVENTS[0].external_id, ContentionError("the member's account is busy"))
    assert handler(delivered([envelope(EVENTS[0])], receive_count=5), FakeContext()) == {"batchItemFailures": []}
    letter = dead_letters(stack)["msg-0"]
    assert (letter["code"], letter["reason"]) == (
        "retries_exhausted",
        "still failing on delivery 5: the member's account is busy",
    )
