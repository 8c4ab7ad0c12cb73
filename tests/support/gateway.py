"""API Gateway's own replies for the in-process API tests, from template.yaml's GatewayResponses.

The sandbox answers key refusals with the API's gateway responses (`pointbridge.sandbox.apigw`);
the in-process client of tests/integration/api uses the same code on the same template, so a
refused key reads the same there as over HTTP.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pointbridge.sandbox.apigw import EXPLICIT_DENY, UNAUTHORIZED, Route, gateway_reply, select_route
from pointbridge.sandbox.core import gateway_response
from pointbridge.sandbox.template import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
# Routes of the API that have `Authorizer: NONE` in the template (the console's assets by prefix).
OPEN_PATHS = frozenset({"/health", "/console", "/console/operations"})
OPEN_PREFIXES = ("/console/assets/",)


@cache
def points_api() -> Route:
    responses = load_template(TEMPLATE)["Resources"]["PointsApi"]["Properties"]["GatewayResponses"]
    return Route(
        function="ApiFunction",
        method="ANY",
        resource="/{proxy+}",
        api_id="abc123",
        stage="Prod",
        gateway_responses={str(kind): gateway_response(spec) for kind, spec in responses.items()},
    )


@cache
def _function_routes() -> list[Route]:
    """The PointsApi routes of template.yaml's functions (each Api event's path and method)."""
    found = []
    for logical_id, resource in load_template(TEMPLATE)["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                props = event["Properties"]
                found.append(Route(logical_id, str(props["Method"]).upper(), str(props["Path"]), "abc123", "Prod"))
    return found


def function_for(method: str, path: str) -> str:
    """The function API Gateway sends this request to (ApiFunction for a path no route names)."""
    selected = select_route(_function_routes(), method, path)
    return selected[0].function if selected is not None else "ApiFunction"


def refused(context: dict[str, str] | None) -> tuple[int, dict[str, str], Any]:
    """The reply to a request without a key (`context` None) or one the authorizer denied."""
    refusal = UNAUTHORIZED if context is None else EXPLICIT_DENY
    status, headers, body = gateway_reply(points_api(), refusal, context or {}, "r")
    return status, {name.lower(): values[0] for name, values in headers.items()}, json.loads(body)
