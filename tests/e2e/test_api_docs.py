"""The documentation site as the sandbox serves it: the committed document, and its server reaches the API.

`/docs`, its assets and `/openapi.json` are API Gateway S3 integrations on the docs bucket, which
the DocsSite custom resource (functions.docs) wrote when the stack was created: no function runs
for them. Swagger UI's Try it out resolves the document's server against the document's URL; one
test does the same over HTTP, another clicks Try it out in Debian's chromium (skipped without it,
unless POINTBRIDGE_REQUIRE_BROWSER is set).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import pytest

from pointbridge.sandbox import Sandbox
from pointbridge.sandbox.template import TemplateError
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
    served = api.call("GET", "/openapi.json")
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    assert served.text == COMMITTED.read_text(encoding="utf-8")
    page = api.call("GET", "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in page.text and 'url: "openapi.json"' in page.text
    assert page.headers["cache-control"] == "public, max-age=300"


def test_the_page_and_its_assets_come_from_the_bucket_without_a_function(stack: tuple[HttpApi, Seeded]) -> None:
    api, _ = stack
    api.sandbox.invocations.clear()
    script = api.call("GET", "/docs/swagger-ui-bundle.min.js")
    style = api.call("GET", "/docs/swagger-ui.min.css")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in script.text and script.headers["cache-control"] == "public, max-age=86400"
    assert style.status_code == 200 and style.headers["content-type"] == "text/css"
    assert api.call("GET", "/docs/no-such-asset.js").status_code == 404
    assert api.call("GET", "/openapi.json").status_code == 200
    assert api.sandbox.invocations == []
    # The objects are DocsSite's, written at the stack's creation by its handler
    bucket = api.sandbox.resource("DocsBucket")
    keys = {o["Key"] for o in api.sandbox.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"docs/index.html", "docs/openapi.json", "docs/swagger-ui-bundle.min.js", "docs/swagger-ui.min.css"}


def test_an_operation_answers_at_the_server_the_document_advertises(stack: tuple[HttpApi, Seeded]) -> None:
    api, seeded = stack
    docs_url = f"{api.sandbox.api_url}/openapi.json"
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


def test_a_custom_resource_answering_failed_fails_the_start_with_its_reason(tmp_path: Path) -> None:
    # Given DocsSite pointed at a bucket its function may not write (its policy names DocsBucket only)
    text = TEMPLATE.read_text(encoding="utf-8")
    root = TEMPLATE.parent
    text = text.replace("    CodeUri: .\n", f"    CodeUri: {root}\n").replace(
        "      ContentUri: layers/dependencies/\n", f"      ContentUri: {root / 'layers' / 'dependencies'}\n"
    )
    assert "      Bucket: !Ref DocsBucket\n" in text
    text = text.replace("      Bucket: !Ref DocsBucket\n", "      Bucket: !Ref StatementsBucket\n")
    template = tmp_path / "template.yaml"
    template.write_text(text, encoding="utf-8")
    # When the sandbox starts, Then the custom resource's FAILED answer stops it, as a rollback would
    with pytest.raises(TemplateError, match=r"DocsSite: DocsPublisherFunction answered FAILED: .*AccessDenied"):
        Sandbox(template=template, schedules=False, pool_size=1).start()
