"""Every route, every kind of caller, over real HTTP: the authorization matrix and the schema fuzz.

The matrix (`tests.support.security`) expects each answer from the permission table and observes it
on the sandbox; the fuzz sends schemathesis cases for every operation with every caller's key and
checks each reply against the document. bench/security.py runs the same two and writes
bench/results/security.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pointbridge.sandbox import Sandbox
from tests.support import openapi_contract
from tests.support.security import World, build_world, operations, run_corpus, run_fuzz, run_matrix

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        yield build_world(sb)


def _observe(method: str, path: str, reply: requests.Response) -> None:
    openapi_contract.observe_text(method, path, reply.status_code, reply.headers.get("content-type", ""), reply.text)


def test_every_route_answers_every_caller_as_the_permission_table_says(world: World) -> None:
    matrix = run_matrix(world, observe=_observe)
    assert len(matrix.cells) == len(operations(world.sandbox)) * len(world.callers) > 600
    assert not matrix.holes, "allowed where the table denies:\n" + "\n".join(map(str, matrix.holes))
    assert not matrix.overdenied, "denied where the table allows:\n" + "\n".join(map(str, matrix.overdenied))
    assert not matrix.server_errors, matrix.server_errors
    # Each kind of caller was both allowed and denied somewhere (the samples reached every decision),
    # but a caller without a valid key only ever passed the open health check
    for caller in world.callers:
        outcomes = {cell.expected for cell in matrix.cells if cell.caller == caller.name}
        assert outcomes == {"allow", "deny"}, caller.name
        if caller.principal is None:
            allowed = [cell.operation for cell in matrix.cells if cell.caller == caller.name and cell.status != 401]
            assert allowed == ["GET /health"], (caller.name, allowed)


def test_schema_fuzz_of_every_route_with_every_caller_has_no_server_error(world: World) -> None:
    """Schemathesis cases for every documented operation, sent with each caller's key: no 5xx, and every
    reply one the document declares (status, content type, headers, body; a problem's `code` among those
    declared for its status). Driven with hypothesis directly (schemathesis' pytest plugin does not load
    under pytest 9)."""

    def observe(case: Any, response: Any) -> None:
        content_type = response.headers.get("content-type", [""])[0]
        openapi_contract.observe_text(
            case.method, case.formatted_path, response.status_code, content_type, response.text
        )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    fuzz = run_fuzz(world, examples=2, observe=observe, checks=checks)
    assert not fuzz.server_errors, fuzz.server_errors
    documented = len(operations(world.sandbox)) - 1  # the app events are not in the document
    assert fuzz.cases >= documented * len(world.callers)


def test_malformed_requests_to_every_route_are_problems_never_server_errors(world: World) -> None:
    """What no schema generator writes, sent to every operation by the callers its row allows: a
    multipart body without a boundary, form fields, JSON labelled as text, a body that is not UTF-8,
    arrays and objects nested thousands deep, a 5000-digit number, each path parameter 300 characters
    long, and each time of a valid body moved to 9999-12-31T23:59:59-05:00. Each is a 4xx problem the
    document declares (checked when the module ends), none a 5xx."""
    corpus = run_corpus(world, observe=_observe)
    assert not corpus.server_errors, "\n".join(corpus.server_errors)
    assert corpus.cases > 400
