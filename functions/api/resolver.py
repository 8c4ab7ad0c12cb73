"""How every HTTP function of the API is put together: one powertools REST resolver with the same
middleware (the permission table's role check, then Idempotency-Key claims), problem replies, and the
refusal of requests the API cannot read before the resolver parses them.

ApiFunction (functions.api.app) serves every route but a draw's reveal; DrawFunction
(functions.draws.app) serves only the reveal, so that it alone holds the draw key's kms:Sign. Both are
built here, each from its own routers: a router belongs to the one resolver that includes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from functions import problems
from functions.api.context import admit_role, guard_requests, unreadable

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.router import APIGatewayRouter
    from aws_lambda_powertools.utilities.typing import LambdaContext


def build(*routers: APIGatewayRouter) -> APIGatewayRestResolver:
    """A resolver serving these routers' routes behind the API's middleware and problem replies."""
    resolver = APIGatewayRestResolver(enable_validation=True)
    # The role check runs first: a key its row does not grant never claims an Idempotency-Key.
    resolver.use(middlewares=[admit_role, guard_requests])
    problems.install(resolver)
    for router in routers:
        resolver.include_router(router)
    return resolver


def serve(resolver: APIGatewayRestResolver, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One API Gateway proxy event through the resolver, or a problem for a body the API cannot read."""
    refused = unreadable(event)
    if refused is not None:
        return problems.proxy_reply(refused)
    return resolver.resolve(event, context)
