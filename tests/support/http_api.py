"""The API over real HTTP for e2e tests: calls with a key, typed problems, Idempotency-Key replays.

Every reply is recorded (`tests.support.openapi_contract.observe`): tests/e2e/conftest.py checks,
module by module, that openapi.json declares each status and problem code the suite saw.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests

from shared.access.keys import Principal, PrincipalKind, issue_key
from tests.support import openapi_contract
from tests.support.services import sandbox_services

if TYPE_CHECKING:
    from functions.services import Services
    from pointbridge.sandbox import Sandbox

PROBLEM_JSON = "application/problem+json"


@dataclass
class HttpApi:
    sandbox: Sandbox
    session: requests.Session = field(default_factory=requests.Session)
    _keys: dict[Principal, str] = field(default_factory=dict)

    @cached_property
    def services(self) -> Services:
        """The sandbox's table as the test reads and seeds it (its functions have their own services)."""
        return sandbox_services(self.sandbox, config_cache_seconds=0)

    def key(self, kind: PrincipalKind, ident: str, programs: tuple[str, ...] = (), **more: Any) -> str:
        """One key per principal, minted on first use (minting writes an item)."""
        principal = Principal(kind=kind, id=ident, programs=programs, **more)
        if principal not in self._keys:
            self._keys[principal] = issue_key(self.services.access_items, principal)
        return self._keys[principal]

    def call(
        self,
        method: str,
        path: str,
        key: str | None = None,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        raw: str | None = None,
    ) -> requests.Response:
        sent = dict(headers or {})
        if key is not None:
            sent["x-api-key"] = key
        if raw is not None:
            sent["content-type"] = "application/json"
        reply = self.session.request(
            method,
            self.sandbox.api_url + path,
            json=body if raw is None else None,
            data=raw.encode() if raw is not None else None,
            params=query,
            headers=sent,
            timeout=60,
        )
        openapi_contract.observe_text(
            method, path, reply.status_code, reply.headers.get("content-type", ""), reply.text
        )
        return reply

    def ok(self, method: str, path: str, key: str | None, body: Any = None, *, status: int = 200, **kw: Any) -> Any:
        reply = self.call(method, path, key, body, **kw)
        assert reply.status_code == status, f"{method} {path}: {reply.status_code} {reply.text}"
        return reply.json()

    def mutate(
        self, method: str, path: str, key: str, body: Any = None, *, other: Any = None, status: int = 201
    ) -> Any:
        """A mutation under a fresh Idempotency-Key, then the same request again (the stored reply comes
        back, marked replayed) and the key with `other`, a different valid body (a typed conflict, and
        nothing runs). Bodiless routes get a stray body as their different request."""
        assert body is None or other is not None, "give the different body to replay under the same key"
        idempotency = {"Idempotency-Key": uuid.uuid4().hex}
        first = self.call(method, path, key, body, headers=idempotency)
        assert first.status_code == status, f"{method} {path}: {first.status_code} {first.text}"
        again = self.call(method, path, key, body, headers=idempotency)
        assert (again.status_code, again.json()) == (status, first.json()), again.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        different = other if other is not None else {"another": "body"}
        problem(self.call(method, path, key, different, headers=idempotency), 409, "idempotency_conflict")
        return first.json()

    def link_partner(self, partner: str, program: str, member: str, partner_member_id: str) -> None:
        """A partner links its own member id to one of ours: from then on it may credit that member."""
        body = {"kind": "partner", "value": partner_member_id}
        self.ok("POST", f"/programs/{program}/members/{member}/identities", partner, body, status=201)

    def table_items(self) -> int:
        """Every item in the sandbox's table, after the stream watcher has caught up."""
        self.sandbox.wait_for_idle(timeout=60)
        return sum(1 for _ in self.services.table.scan())


def problem(reply: requests.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem reply with this status and stable code; returns its body."""
    assert reply.status_code == status, f"{reply.status_code} {reply.text}"
    assert reply.headers["content-type"] == PROBLEM_JSON, reply.headers
    body: dict[str, Any] = reply.json()
    assert (body["status"], body["code"]) == (status, code), body
    assert body["type"].endswith(code) and body["detail"]
    return body
