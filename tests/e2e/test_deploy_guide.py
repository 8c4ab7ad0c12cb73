"""docs/deploy.md, step by step, against the sandbox: the first admin key (the guide's own command,
run as written), the first program and catalogue, a Shopify shop, a Square seller, a till and a
partner connected, the partner's file delivered through an upload URL and its report read, the
first statement, and the documentation the stack serves."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from pointbridge.cli import main
from pointbridge.sandbox import Sandbox
from tests.integration.channel_fixtures import shopify_headers
from tests.unit.adapter_helpers import raw, sign

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "deploy.md"
SHOP, SHOP_SECRET = "acme.myshopify.com", "shpss_guide_secret_01"
SELLER, SQUARE_KEY = "ML7Q2", "q1w2e3r4t5y6u7i8o9p0aa"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(template=ROOT / "template.yaml", schedules=False, pool_size=1) as running:
        yield running


def guide_command(starting: str) -> str:
    """The guide's command line that starts so, as written."""
    (line,) = [s.strip() for s in GUIDE.read_text().splitlines() if s.strip().startswith(starting)]
    return line


def call(sb: Sandbox, method: str, path: str, key: str, body: Any = None) -> requests.Response:
    return requests.request(method, sb.api_url + path, json=body, headers={"x-api-key": key}, timeout=60)


def channels(*args: str) -> Any:
    return main(["channels", *args])


def test_the_deploy_guide_in_the_sandbox(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1. The stack's public pages: the documentation, served from its bucket
    assert requests.get(sb.api_url + "/docs", timeout=30).status_code == 200
    assert requests.get(sb.api_url + "/openapi.json", timeout=30).json()["info"]["title"] == "Pointbridge API"

    # 3. The first admin key, minted by the guide's command into the stack's table
    command = guide_command("TABLE_NAME=<TableName>").replace("<TableName>", sb.resource("PointsTable"))
    env = {**os.environ, **sb.boto_env()}
    minted = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    admin = minted.stdout.strip()
    assert admin.startswith("pb_")
    assert call(sb, "GET", "/admin/channels", admin).status_code == 200

    # 4. The first program and catalogue
    # (in euros here: the shop's recorded order, tests/events/shopify_orders_paid.json, is in euros)
    program = json.loads((ROOT / "seeds" / "demo-program.json").read_text()) | {"currency": "EUR"}
    assert call(sb, "PUT", "/admin/programs/demo", admin, program).status_code == 201
    catalogue = {
        "program": "demo",
        "version": 1,
        "rewards": [{"id": "mug", "name": "A mug", "kind": "physical", "points": 500}],
    }
    assert call(sb, "PUT", "/admin/programs/demo/catalogue", admin, catalogue).status_code == 201

    # 5. A shop, a seller, a till and a partner, through `pointbridge channels`
    monkeypatch.setenv("POINTBRIDGE_API_URL", sb.api_url)
    monkeypatch.setenv("POINTBRIDGE_API_KEY", admin)
    monkeypatch.setenv("SHOP_SECRET", SHOP_SECRET)
    monkeypatch.setenv("SQUARE_KEY", SQUARE_KEY)
    square_url = json.dumps({"notification_url": f"{sb.api_url}/webhooks/square/{SELLER}"})
    assert channels("create", "shopify", SHOP, "--program", "demo", "--secret-env", "SHOP_SECRET") == 0
    assert (
        channels(
            "create", "square", SELLER, "--program", "demo", "--settings", square_url, "--secret-env", "SQUARE_KEY"
        )
        == 0
    )
    assert channels("create", "till", "store-1", "--program", "demo") == 0
    assert channels("create", "partner", "skyair", "--program", "demo") == 0
    capsys.readouterr()
    # And the shop's webhook, signed with its secret, is taken at the shop's URL
    body = raw("shopify_orders_paid.json")
    headers = shopify_headers(body, "orders/paid", datetime.now(UTC)) | {
        "X-Shopify-Hmac-Sha256": sign(SHOP_SECRET, body)
    }
    assert (
        requests.post(f"{sb.api_url}/webhooks/shopify/{SHOP}", data=body, headers=headers, timeout=30).status_code
        == 200
    )
    partner = call(sb, "POST", "/admin/keys", admin, {"kind": "partner", "id": "skyair", "programs": ["demo"]})
    assert partner.status_code == 201
    partner_key = partner.json()["key"]

    # 6. A member linked to the partner's id; the partner's file through an upload URL; its report
    link = {"kind": "partner", "value": "P-77", "scope": "skyair"}
    assert call(sb, "POST", "/programs/demo/members/m-100/identities", partner_key, link).status_code == 201
    asked = call(sb, "POST", "/partners/skyair/programs/demo/files", partner_key, {"name": "2026-12-07.csv"})
    assert asked.status_code == 201, asked.text
    upload = asked.json()["upload"]
    now = datetime.now(UTC).isoformat()
    rows = f"partner_member_id,external_id,occurred_at,points\nP-77,t-1,{now},250\nP-77,t-2,{now},-5\n"
    sent = requests.request(upload["method"], upload["url"], data=rows.encode(), headers=upload["headers"], timeout=30)
    assert sent.status_code == 200, sent.text
    report_path = f"/partners/skyair/programs/demo/files/{asked.json()['file_id']}"
    deadline = time.monotonic() + 60
    while (report := call(sb, "GET", report_path, partner_key).json())["file"]["status"] != "processed":
        assert time.monotonic() < deadline, report
        time.sleep(0.3)
    assert (report["file"]["accepted"], report["file"]["rejected"]) == (1, 1)
    assert [line["line"] for line in report["rejected_lines"]] == [3]

    # 7. The first statement: the partner's points, once ingest posted them
    sb.wait_for_idle()
    entries = call(sb, "GET", "/programs/demo/members/m-100/statement", admin).json()["entries"]
    assert [(e["points"], e["source"]) for e in entries] == [(250, "partner:skyair")]
