"""The HTTP API: one powertools REST resolver behind API Gateway, routes split by area.

Handlers are thin: parse (pydantic, via the resolver's validation), call one use case, shape the
reply. Errors become problem+json replies in functions.problems. The OpenAPI document is
generated from the routes and their pydantic models and finished in functions.api.openapi. API
Gateway serves it (/openapi.json) and Swagger UI on it (/docs) from the docs bucket, which
functions.docs writes at deployment: no request for them reaches this function, which does not import
the document's builder either (it would cost every cold start).

A draw's reveal is not served here: API Gateway sends it to DrawFunction (functions.draws.app), the
only function that may sign with the draw key. The document lists it all the same (ROUTERS there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions import handler_loaded
from functions.api import resolver
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
    member_imports,
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
ROUTERS = tuple(
    area.router
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
        member_imports,
        dead_letters,  # the operations page's areas (issue 14)
        operations_desk,
    )
)
app = resolver.build(*ROUTERS)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolver.serve(app, event, context)


handler_loaded()
