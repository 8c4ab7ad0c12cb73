"""What every route shares: the calling principal and its permission, references scoped to it, sunset
checks, requests the API cannot read, and Idempotency-Key claims.

Stores and use cases come from the composition root (`functions.services`), never from here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response, content_types

from functions.permissions import PERMISSIONS
from functions.services import services
from shared.access import permissions
from shared.access.keys import Principal
from shared.access.store import DONE, StoredReply
from shared.errors import (
    ForbiddenError,
    IdempotencyConflictError,
    IdempotencyInProgressError,
    InvalidInputError,
    PayloadTooLargeError,
    PointbridgeError,
    SecretNotReplayedError,
    UnsupportedMediaTypeError,
)
from shared.ledger.models import fingerprint
from shared.program import sunset

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
    from aws_lambda_powertools.event_handler.router import APIGatewayRouter
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

    from shared.access.permissions import Rule
    from shared.program.config import ProgramConfig

# No valid request comes near this; API Gateway itself would accept up to 10 MB.
MAX_BODY_BYTES = 64 * 1024
# No valid body nests deeper (a config document is the deepest, at about 6).
MAX_JSON_DEPTH = 32
MAX_IDEMPOTENCY_KEY = 200
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A claim older than this belongs to a request whose function died (the API function's timeout is
# 30 s): a retry takes it over rather than waiting forever.
STALE_CLAIM = timedelta(minutes=2)
# Set in the resolver's context by a route whose reply holds a secret shown once (a minted API key):
# the reply is remembered without its body, so a table dump grants nothing, and a retry under the
# same Idempotency-Key learns that the request was done.
SECRET_REPLY = "secret_reply"
MALFORMED_JSON = "malformed_json"


class MalformedJsonError(InvalidInputError):
    """Raised before the resolver runs when a body cannot be read as JSON at all."""

    code = MALFORMED_JSON


def ledger_id(source: str, external_id: str) -> str:
    """The id the ledger gives an entry posted under a source's own reference (its invariant 3)."""
    return f"{source}:{external_id}"


def own_reference(who: Principal, member: str, reference: str) -> str:
    """A caller's reference as the ledger keeps it: inside the caller's and the member's namespace.

    Two callers (two shops with the same order numbers, a member and a till) or one caller for two
    members never collide, and nobody can name, squat or learn of another's reference. The prefix is
    a digest so ids stay short; the hold and capture paths name the bare reference.
    """
    return f"{_digest(who.key, member)}:{reference}"


def member_reference(member: str, reference: str) -> str:
    """A reference in the member's own namespace, whoever sends it on the member's behalf (an
    outbound transfer's id, which the receiving partner names when it confirms)."""
    return f"{_digest('member', member)}:{reference}"


def _digest(owner: str, member: str) -> str:
    return hashlib.sha256(f"{owner}\x00{member}".encode()).hexdigest()[:16]


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


# Who is calling, and may it


def principal(event: APIGatewayProxyEvent) -> Principal:
    context = event.request_context.authorizer.raw_event if event.request_context.authorizer else {}
    if not context or "kind" not in context:
        # The authorizer guards every route but the open ones; reaching here means a misconfiguration.
        raise ForbiddenError("no principal on the request")
    return Principal.from_context(dict(context))


def rule_of(method: str, path: str) -> Rule:
    found = PERMISSIONS.get((method, path))
    if found is None:
        raise LookupError(f"{method} {path} has no row in functions.permissions.PERMISSIONS")
    return found


def authorize(
    router: APIGatewayRouter,
    *,
    program: str | None = None,
    member: str | None = None,
    partner: str | None = None,
    agreement: str | None = None,
    linked: Callable[[], bool] | None = None,
) -> Principal:
    """The calling principal, once the permission table's row for this route allows it on this target."""
    route = router.context["_route"]
    who = principal(router.current_event)
    target = permissions.Target(program=program, member=member, partner=partner, agreement=agreement, linked=linked)
    permissions.authorize(rule_of(route.method, route.openapi_path), who, target)
    return who


