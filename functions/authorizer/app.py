"""API Gateway Lambda REQUEST authorizer: an API key (header `x-api-key`) -> a principal, or a refusal.

The key is looked up by its id and checked against its stored SHA-256 (shared.access.keys). A good
key's principal travels to the API function as the authorizer context, under a policy that allows
the whole API (`<api arn>/<stage>/*/*`), so API Gateway may cache it per key; what a principal may
touch is decided per route in the API, by the permission table. A malformed, unknown, expired or
revoked key gets a Deny policy whose context names why (`refusal`): template.yaml's ACCESS_DENIED
gateway response turns it into a 401 problem with that code. (A request without the header never
reaches this function: API Gateway answers `key_missing` itself.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions import handler_loaded
from functions.services import services
from shared.access.keys import LAST_USED_RESOLUTION, KeyRefusal, check_key

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
DETAILS = {
    KeyRefusal.INVALID: "this API key is not valid",
    KeyRefusal.EXPIRED: "this API key expired",
    KeyRefusal.REVOKED: "this API key was revoked",
}


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


def _policy(principal_id: str, effect: str, method_arn: str, context: dict[str, str]) -> dict[str, Any]:
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": _api_wide(method_arn)}],
        },
        "context": context,
    }


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = services().now()
    checked = check_key(services().access_items, _header(event, "x-api-key"), now)
    if checked.principal is None:
        refusal = checked.refusal or KeyRefusal.INVALID
        logger.info("refused", extra={"refusal": refusal.value})
        return _policy("refused", "Deny", event["methodArn"], {"refusal": refusal.value, "detail": DETAILS[refusal]})
    record = checked.record
    assert record is not None
    if record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION:
        services().access_items.touch_key(record.key_id, now)
    principal = checked.principal
    logger.info("authorised", extra={"kind": principal.kind, "principal": principal.id, "key_id": record.key_id})
    return _policy(principal.key, "Allow", event["methodArn"], principal.to_context())


handler_loaded()
