"""Call the API handler in-process with API Gateway proxy events, through the real authorizer.

Every reply is recorded, and each module's are checked against openapi.json when it ends
(`tests.support.openapi_contract`), as the e2e suite's are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from functions.authorizer import app as authorizer
from shared.access.keys import AdminRole, Principal, PrincipalKind, issue_key
from shared.ledger.commands import Earn
from shared.program.config import ProgramConfig
from tests.conftest import T0
from tests.support import gateway
from tests.support.openapi_contract import OBSERVED, observe, undeclared

if TYPE_CHECKING:
    from collections.abc import Iterator

    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from shared.program.store import ProgramRepository

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/Prod/GET/health"


class FakeContext:
    function_name = "api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id = "req-1"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def code(self) -> str:
        return str(self.body.get("code", "")) if isinstance(self.body, dict) else ""


class Client:
    """The API handler in-process, on the test's services (installed by the `services` fixture)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def key_for(self, kind: PrincipalKind, ident: str, programs: tuple[str, ...] = ("demo",), **more: Any) -> str:
        return issue_key(self.services.access_items, Principal(kind=kind, id=ident, programs=programs, **more))

    def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        body: Any = None,
        raw: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        from functions.api import app as api
        from functions.draws import app as draw

        # As API Gateway routes it: the reveal's resource goes to DrawFunction, the rest to ApiFunction.
        handler = draw.handler if gateway.function_for(method, path) == "DrawFunction" else api.handler
        hdrs = {"content-type": "application/json", **(headers or {})}
        authorizer_context: dict[str, Any] = {}
        if key is None and path not in gateway.OPEN_PATHS and not path.startswith(gateway.OPEN_PREFIXES):
            return self._refused(method, path, None)
        if key is not None:
            hdrs["x-api-key"] = key
            policy = authorizer.handler({"headers": hdrs, "methodArn": METHOD_ARN}, FakeContext())  # type: ignore[arg-type]
            if policy["policyDocument"]["Statement"][0]["Effect"] != "Allow":
                return self._refused(method, path, policy["context"])
            authorizer_context = {**policy["context"], "principalId": policy["principalId"]}
        text = raw if raw is not None else (json.dumps(body) if body is not None else None)
        event = {
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": method,
            "headers": hdrs,
            "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
            "pathParameters": {"proxy": path.lstrip("/")},
            "stageVariables": None,
            "requestContext": {
                "resourcePath": "/{proxy+}",
                "httpMethod": method,
                "path": f"/Prod{path}",
                "stage": "Prod",
                "requestId": "r",
                "authorizer": authorizer_context or None,
                "identity": {"sourceIp": "127.0.0.1"},
            },
            "body": text,
            "isBase64Encoded": False,
        }
        out = handler(event, FakeContext())  # type: ignore[arg-type]
        headers_out = {k.lower(): v for k, v in (out.get("headers") or {}).items()}
        for k, values in (out.get("multiValueHeaders") or {}).items():
            headers_out[k.lower()] = values[0]
        payload = out.get("body") or ""
        parsed: Any = payload
        if "json" in headers_out.get("content-type", ""):
            parsed = json.loads(payload)
        observe(method, path, out["statusCode"], headers_out.get("content-type", ""), parsed)
        return Reply(out["statusCode"], headers_out, parsed)

    def _refused(self, method: str, path: str, context: dict[str, str] | None) -> Reply:
        status, headers, body = gateway.refused(context)
        observe(method, path, status, headers["content-type"], body)
        return Reply(status, headers, body)


@pytest.fixture(scope="module", autouse=True)
def replies_are_declared_in_the_document() -> Iterator[None]:
    """Every status and problem code this module's calls got is declared for its operation."""
    first = len(OBSERVED)
    yield
    found = undeclared(OBSERVED[first:])
    assert not found, "replies that openapi.json does not declare:\n" + "\n".join(found)


@pytest.fixture
def api(services: Services, programs: ProgramRepository) -> Client:
    return Client(services)


@pytest.fixture
def admin_key(api: Client) -> str:
    """An operator's key (configuration, keys, draws)."""
    return api.key_for(PrincipalKind.ADMIN, "ops", ())


@pytest.fixture
def support_key(api: Client) -> str:
    return api.key_for(PrincipalKind.ADMIN, "helpdesk", (), role=AdminRole.SUPPORT)


@pytest.fixture
def till_key(api: Client) -> str:
    """A channel of demo that does not authenticate members (a till): spends on its own references."""
    return api.key_for(PrincipalKind.CHANNEL, "till-1")


@pytest.fixture
def app_key(api: Client) -> str:
    """The brand's app backend: a channel of demo that authenticates its members."""
    return api.key_for(PrincipalKind.CHANNEL, "app", authenticates_members=True)


@pytest.fixture
def funded(ledger: Ledger) -> Ledger:
    """Member m1 of demo with 1,000 points earned at T0 (expiring 12 months later)."""
    ledger.earn(
        Earn(
            program="demo",
            member="m1",
            points=1000,
            source="shop",
            external_id="o1",
            reason="order o1",
            event_time=T0,
        ),
        at=T0,
    )
    return ledger


def link_partner(api: Client, partner_key: str, member: str, partner_member_id: str, program: str = "demo") -> None:
    """The partner links its own member id to the member: from then on it may credit the member."""
    path = f"/programs/{program}/members/{member}/identities"
    reply = api.call("POST", path, key=partner_key, body={"kind": "partner", "value": partner_member_id})
    assert reply.status == 201, reply.body


def second_program(programs: ProgramRepository, name: str = "air") -> None:
    programs.publish(ProgramConfig(program=name, name=name.title()))
