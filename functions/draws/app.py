"""A draw's reveal, the one route that signs with the draw key (template.yaml DrawFunction).

Kept apart from ApiFunction so that only this function's role is granted kms:Sign: nothing else the
API runs can produce a draw's randomness. Built like the API (functions.api.resolver): the same role
check from the permission table, Idempotency-Key claims and problem replies, for this route only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions import handler_loaded
from functions.api import resolver
from functions.api.routes import draws

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
ROUTERS = (draws.reveal_router,)
app = resolver.build(*ROUTERS)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolver.serve(app, event, context)


handler_loaded()
