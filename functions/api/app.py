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
from functions.api.context import guard_requests, oversized
from functions.api.routes import (
    admin,
    channels,
    draws,
    exchange,
    figures,
    flags,
    gifts,
    holds,
    identities,
    members,
    partner_files,
    redemptions,
    service,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
app = APIGatewayRestResolver(enable_validation=True)
app.use(middlewares=[guard_requests])
problems.install(app)

for area in (service, members, identities, redemptions, holds, exchange, gifts, draws, admin, flags, figures):
    app.include_router(area.router)
# Channels and partners' files (issue 13).
for area in (channels, partner_files):
    app.include_router(area.router)


@app.get("/docs", include_in_schema=False)
def docs() -> Response[str]:
    """Swagger UI, or the OpenAPI document itself with `?format=json` (built once per container)."""
    if (app.current_event.query_string_parameters or {}).get("format") == "json":
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi.text(app))
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=openapi.swagger_page(app))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    too_large = oversized(event)
    if too_large is not None:
        return problems.proxy_reply(too_large)
    return app.resolve(event, context)
