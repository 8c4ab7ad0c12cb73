"""The OpenAPI document: the committed copy is what /openapi.json serves, and it is complete and true to the code.

Built in process from the app (no AWS): every operation, parameter and schema property described;
problem replies instead of powertools' 422; access, Idempotency-Key and servers; the refusal
catalogue in step with the error classes; the access each operation documents is the check its
route makes.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from openapi_spec_validator import validate

import functions
import integrations
import shared
from functions import problems
from functions.api import context, openapi
from functions.api.context import MUTATING
from functions.api.operations import OPERATIONS
from functions.api.refusals import KEY_REFUSALS, REFUSALS
from functions.permissions import PAGES, PERMISSIONS, WEBHOOK_ROUTES, table
from shared.errors import PointbridgeError
from tests.support import openapi_contract

# The routes of both API functions (ApiFunction's and DrawFunction's reveal), as the document lists them.
app = openapi.served()

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]

# Errors no operation of the HTTP API raises: bases, the jobs', the ingest queue's, the webhook adapters'.
NOT_FROM_THE_API = {
    "pointbridge_error",  # the root
    "not_found",  # a base: its subclasses say what was not found
    "ledger_error",  # a base; raised alone only for an entry that does not balance (a bug)
    "program_closed",  # a base: earning_closed, redemption_closed
    "job_error",
    "stale_run",
    "future_run",  # the jobs' refusal of a time ahead of the clock
    "not_due",  # the expiry job's
    "queue_unavailable",
    "file_not_finished",  # the file splitter's: raised so that the S3 event is delivered again
    "channel_unavailable",  # the webhooks': a channel record that cannot be used (Shopify and Square retry)
    "service_unavailable",  # a stack without its identity hash key: a deployment fault, as API Gateway's 502
    "malformed_event",  # the ingest queue's poison messages
    "refund_exceeds_order",  # ingest refuses a refund above its order (a dead letter with the numbers)
    "adapter_error",
    "bad_signature",
    "stale_webhook",
    "malformed_payload",
    "amount_out_of_range",
    "unsupported_currency",
    "unknown_source",
    "unsupported_event",
    "missing_identity",
    "cannot_merge_members",  # ingest's linking of two registered members; the API claims identities instead
}
DOCS = ROOT / "docs" / "api.md"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.document(app)


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        found: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


def _schemas_with_properties(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object anywhere in the document that has `properties`, with where it is."""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            yield where, node
        for key, value in node.items():
            yield from _schemas_with_properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _schemas_with_properties(value, f"{where}/{index}")


def test_the_committed_document_is_the_served_one() -> None:
    committed = openapi.COMMITTED.read_text(encoding="utf-8")
    assert openapi.text(app) == committed, "openapi.json is stale: run `python -m functions.api.openapi`"
    assert committed.endswith("}\n") and json.loads(committed) == openapi.document(app)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_property_parameter_and_schema_is_described(document: dict[str, Any]) -> None:
    undescribed = [
        f"{where}/properties/{name}"
        for where, schema in _schemas_with_properties(document)
        for name, prop in schema["properties"].items()
        if not prop.get("description")
    ]
    assert not undescribed, undescribed
    schemas = document["components"]["schemas"]
    assert not [name for name, schema in schemas.items() if not schema.get("description")]
    properties = sum(len(s.get("properties", {})) for s in schemas.values())
    assert properties > 250, properties
    for method, path, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            assert _resolve(document, parameter).get("description"), (method, path, parameter)
        assert operation["summary"] and operation["description"], (method, path)


