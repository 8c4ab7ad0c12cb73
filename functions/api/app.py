"""The HTTP API: one powertools REST resolver behind API Gateway, routes split by area.

Handlers are thin: parse (pydantic, via the resolver's validation), call one use case, shape the
reply. Errors become problem+json replies in functions.problems. The OpenAPI document is
generated from the routes and their pydantic models and finished in functions.api.openapi. API
Gateway serves it (/openapi.json) and Swagger UI on it (/docs) from the docs bucket, which
functions.docs writes at deployment: no request for them reaches this function, which does not import
the document's builder either (it would cost every cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from functions import handler_loaded, problems
from functions.api.context import admit_role, guard_requests, unreadable
from functions.api.routes import (
    admin,
    channels,
    dead_letters,
    draws,
    exchange,
    figures,
    flags,
    gifts,
    holds,
    identities,
    keys,
    members,
    operations_desk,
    partner_files,
    redemptions,
    service,
    support,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
app = APIGatewayRestResolver(enable_validation=True)
# The role check runs first: a key its row does not grant never claims an Idempotency-Key.
app.use(middlewares=[admit_role, guard_requests])
problems.install(app)

for area in (
    service,
    members,
    identities,
    redemptions,
    holds,
    exchange,
    gifts,
    draws,
    admin,
    keys,
    flags,
    figures,
    channels,
    partner_files,
    support,
    dead_letters,  # the operations page's areas (issue 14)
    operations_desk,
):
    app.include_router(area.router)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    refused = unreadable(event)
    if refused is not None:
        return problems.proxy_reply(refused)
    return app.resolve(event, context)


handler_loaded()
