"""How values are written to and read from DynamoDB items: one time format, typed values in and out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def ts(value: datetime) -> str:
    """A sortable UTC timestamp: every key and attribute that holds a time uses this one format."""
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)


def maybe_ts(value: object) -> datetime | None:
    """An optional stored time (absent or empty: None)."""
    return parse_ts(str(value)) if value else None


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Python values to DynamoDB's typed attributes; None means "leave the attribute out"."""
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB's typed attributes to Python values (numbers come back as Decimal)."""
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def serialize(value: Any) -> Any:
    return _serializer.serialize(value)
