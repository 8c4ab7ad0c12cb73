"""API Gateway Lambda REQUEST authorizer: an API key (header `x-api-key`) -> a principal.

The key is looked up by its SHA-256 (shared.access); the principal travels to the API function
as the authorizer context. The policy allows the whole API (`<api arn>/<stage>/*/*`) so API
Gateway may cache it per key; what a principal may touch is decided per route in the API, where
the program and member are known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions.services import services
from shared.access.keys import resolve_key

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


def _api_wide(method_arn: str) -> str:
    # arn:aws:execute-api:region:account:api-id/stage/METHOD/path -> .../stage/*/*
    prefix, _, rest = method_arn.partition("/")
    stage = rest.split("/", 1)[0]
    return f"{prefix}/{stage}/*/*"


def _header(event: dict[str, Any], name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value or "")
    return ""


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    key = _header(event, "x-api-key")
    principal = resolve_key(services().access_items, key) if key else None
    if principal is None:
        # API Gateway turns exactly this message into a 401 reply.
        raise Exception("Unauthorized")  # noqa: TRY002 - the contract with API Gateway
    logger.info("authorised", extra={"kind": principal.kind, "principal": principal.id})
    return {
        "principalId": principal.key,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": _api_wide(event["methodArn"])}
            ],
        },
        "context": principal.to_context(),
    }
