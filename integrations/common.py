"""Pieces every adapter shares: raw-body handling, signatures, time windows, strict field reads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from integrations.errors import (
    AmountOutOfRangeError,
    BadSignatureError,
    MalformedPayloadError,
    StaleWebhookError,
)
from shared.events.model import MAX_AMOUNT

if TYPE_CHECKING:
    from collections.abc import Mapping

M = TypeVar("M", bound=BaseModel)
JsonObject = dict[str, Any]
# Bodies above this are not webhooks we know; refusing early keeps a Lambda's memory bounded.
MAX_BODY_BYTES = 5_000_000


def as_bytes(raw: bytes | str) -> bytes:
    body = raw.encode("utf-8") if isinstance(raw, str) else raw
    if len(body) > MAX_BODY_BYTES:
        raise MalformedPayloadError(f"body is {len(body)} bytes, more than {MAX_BODY_BYTES}")
    return body


def _reject_constant(name: str) -> Any:
    raise MalformedPayloadError(f"JSON constant {name} is not a number")


def parse_json_object(raw: bytes | str | Mapping[str, Any]) -> JsonObject:
    """Numbers become Decimal (never float), so money survives the parse exactly."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str | bytes):
        raise MalformedPayloadError("body must be bytes, text or a JSON object")
    try:
        value = json.loads(as_bytes(raw), parse_float=Decimal, parse_constant=_reject_constant)
    except MalformedPayloadError:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedPayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedPayloadError("body must be a JSON object")
    return value


def hmac_sha256_b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def verify_signature(key: bytes, message: bytes, received: str | None, header: str) -> None:
    if not key:
        raise BadSignatureError("no signing secret is configured for this source")
    if not received:
        raise BadSignatureError(f"{header} header is missing")
    expected = hmac_sha256_b64(key, message)
    # compare_digest on bytes: constant time, and a non-ASCII header cannot raise TypeError.
    if not hmac.compare_digest(expected.encode("ascii"), received.strip().encode("utf-8", "replace")):
        raise BadSignatureError(f"{header} does not match the body")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """HTTP header names are case-insensitive; API Gateway may or may not lowercase them."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def parse_time(value: object, what: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise MalformedPayloadError(f"{what} must be an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MalformedPayloadError(f"{what} is not an ISO 8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise MalformedPayloadError(f"{what} has no UTC offset: {value[:40]!r}")
    return parsed


def check_sent_within(at: datetime, now: datetime, horizon: timedelta, skew: timedelta, what: str) -> None:
    """A delivery's own time: at most `horizon` old (the sender's retries) and at most `skew` ahead."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if at > now + skew:
        raise StaleWebhookError(f"{what} {at.isoformat()} is in the future beyond the {skew} allowed clock skew")
    if at < now - horizon:
        raise StaleWebhookError(f"{what} {at.isoformat()} is older than the {horizon} replay window")


def parse_money(value: object, what: str) -> Decimal:
    """A non-negative, finite decimal below the model cap; strings and ints only, never floats."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise MalformedPayloadError(f"{what} must be a decimal string")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise MalformedPayloadError(f"{what} is not a number: {str(value)[:40]!r}") from None
    if not amount.is_finite():
        raise MalformedPayloadError(f"{what} is not a finite number")
    if amount < 0:
        raise AmountOutOfRangeError(f"{what} is negative: {amount}")
    if amount > MAX_AMOUNT:
        raise AmountOutOfRangeError(f"{what} {amount} is above the {MAX_AMOUNT} cap")
    return amount


def check_amount(amount: Decimal, what: str) -> Decimal:
    if amount < 0:
        raise AmountOutOfRangeError(f"{what} is negative: {amount}")
    if amount > MAX_AMOUNT:
        raise AmountOutOfRangeError(f"{what} {amount} is above the {MAX_AMOUNT} cap")
    # Four places is the model's precision; conversions and splits may produce more.
    return amount.quantize(Decimal("0.0001"))


def obj(data: Mapping[str, Any], key: str, where: str) -> JsonObject:
    value = data.get(key)
    if not isinstance(value, dict):
        raise MalformedPayloadError(f"{where}.{key} must be an object")
    return value


def opt_obj(data: Mapping[str, Any], key: str, where: str) -> JsonObject | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedPayloadError(f"{where}.{key} must be an object")
    return value


def array(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayloadError(f"{where}.{key} must be an array")
    return value


def text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = opt_text(data, key, where)
    if value is None:
        raise MalformedPayloadError(f"{where}.{key} is missing")
    return value


def opt_text(data: Mapping[str, Any], key: str, where: str) -> str | None:
    """Ids arrive as JSON numbers (Shopify) or strings (Square); both become strings."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedPayloadError(f"{where}.{key} must be a string or an integer")
    result = str(value).strip()
    return result or None


def build(model: type[M], **fields: Any) -> M:
    """Construct a shared model; its validation failures become a malformed-payload error."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or model.__name__
        raise MalformedPayloadError(f"{model.__name__}.{where}: {first['msg']}") from None