def admit_role(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    """Refuse a role the route's row does not grant, before the route reads or claims anything."""
    route = app.context.get("_route")
    found = PERMISSIONS.get((route.method, route.openapi_path)) if route is not None else None
    # No row: no route matched (the resolver answers no_such_route), or a route the unit tests reject.
    if found is not None and not found.open:
        who = principal(app.current_event)
        if not permissions.admits(found, who):
            raise ForbiddenError(f"a {permissions.role_of(who)} key may not do this")
    return next_middleware(app)


# Requests the API cannot read: refused before the resolver, as problems


def unreadable(event: dict[str, Any]) -> PointbridgeError | None:
    """Why the body cannot be a request of this API, checked before the resolver parses it.

    The resolver would otherwise fail on these with an exception (a 502 from API Gateway): a body
    that is not UTF-8, JSON nested deep enough to exhaust the parser's recursion, an integer too
    long to convert, or a form or multipart body (the API reads JSON only).
    """
    body = event.get("body")
    if not isinstance(body, str) or not body:
        return None
    if event.get("httpMethod") not in MUTATING:
        # A read's body is never parsed: only its size matters (API Gateway passes it on all the same).
        return PayloadTooLargeError(f"request body over {MAX_BODY_BYTES} bytes") if len(body) > MAX_BODY_BYTES else None
    raw: bytes
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return MalformedJsonError("the body is not valid base64")
    else:
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        return PayloadTooLargeError(f"request body over {MAX_BODY_BYTES} bytes")
    content_type = _header(event, "content-type").split(";", 1)[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        return UnsupportedMediaTypeError(
            f"the API reads JSON bodies only (Content-Type application/json), not {content_type}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return MalformedJsonError("the body is not UTF-8 text")
    if _depth(text) > MAX_JSON_DEPTH:
        return MalformedJsonError(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return None  # not JSON: the resolver says where, as a 400 malformed_json
    except ValueError:
        return MalformedJsonError("a number in the body is too long to read")
    return None


def _depth(text: str) -> int:
    """How deep brackets nest outside strings (cheap: one pass, no parsing)."""
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _header(event: dict[str, Any], name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value or "")
    return ""


# Idempotency-Key: claimed before the request runs, the reply stored after


def guard_requests(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    """Run a mutation under an Idempotency-Key at most once, and replay its reply to retries.

    The key is claimed (in progress, with the request's fingerprint) before the route runs, so
    concurrent requests under one key cannot both run: the second gets `idempotency_conflict` (another
    request) or `idempotency_in_progress` (the same one, still running). Only successful (2xx) replies
    are stored: a refused request (insufficient points, out of stock) wrote nothing, so its claim is
    given back and a retry is evaluated afresh, as the ledger's invariant 3 promises.
    """
    event = app.current_event
    key = event.headers.get("idempotency-key") or event.headers.get("Idempotency-Key")
    if event.http_method not in MUTATING or not key:
        return next_middleware(app)
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInputError(f"Idempotency-Key longer than {MAX_IDEMPOTENCY_KEY} characters")
    who = principal(event).key
    request = fingerprint({"method": event.http_method, "path": event.path, "body": event.body or ""})
    claims = services().access_items
    token = uuid.uuid4().hex
    now = services().now()
    if not claims.claim(who, key, request, token, now):
        held = claims.get_claim(who, key)
        if held is None:  # given back between our claim and our read: a refusal; try once more
            if not claims.claim(who, key, request, token, now):
                raise IdempotencyInProgressError(f"a request under Idempotency-Key {key!r} is running", key=key)
        elif held.fingerprint != request:
            raise IdempotencyConflictError(f"Idempotency-Key {key!r} was used with a different request", key=key)
        elif held.state == DONE:
            assert held.reply is not None
            return _replay(key, held.reply)
        elif now - held.claimed_at < STALE_CLAIM or not claims.take_over(who, key, held.token, token, now):
            raise IdempotencyInProgressError(
                f"the request under Idempotency-Key {key!r} is still running; retry it in a moment", key=key
            )
    try:
        response = next_middleware(app)
    except BaseException:
        claims.release(who, key, token)
        raise
    if not 200 <= response.status_code < 300:
        claims.release(who, key, token)
        return response
    text = response.body if isinstance(response.body, str) else json.dumps(response.body)
    if app.context.get(SECRET_REPLY):
        text = ""
    claims.complete(who, key, token, StoredReply(fingerprint=request, status=response.status_code, body=text))
    return response


def _replay(key: str, stored: StoredReply) -> Response:
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
