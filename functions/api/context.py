"""What every route shares: the calling principal, sunset checks, and idempotent replies.

Stores and use cases come from the composition root (`functions.services`), never from here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler import Response, content_types

from functions.services import services
from shared.access.keys import Principal
from shared.access.store import StoredReply
from shared.errors import (
    ForbiddenError,
    IdempotencyConflictError,
    InvalidInputError,
    PayloadTooLargeError,
    SecretNotReplayedError,
)
from shared.ledger.models import fingerprint
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


def ledger_id(source: str, external_id: str) -> str:
    """The id the ledger gives an entry posted under a source's own reference (its invariant 3)."""
    return f"{source}:{external_id}"


def require_spending(config: ProgramConfig, entry_id: str | None) -> None:
    """Refuse a spend after the program's end, unless it replays the entry `entry_id` posted before."""
    sunset.require_redemption_open(config, services().now(), lambda: _posted(config.program, entry_id))


def require_crediting(config: ProgramConfig, entry_id: str | None) -> None:
    """Refuse a credit after the program's earning ended, unless it replays the entry `entry_id` posted before."""
    sunset.require_earning_open(config, services().now(), lambda: _posted(config.program, entry_id))


def _posted(program: str, entry_id: str | None) -> bool:
    return entry_id is not None and services().ledger_store.get_entry(program, entry_id) is not None


def note_holds(program: str) -> None:
    """Record once per container that a program has holds: the lapse job reads that list, not a scan."""
    known: set[str] = services().memo.setdefault("programs_with_holds", set())
    if program not in known:
        services().programs.register_holds(program)
        known.add(program)


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
    replies = services().access_items
    stored = replies.get_reply(who, key)
    if stored is None:
        response = next_middleware(app)
        if 200 <= response.status_code < 300:
            text = response.body if isinstance(response.body, str) else json.dumps(response.body)
            if app.context.get(SECRET_REPLY):
                text = ""
            if replies.put_reply(who, key, StoredReply(fingerprint=request, status=response.status_code, body=text)):
                return response
            stored = replies.get_reply(who, key)  # a concurrent twin stored first
            assert stored is not None
        else:
            return response
    if stored.fingerprint != request:
        raise IdempotencyConflictError(f"Idempotency-Key {key!r} was used with a different request", key=key)
    if not stored.body:
        raise SecretNotReplayedError(
            f"the request under Idempotency-Key {key!r} was done; its secret is shown once (ask for another)", key=key
        )
    return Response(
        status_code=stored.status,
        content_type=content_types.APPLICATION_JSON,
        body=stored.body,
        headers={"Idempotent-Replayed": "true"},
    )
