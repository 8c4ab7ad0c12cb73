"""The one place domain errors become HTTP replies: RFC 9457 problem details.

Every reply carries `type`, `title`, `status`, `detail` and the error's stable `code`; clients
branch on `code`, people read `detail`. The API and the webhook receiver both install these
handlers, so the same error reads the same wherever it is refused. Which codes each operation of
the API answers with, and what they mean, is declared in its OpenAPI document
(`functions.api.refusals`, `functions.api.operations`).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from shared.errors import InvalidInputError, PointbridgeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://pointbridge.dev/problems/"
# The fields every problem has; an error's context never overwrites them.
CORE_FIELDS = frozenset({"type", "title", "status", "detail", "code"})
MALFORMED_JSON = "malformed_json"
NO_SUCH_ROUTE = "no_such_route"
logger = Logger(child=True)


def problem(status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = {
        "type": TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    # Serialised here: powertools only serialises bodies it labels application/json itself.
    return Response(status_code=status, content_type=PROBLEM_JSON, body=json.dumps(body), headers=headers)


INTERNAL_DETAIL = "the service cannot take this request now; its operators have the reason, retry later"


def proxy_reply(error: PointbridgeError) -> dict[str, Any]:
    """A problem as a raw proxy reply, for refusals made before the resolver runs."""
    reply = _problem_of(error)
    return {
        "statusCode": reply.status_code,
        "headers": {"Content-Type": PROBLEM_JSON, **_retry_after(error)},
        "body": reply.body,
        "isBase64Encoded": False,
    }


def _problem_of(error: PointbridgeError) -> Response:
    if error.internal:
        # What is wrong is the stack's configuration (a channel's settings, a missing key): the caller,
        # perhaps anonymous, learns nothing of it. The log keeps the code and the detail, which the
        # raisers write without secret values.
        logger.error("service misconfigured", extra={"code": error.code, "detail": error.detail})
        return problem(error.status, error.code, INTERNAL_DETAIL)
    return problem(error.status, error.code, error.detail, headers=_retry_after(error) or None, **_context(error))


def _retry_after(error: PointbridgeError) -> dict[str, str]:
    # A 429's `retry_after` (seconds) is also the standard header, for clients that honour it.
    seconds = error.context.get("retry_after")
    return {"Retry-After": str(seconds)} if isinstance(seconds, int) and error.status == 429 else {}


def _context(error: PointbridgeError) -> dict[str, Any]:
    # Only plain values leave the process; anything else stays in the logs.
    return {k: v for k, v in error.context.items() if isinstance(v, str | int | bool) and k not in CORE_FIELDS}


def install(app: APIGatewayRestResolver, observe: Callable[[PointbridgeError], None] | None = None) -> None:
    """Register the problem replies on a resolver; `observe` sees every domain refusal (metrics)."""

    @app.exception_handler(PointbridgeError)
    def domain_error(error: PointbridgeError) -> Response:
        if error.status >= 500 and not error.internal:
            logger.warning("request refused", extra={"code": error.code, "detail": error.detail})
        if observe is not None:
            observe(error)
        return _problem_of(error)

    @app.exception_handler(RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response:
        # Locations and pydantic's error types, never the offending input (it may hold personal data).
        errors = [
            {"loc": [str(part) for part in e["loc"]], "type": e["type"], "msg": str(e.get("msg", ""))}
            for e in error.errors()
        ]
        malformed = any(e["type"] == "json_invalid" for e in errors)
        detail = "the body is not valid JSON" if malformed else "the request does not match the API's schema"
        return problem(400, MALFORMED_JSON if malformed else InvalidInputError.code, detail, errors=errors)

    @app.exception_handler(RouteNotFoundError)
    def no_route(_: RouteNotFoundError) -> Response:
        return problem(404, NO_SUCH_ROUTE, "no route matches this method and path")