def test_every_schema_is_used(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    unused = [name for name in document["components"]["schemas"] if f'"#/components/schemas/{name}"' not in text]
    assert not unused


def test_operations_answer_problems_not_powertools_422(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and "ValidationError" not in text
    for method, path, operation in _operations(document):
        for status, reply in operation["responses"].items():
            reply = _resolve(document, reply)
            if status.startswith("2"):
                assert list(reply["content"]) == ["application/json"], (method, path, status)
            else:
                content = reply["content"][problems.PROBLEM_JSON]
                codes = content["schema"]["allOf"][1]["properties"]["code"]["enum"]
                assert {REFUSALS[code].status for code in codes} == {int(status)}, (method, path, status)
                assert sorted(content["examples"]) == sorted(codes)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "400" in operation["responses"], (method, path)  # invalid_input, malformed_json


def test_ids_tags_and_security_per_operation(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids)) == len(OPERATIONS)
    tags = {tag["name"] for tag in document["tags"]}
    assert all(tag["description"] for tag in document["tags"])
    open_routes = []
    for method, path, operation in _operations(document):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in tags
        assert "**Who may call:**" in operation["description"]
        if operation["security"] == []:
            open_routes.append(path)
            assert "401" not in operation["responses"] and "403" not in operation["responses"]
        else:
            assert operation["security"] == [{"apiKey": []}]
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
    assert open_routes == ["/health"]  # and /docs and /openapi.json, which API Gateway serves from S3
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "x-api-key")
    assert "security" not in document  # each operation says its own


def test_mutations_take_an_idempotency_key_and_say_when_a_reply_is_replayed(document: dict[str, Any]) -> None:
    mutations = 0
    for method, path, operation in _operations(document):
        refs = [p.get("$ref") for p in operation.get("parameters", [])]
        replies = {status: _resolve(document, r) for status, r in operation["responses"].items()}
        if method in MUTATING:
            mutations += 1
            assert "#/components/parameters/IdempotencyKey" in refs, (method, path)
            assert all("Idempotent-Replayed" in r["headers"] for s, r in replies.items() if s.startswith("2"))
            assert "idempotency_conflict" in replies["409"]["content"][problems.PROBLEM_JSON]["examples"]
        else:
            assert "#/components/parameters/IdempotencyKey" not in refs, (method, path)
    assert mutations > 20
    header = document["components"]["parameters"]["IdempotencyKey"]
    assert (header["in"], header["name"], header["schema"]["maxLength"]) == ("header", "Idempotency-Key", 200)
    minting = document["paths"]["/admin/keys"]["post"]["responses"]["409"]
    assert (
        "secret_not_replayed"
        in minting["content"][problems.PROBLEM_JSON]["schema"]["allOf"][1]["properties"]["code"]["enum"]
    )


def test_servers_resolve_against_where_the_document_is_served(document: dict[str, Any]) -> None:
    # /openapi.json sits at the API's root, so "." is the root wherever the API is: the sandbox or a stage.
    assert document["servers"][0]["url"] == "."
    assert all(server["description"] for server in document["servers"])


def test_every_route_takes_its_permission_from_the_table() -> None:
    """One table: every operation has a row, every row an operation (or the webhook's route, or a
    page), and every guarded route asks the table (`context.authorize`) instead of checking itself."""
    routes = openapi.routes(app)
    assert set(PERMISSIONS) == set(routes) | WEBHOOK_ROUTES | PAGES
    for (method, path), route in routes.items():
        source = inspect.getsource(route)
        old_checks = ("require_admin(", "require_program(", "require_member(", "require_staff(", "require_partner(")
        assert not any(check in source for check in old_checks), path
        if PERMISSIONS[(method, path)].open:
            assert "authorize(" not in source, path
        else:
            # The route's own router: `router`, or `reveal_router` for DrawFunction's one route
            assert len(re.findall(r"context\.authorize\(\s*(?:reveal_)?router\b", source)) == 1, (method, path)
    webhook = inspect.getsource(importlib.import_module("functions.webhooks.app").app_events)
    assert 'PERMISSIONS[("POST", "/app-events")]' in webhook


def test_auditors_only_read_and_admins_never_spend_a_members_points() -> None:
    from shared.access.permissions import Role

    for (method, path), rule in PERMISSIONS.items():
        if Role.AUDITOR in rule.grants:
            assert method == "GET", path
        if "/members/{member}/" in path and method in MUTATING and not path.startswith("/admin/"):
            assert not {Role.OPERATOR, Role.SUPPORT, Role.AUDITOR} & set(rule.grants), path
            # A partner credits (transfers in), links its own ids, and settles transfers sent to it.
            partners_own = ("/transfers-in", "/identities", "/confirm", "/reject")
            assert Role.PARTNER not in rule.grants or path.endswith(partners_own), path


def test_docs_print_the_permission_table() -> None:
    assert table() in DOCS.read_text(encoding="utf-8"), "docs/api.md: paste `python -m functions.permissions`"


