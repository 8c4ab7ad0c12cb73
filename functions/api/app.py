"""The HTTP API: one powertools REST resolver behind API Gateway, routes split by area.

Handlers are thin: parse (pydantic, via the resolver's validation), call one use case, shape the
reply. Errors become problem+json replies in functions.problems. The OpenAPI document is
generated from the pydantic models and served at /docs (Swagger UI, assets bundled inside
powertools, so no CDN) and /docs?format=json.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from pydantic import BaseModel

from functions import problems
from functions.api.context import guard_requests, oversized
from functions.api.routes import admin, draws, exchange, figures, flags, gifts, holds, identities, members, redemptions

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
app = APIGatewayRestResolver(enable_validation=True)
app.use(middlewares=[guard_requests])
problems.install(app)

for area in (members, identities, redemptions, holds, exchange, gifts, draws, admin):
    app.include_router(area.router)
app.include_router(flags.router)
app.include_router(figures.router)

app.enable_swagger(
    path="/docs",
    title="Pointbridge API",
    version="1",
    description="Members, redemption, partner exchange and admin. Errors are application/problem+json.",
    security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
    security=[{"apiKey": []}],
)


class Health(BaseModel):
    status: str


@app.get("/health", security=[])
def health() -> Health:
    return Health(status="ok")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    too_large = oversized(event)
    if too_large is not None:
        return problems.proxy_reply(too_large)
    return app.resolve(event, context)
