"""Member notices from the scheduled jobs: the `Notifier` they publish to, and its EventBridge implementation."""

from __future__ import annotations

import json
from typing import Any, Protocol

from shared.errors import PointbridgeError
from shared.infra import aws
from shared.infra.settings import get_settings


class Notifier(Protocol):
    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        """Publish one member notice; raise if it was not accepted."""
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
        response = client.put_events(
            Entries=[
                {
                    "Source": self._source,
                    "DetailType": detail_type,
                    "Detail": json.dumps({"id": event_id, **detail}),
                    "EventBusName": self._bus,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise NotifyError(f"EventBridge refused {event_id}: {response['Entries'][0].get('ErrorCode')}")
