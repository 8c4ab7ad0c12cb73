"""The OpenAPI document as the sandbox serves it: the committed one, and its server reaches the API.

Swagger UI's Try it out resolves the document's server against the page's URL; the first test
does the same over HTTP, the second clicks Try it out in Debian's chromium (skipped without it,
unless POINTBRIDGE_REQUIRE_BROWSER is set).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import pytest

from pointbridge.sandbox import Sandbox
from tests.support.api_stack import Seeded, seed
from tests.support.browser import chromium
from tests.support.http_api import HttpApi
from tests.support.openapi_contract import COMMITTED

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[HttpApi, Seeded]]:
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        yield HttpApi(sb), seed(sb, members=1, points=1000)


def test_the_served_document_is_the_committed_one(stack: tuple[HttpApi, Seeded]) -> None:
    api, _ = stack
    served = api.call("GET", "/docs", query={"format": "json"})
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    assert served.text == COMMITTED.read_text(encoding="utf-8")
    page = api.call("GET", "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in page.text and '"operationId": "balance"' in page.text


def test_an_operation_answers_at_the_server_the_document_advertises(stack: tuple[HttpApi, Seeded]) -> None:
    api, seeded = stack
    docs_url = f"{api.sandbox.api_url}/docs?format=json"
    document = api.session.get(docs_url, timeout=30).json()
    # As Swagger UI does: the first server, resolved against the URL the document came from
    base = urljoin(docs_url, document["servers"][0]["url"]).rstrip("/")
    assert base == api.sandbox.api_url
    assert api.session.get(base + "/health", timeout=30).json() == {"status": "ok"}
    balance = api.session.get(
        base + "/programs/demo/members/m0/balance", headers={"x-api-key": seeded.member_keys["m0"]}, timeout=30
    )
    assert balance.status_code == 200 and balance.json()["available"] == 1000


def test_try_it_out_in_swagger_ui_reaches_the_sandbox(stack: tuple[HttpApi, Seeded]) -> None:
    api, seeded = stack
    with chromium("Swagger UI's Try it out test") as browser:
        from playwright.sync_api import expect

        page = browser.new_page()
        # Given Swagger UI opened from the sandbox, and the member's key entered under Authorize
        page.goto(f"{api.sandbox.api_url}/docs")
        page.get_by_role("button", name="Authorize").first.click()
        page.get_by_label("Value:").fill(seeded.member_keys["m0"])
        page.get_by_role("button", name="Apply credentials").click()
        page.locator(".auth-btn-wrapper").get_by_role("button", name="Close").click()
        # When the member tries out GET .../balance for itself
        operation = page.locator("#operations-members-balance")
        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Try it out").click()
        operation.locator('input[placeholder="program"]').fill("demo")
        operation.locator('input[placeholder="member"]').fill("m0")
        operation.get_by_role("button", name="Execute").click()
        # Then the request went to the sandbox's API, with the key, and the balance came back
        expect(operation.locator(".request-url pre")).to_have_text(
            f"{api.sandbox.api_url}/programs/demo/members/m0/balance"
        )
        live = operation.locator(".live-responses-table tbody")
        expect(live.locator("td.response-col_status")).to_have_text("200")
        expect(live.locator(".response-col_description pre").first).to_contain_text('"available": 1000')