def test_the_route_rows_and_the_documents_who_may_call_agree(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        rule = PERMISSIONS[(method, path)]
        if rule.open:
            assert "Anyone: no key." in operation["description"]
        for role in rule.grants:
            assert str(role) in operation["description"].split("**Who may call:**")[1], (method, path, role)


def test_every_operation_has_a_row_and_every_row_a_route() -> None:
    assert set(openapi.routes(app).values()) == set(OPERATIONS)


def test_refusal_examples_are_the_replies_the_api_writes() -> None:
    declared = openapi_contract.read(openapi.document(app))
    for code, refusal in REFUSALS.items():
        written = json.loads(str(problems.problem(refusal.status, code, refusal.detail, **refusal.extra).body))
        assert refusal.example() == written
        assert set(written) <= declared.problem_fields, code


def _error_classes() -> list[type[PointbridgeError]]:
    for package in (shared, integrations, functions):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    found: list[type[PointbridgeError]] = []
    todo: list[type[PointbridgeError]] = [PointbridgeError]
    while todo:
        error = todo.pop()
        found.append(error)
        todo.extend(error.__subclasses__())
    return found


def test_the_refusals_are_every_error_the_api_raises_with_the_classes_status() -> None:
    classes = _error_classes()
    codes = {error.code for error in classes}
    assert len(codes) == len(classes), "two error classes share a code"
    unknown = codes - set(REFUSALS) - NOT_FROM_THE_API
    assert not unknown, f"new error codes: add them to functions.api.refusals or NOT_FROM_THE_API: {unknown}"
    for error in classes:
        if error.code in REFUSALS:
            assert REFUSALS[error.code].status == error.status, error.code
    assert set(REFUSALS) - codes == {problems.NO_SUCH_ROUTE} | {r.code for r in KEY_REFUSALS}


def test_every_refusal_but_no_such_route_is_declared_somewhere(document: dict[str, Any]) -> None:
    declared = openapi_contract.read(document)
    used = {code for statuses in declared.operations.values() for codes in statuses.values() for code in codes}
    assert set(REFUSALS) - used == {problems.NO_SUCH_ROUTE}  # a path no operation has: in the intro
    assert context.MALFORMED_JSON == problems.MALFORMED_JSON


def test_a_route_without_a_row_or_a_docstring_is_refused() -> None:
    resolver = APIGatewayRestResolver(enable_validation=True)

    @resolver.get("/elsewhere")
    def elsewhere() -> None:
        pass

    with pytest.raises(LookupError, match="elsewhere"):
        openapi.document(resolver)
    with pytest.raises(LookupError, match="docstring"):
        openapi._docstring(elsewhere)


def test_the_documented_vs_observed_check_flags_what_the_document_does_not_declare() -> None:
    redeem = "/programs/demo/members/m1/redemptions"
    core = frozenset({"type", "title", "status", "detail", "code"})

    def seen(method: str, path: str, status: int, code: str | None = None, extra: frozenset[str] = frozenset()) -> Any:
        template = openapi_contract.declared().template(method, path)
        return openapi_contract.Observation(method, path, template, status, code, core | extra if code else frozenset())

    assert (
        openapi_contract.undeclared(
            [
                seen("POST", redeem, 201),
                seen("POST", redeem, 409, "out_of_stock"),
                seen("POST", redeem, 409, "account_closed", frozenset({"survivor", "member"})),
                seen("POST", redeem, 401, "key_revoked"),
                seen("GET", "/programs/demo/nothing-here", 404, "no_such_route"),
                seen("GET", "/docs", 200),
            ]
        )
        == []
    )
    found = openapi_contract.undeclared(
        [
            seen("POST", redeem, 200),
            seen("POST", redeem, 409, "flag_already_decided"),
            seen("POST", redeem, 422, "insufficient_points", frozenset({"secret"})),
            seen("GET", "/programs/demo/nothing-here", 200),
        ]
    )
    assert len(found) == 4, found
    assert "declares [201, 400, 401, 403, 404, 409, 413, 415, 422, 503]" in found[0]
    assert "flag_already_decided" in found[1] and "'out_of_stock'" in found[1]
    assert "['secret']" in found[2]
    assert "no such operation" in found[3]
