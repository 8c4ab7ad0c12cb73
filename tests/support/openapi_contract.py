"""Documented vs observed: every reply a test sees, checked against what openapi.json declares.

`observe` records (method, path template, status, code) for each reply the API clients of the tests
get (`tests.support.http_api.HttpApi` over HTTP, the in-process client of tests/integration/api).
`undeclared` lists the observations the committed document does not declare for that operation:
a status it does not list, a problem code outside that status's codes, or a problem field the
`Problem` schema does not name. A module-scoped fixture checks each test module's observations
when the module ends (under pytest-xdist `--dist loadfile` a module runs whole in one process).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "openapi.json"
PROBLEM_JSON = "application/problem+json"
# Refusals made before any operation is chosen: API Gateway's (no key, or a key the authorizer refused)
# and the resolver's (no route, a body it cannot read).
BEFORE_ANY_OPERATION = {
    (401, "key_missing"),
    (401, "key_invalid"),
    (401, "key_expired"),
    (401, "key_revoked"),
    (404, "no_such_route"),
}
# Served behind the API, but not operations of its document: the pages (the documentation, which API
# Gateway serves from the docs bucket, and the console) and the webhook receiver's app events.
NOT_OPERATIONS = {
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/console"),
    ("GET", "/console/operations"),
    ("POST", "/app-events"),
}


@dataclass(frozen=True)
class Observation:
    method: str
    path: str
    template: str | None  # the documented path it matched, None when none did
    status: int
    code: str | None  # a problem's code; None for any other reply
    fields: frozenset[str] = frozenset()  # a problem's fields


@dataclass(frozen=True)
class Declared:
    # (METHOD, template) -> status -> the problem codes declared for it (empty: not a problem reply)
    operations: dict[tuple[str, str], dict[int, frozenset[str]]]
    problem_fields: frozenset[str]
    templates: tuple[tuple[str, re.Pattern[str]], ...]  # most literal first

    def template(self, method: str, path: str) -> str | None:
        for template, pattern in self.templates:
            if (method, template) in self.operations and pattern.fullmatch(path):
                return template
        return None


OBSERVED: list[Observation] = []


def observe(method: str, path: str, status: int, content_type: str, body: Any) -> Observation:
    """Record one reply the API gave (`path` as sent, without the query)."""
    problem = content_type.split(";")[0].strip() == PROBLEM_JSON and isinstance(body, dict)
    seen = Observation(
        method=method.upper(),
        path=path,
        template=declared().template(method.upper(), path),
        status=status,
        code=str(body.get("code")) if problem else None,
        fields=frozenset(body) if problem else frozenset(),
    )
    OBSERVED.append(seen)
    return seen


def observe_text(method: str, path: str, status: int, content_type: str, text: str) -> Observation:
    try:
        body = json.loads(text) if "json" in content_type else None
    except ValueError:
        body = None
    return observe(method, path, status, content_type, body)


def undeclared(observations: list[Observation]) -> list[str]:
    """Each observation the committed document does not declare, as a sentence."""
    document = declared()
    found: list[str] = []
    for seen in dict.fromkeys(observations):
        what = f"{seen.method} {seen.path} answered {seen.status}" + (f" {seen.code}" if seen.code else "")
        if seen.template is None:
            page = (seen.method, seen.path) in NOT_OPERATIONS or seen.path.startswith(("/docs/", "/console/assets/"))
            if not page and (seen.status, seen.code) not in BEFORE_ANY_OPERATION:
                found.append(f"{what}, but openapi.json has no such operation")
            continue
        statuses = document.operations[(seen.method, seen.template)]
        where = f"{seen.method} {seen.template}"
        if seen.status not in statuses:
            found.append(f"{what}: openapi.json declares {sorted(statuses)} for {where}")
        elif seen.code is not None and seen.code not in statuses[seen.status]:
            codes = sorted(statuses[seen.status])
            found.append(f"{what}: openapi.json declares {codes} with {seen.status} for {where}")
        extra = seen.fields - document.problem_fields
        if extra:
            found.append(f"{what} with fields {sorted(extra)} that the Problem schema does not declare")
    return found


@cache
def declared() -> Declared:
    return read(json.loads(COMMITTED.read_text(encoding="utf-8")))


def read(document: dict[str, Any]) -> Declared:
    operations: dict[tuple[str, str], dict[int, frozenset[str]]] = {}
    for template, item in document["paths"].items():
        for method, operation in item.items():
            statuses = {}
            for status, reply in operation["responses"].items():
                statuses[int(status)] = frozenset(_codes(document, _resolve(document, reply)))
            operations[(method.upper(), template)] = statuses
    problem = document["components"]["schemas"]["Problem"]
    # API Gateway prefers literal segments to {params}; so does the matcher.
    templates = sorted(document["paths"], key=lambda t: (-len(re.sub(r"\{[^}]+\}", "", t)), t))
    return Declared(
        operations=operations,
        problem_fields=frozenset(problem["properties"]),
        templates=tuple((t, re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)))) for t in templates),
    )


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        found: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


def _codes(document: dict[str, Any], reply: dict[str, Any]) -> list[str]:
    schema = reply.get("content", {}).get(PROBLEM_JSON, {}).get("schema")
    if schema is None:
        return []
    for part in schema.get("allOf", []):
        code = _resolve(document, part).get("properties", {}).get("code", {})
        if "enum" in code:
            return list(code["enum"])
    return []
