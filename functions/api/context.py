"""What every route shares: lazily built services, the calling principal, and idempotent replies.

Services are built on first use (not at import) so moto, the sandbox or AWS are in place first,
and cached for the life of the Lambda container.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler import Response, content_types

from shared.access.keys import Principal
from shared.errors import (
    ForbiddenError,
    IdempotencyConflictError,
    InvalidInputError,
    PayloadTooLargeError,
    SecretNotReplayedError,
)
from shared.ledger.ledger import Ledger
from shared.ledger.models import fingerprint
from shared.ledger.store import ApiItems, DynamoStore, JobStore, ProgramRepository
from shared.program import sunset

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

    from shared.program.config import ProgramConfig

# No valid request comes near this; API Gateway itself would accept up to 10 MB.
MAX_BODY_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY = 200
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Set in the resolver's context by a route whose reply holds a secret shown once (a minted API key):
# the reply is remembered without its body, so a table dump grants nothing, and a retry under the
# same Idempotency-Key learns that the request was done.
SECRET_REPLY = "secret_reply"


@cache
def store() -> DynamoStore:
    return DynamoStore()


@cache
def programs() -> ProgramRepository:
    return ProgramRepository(store())


@cache
def items() -> ApiItems:
    return ApiItems(store())


def jobs() -> JobStore:
    return JobStore(store())


def ledger() -> Ledger:
    return Ledger(store(), programs())


def now() -> datetime:
    return datetime.now(UTC)


def ledger_id(source: str, external_id: str) -> str:
    """The id the ledger gives an entry posted under a source's own reference (its invariant 3)."""
    return f"{source}:{external_id}"


def require_spending(config: ProgramConfig, entry_id: str | None) -> None:
    """Refuse a spend after the program's end, unless it replays the entry `entry_id` posted before."""
    sunset.require_redemption_open(config, now(), lambda: _posted(config.program, entry_id))


def require_crediting(config: ProgramConfig, entry_id: str | None) -> None:
    """Refuse a credit after the program's earning ended, unless it replays the entry `entry_id` posted before."""
    sunset.require_earning_open(config, now(), lambda: _posted(config.program, entry_id))


def _posted(program: str, entry_id: str | None) -> bool:
    return entry_id is not None and store().get_entry(program, entry_id) is not None


def reset() -> None:
    """Forget built services (tests switch emulators between cases)."""
    for factory in (store, programs, items):
        factory.cache_clear()
    _with_holds.clear()


_with_holds: set[str] = set()


def note_holds(program: str) -> None:
    """Record once per container that a program has holds: the lapse job reads that list, not a scan."""
    if program not in _with_holds:
        items().register_program(program)
        _with_holds.add(program)


def principal(event: APIGatewayProxyEvent) -> Principal:
    context = event.request_context.authorizer.raw_event if event.request_context.authorizer else {}
    if not context or "kind" not in context:
        # The authorizer guards every route but /health and /docs; reaching here means a misconfiguration.
        raise ForbiddenError("no principal on the request")
    return Principal.from_context(dict(context))


def oversized(event: dict[str, object]) -> PayloadTooLargeError | None:
    """Checked before the resolver, whose validation would otherwise parse a huge body first."""
    body = event.get("body")
    if isinstance(body, str) and len(body.encode()) > MAX_BODY_BYTES:
        return PayloadTooLargeError(f"request body over {MAX_BODY_BYTES} bytes")
    return None


def guard_requests(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    """Replay stored replies for a repeated Idempotency-Key.

    Only successful (2xx) replies are stored: a refused request (insufficient points, out of
    stock) wrote nothing, so a retry is evaluated afresh, as the ledger's invariant 3 promises.
    """
    event = app.current_event
    body = event.body or ""
    key = event.headers.get("idempotency-key") or event.headers.get("Idempotency-Key")
    if event.http_method not in MUTATING or not key:
        return next_middleware(app)
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInputError(f"Idempotency-Key longer than {MAX_IDEMPOTENCY_KEY} characters")
    who = principal(event).key
    request = fingerprint({"method": event.http_method, "path": event.path, "body": body})
    stored = items().get_reply(who, key)
    if stored is None:
        response = next_middleware(app)
        if 200 <= response.status_code < 300:
            text = response.body if isinstance(response.body, str) else json.dumps(response.body)
            if app.context.get(SECRET_REPLY):
                text = ""
            if items().put_reply(who, key, request, response.status_code, text):
                return response
            stored = items().get_reply(who, key)  # a concurrent twin stored first
            assert stored is not None
        else:
            return response
    if stored["fingerprint"] != request:
        raise IdempotencyConflictError(f"Idempotency-Key {key!r} was used with a different request", key=key)
    if not stored["body"]:
        raise SecretNotReplayedError(
            f"the request under Idempotency-Key {key!r} was done; its secret is shown once (ask for another)", key=key
        )
    return Response(
        status_code=int(stored["status"]),
        content_type=content_types.APPLICATION_JSON,
        body=stored["body"],
        headers={"Idempotent-Replayed": "true"},
    )
