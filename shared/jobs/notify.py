"""Member notices from the scheduled jobs: the `Notifier` they publish to, and its EventBridge implementation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import PointbridgeError
from shared.infra import aws
from shared.infra.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


# One event to publish: (detail-type, event id, detail).
Outgoing = tuple[str, str, dict[str, Any]]
# PutEvents takes at most 10 entries and 256 KB a request; a margin for the fields around the detail.
PUT_EVENTS_ENTRIES = 10
PUT_EVENTS_BYTES = 200 * 1024


class Notifier(Protocol):
    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        """Publish one member notice; raise if it was not accepted."""
        ...

    def publish_all(self, events: Sequence[Outgoing]) -> set[str]:
        """Publish several; the ids of those accepted (the others are to be sent again)."""
        ...


class NotifyError(PointbridgeError):
    """Raised when EventBridge did not accept a member notice; the job run fails and is retried."""

    code = "notify_failed"
    status = 502


SOURCE = "pointbridge.jobs"


class EventBridgeNotifier:
    """Member notices as events on the notifications bus (PutEvents, one event per notice)."""

    SOURCE = SOURCE

    def __init__(self, bus: str | None = None, client: Any = None, source: str = SOURCE) -> None:
        self._bus = bus or get_settings().notifications_bus
        self._client = client
        self._source = source

    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        client = self._client or aws.events()
        response = client.put_events(Entries=[self._entry(detail_type, event_id, detail)])  # type: ignore[list-item]
        if response.get("FailedEntryCount"):
            raise NotifyError(f"EventBridge refused {event_id}: {response['Entries'][0].get('ErrorCode')}")

    def publish_all(self, events: Sequence[Outgoing]) -> set[str]:
        client = self._client or aws.events()
        accepted: set[str] = set()
        for chunk in _requests(events):
            entries = [self._entry(detail_type, event_id, detail) for detail_type, event_id, detail in chunk]
            response = client.put_events(Entries=entries)  # type: ignore[arg-type]
            # Entries answer in the order sent; a failed one has an ErrorCode and no EventId.
            for (_, event_id, _), result in zip(chunk, response.get("Entries", []), strict=False):
                if result.get("EventId") and not result.get("ErrorCode"):
                    accepted.add(event_id)
        return accepted

    def _entry(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> dict[str, str]:
        return {
            "Source": self._source,
            "DetailType": detail_type,
            "Detail": json.dumps({"id": event_id, **detail}),
            "EventBusName": self._bus,
        }


def _requests(events: Sequence[Outgoing]) -> Iterator[list[Outgoing]]:
    """The events in PutEvents-sized requests (entries and bytes)."""
    chunk: list[Outgoing] = []
    size = 0
    for event in events:
        weight = len(json.dumps(event[2])) + len(event[0]) + len(event[1]) + 200
        if chunk and (len(chunk) == PUT_EVENTS_ENTRIES or size + weight > PUT_EVENTS_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(event)
        size += weight
    if chunk:
        yield chunk
