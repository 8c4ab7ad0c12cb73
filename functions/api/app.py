"""The HTTP API: one powertools REST resolver behind API Gateway, routes split by area.

Handlers are thin: parse (pydantic, via the resolver's validation), call one use case, shape the
reply. Errors become problem+json replies in functions.problems. The OpenAPI document is
generated from the routes and their pydantic models and finished in functions.api.openapi; it is
served at /docs (Swagger UI, assets bundled inside powertools, so no CDN) and /docs?format=json.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from functions import problems
from functions.api import openapi
from functions.api.context import admit_role, guard_requests, unreadable
from functions.api.routes import (
    admin,
    draws,
    exchange,
    figures,
    flags,
    gifts,
    holds,
    identities,
    keys,
    members,
    redemptions,
    service,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
app = APIGatewayRestResolver(enable_validation=True)
# The role check runs first: a key its row does not grant never claims an Idempotency-Key.
app.use(middlewares=[admit_role, guard_requests])
problems.install(app)

for area in (service, members, identities, redemptions, holds, exchange, gifts, draws, admin, keys, flags, figures):
    app.include_router(area.router)


@app.get("/docs", include_in_schema=False)
def docs() -> Response[str]:
    """Swagger UI, or the OpenAPI document itself with `?format=json` (built once per container)."""
    if (app.current_event.query_string_parameters or {}).get("format") == "json":
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi.text(app))
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=openapi.swagger_page(app))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    refused = unreadable(event)
    if refused is not None:
        return problems.proxy_reply(refused)
    return app.resolve(event, context)
