"""Channel records in the sandbox, managed with `pointbridge channels` through the admin API: a shop and
a seller connected, bad records refused with the field named while the good ones keep working, a
secret rotated and a channel disabled without a cold start, and everything kept across a restart."""

from __future__ import annotations

import io
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from pointbridge.cli import main
from pointbridge.sandbox import Sandbox
from shared.access.keys import Principal, PrincipalKind, issue_key
from shared.program.config import ProgramConfig
from tests.integration.channel_fixtures import shopify_headers
from tests.support.channels import identity_key
from tests.support.services import sandbox_services
from tests.unit.adapter_helpers import raw, sign

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SHOP = "acme.myshopify.com"
SECRET = "shpss_test_secret"
ROTATED = "shpss_rotated_secret_0001"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


def sandbox(state: Path) -> Sandbox:
    # Functions re-read a channel after 1 s here (30 s deployed): a change is seen within a test.
    return Sandbox(
        template=ROOT / "template.yaml",
        state_dir=state,
        pool_size=1,
        parameters={"ChannelCacheSeconds": 1},
    )


@pytest.fixture(scope="module")
def sb(state: Path) -> Iterator[Sandbox]:
    with sandbox(state) as running:
        sandbox_services(running).programs.publish(ProgramConfig(program="acme", name="Acme", currency="EUR"))
        yield running


@pytest.fixture
def cli(sb: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    admin = issue_key(sandbox_services(sb).access_items, Principal(kind=PrincipalKind.ADMIN, id="ops"))
    monkeypatch.setenv("POINTBRIDGE_API_URL", sb.api_url)
    monkeypatch.setenv("POINTBRIDGE_API_KEY", admin)

    def run(*args: str, code: int = 0) -> Any:
        assert main(["channels", *args]) == code
        return json.loads(capsys.readouterr().out)

    return run


def order(sb: Sandbox, secret: str) -> requests.Response:
    body = raw("shopify_orders_paid.json")
    headers = shopify_headers(body, "orders/paid", datetime.now(UTC)) | {"X-Shopify-Hmac-Sha256": sign(secret, body)}
    return requests.post(f"{sb.api_url}/webhooks/shopify/{SHOP}", data=body, headers=headers, timeout=30)


def eventually(check: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time the functions' cache allows"
        time.sleep(0.2)


def test_a_shop_and_a_seller_are_connected_and_bad_records_are_refused_with_the_field_named(
    sb: Sandbox, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a shop connected with its secret (from the environment, never the command line)
    monkeypatch.setenv("SHOP_SECRET", SECRET)
    created = cli("create", "shopify", SHOP, "--program", "acme", "--secret-env", "SHOP_SECRET")
    assert created["secret"] == {"version": 1, "parameter": f"/pointbridge/local/channels/shopify/{SHOP}"}
    assert created["receives"] == f"/webhooks/shopify/{SHOP}" and SECRET not in json.dumps(created)
    eventually(lambda: order(sb, SECRET).status_code == 200)
    # And a Square seller, at this stack's URL for it
    square_url = f"{sb.api_url}/webhooks/square/ML7Q2"
    monkeypatch.setenv("SQUARE_KEY", "q1w2e3r4t5y6u7i8o9p0aa")
    settings = json.dumps({"notification_url": square_url})
    seller = cli("create", "square", "ML7Q2", "--program", "acme", "--settings", settings, "--secret-env", "SQUARE_KEY")
    assert seller["status"] == "active" and seller["settings"]["currency"] == {"program_currency": "EUR"}
    # When bad records are written: a missing secret, an unknown program, a duplicate shop domain, a
    # malformed signature key, a notification URL Square would not sign
    monkeypatch.setenv("BAD_KEY", "not a signature key")
    refusals = [
        cli("create", "shopify", "beta.myshopify.com", "--program", "acme", code=1),
        cli("create", "till", "store-1", "--program", "nope", code=1),
        cli("create", "shopify", "ACME.myshopify.com", "--program", "acme", "--secret-env", "SHOP_SECRET", code=1),
        cli("create", "square", "ML9", "--program", "acme", "--settings", settings, "--secret-env", "BAD_KEY", code=1),
        cli(
            "create", "square", "ML9", "--program", "acme", "--settings", settings, "--secret-env", "SQUARE_KEY", code=1
        ),
    ]
    # Then each is refused with the field named
    assert [(r["status"], r["refused"]["code"], r["refused"]["field"]) for r in refusals] == [
        (422, "invalid_channel", "secret"),
        (422, "invalid_channel", "program"),
        (409, "channel_exists", "id"),
        (422, "invalid_channel", "secret"),
        (422, "invalid_channel", "settings.notification_url"),
    ]
    # And nothing else stopped: the shop still takes orders, and only the two good channels exist
    assert order(sb, SECRET).status_code == 200
    assert [(c["kind"], c["id"]) for c in cli("list")["channels"]] == [("shopify", SHOP), ("square", "ML7Q2")]


def test_a_rotated_secret_and_a_disabled_channel_reach_the_warm_functions(sb: Sandbox, cli: Callable[..., Any]) -> None:
    # Given the shop takes orders signed with its secret (the webhook function is warm)
    assert order(sb, SECRET).status_code == 200
    # When the secret is rotated (read from standard input)
    stdin, sys.stdin = sys.stdin, io.StringIO(ROTATED + "\n")
    try:
        rotated = cli("change", "shopify", SHOP, "--secret-stdin")
    finally:
        sys.stdin = stdin
    assert (rotated["version"], rotated["secret"]["version"]) == (2, 2)
    # Then the warm function refuses the old secret and takes the new one, within its cache time
    eventually(lambda: order(sb, SECRET).status_code == 401 and order(sb, ROTATED).status_code == 200)
    # When the channel is disabled, its webhooks are refused; enabled, taken again
    assert cli("disable", "shopify", SHOP)["status"] == "disabled"
    eventually(lambda: order(sb, ROTATED).json().get("code") == "channel_disabled")
    assert cli("enable", "shopify", SHOP)["status"] == "active"
    eventually(lambda: order(sb, ROTATED).status_code == 200)


def test_channels_secrets_and_the_identity_key_survive_a_restart(sb: Sandbox, state: Path) -> None:
    # Given the stack's records, secrets and identity key before the restart
    key_before = identity_key(sb)
    assert order(sb, ROTATED).status_code == 200
    # When the sandbox stops (saving its state) and starts again
    sb.stop()
    with sandbox(state) as again:
        # Then the shop is there, its secret in force is the rotated one, and the identity key the same
        assert order(again, ROTATED).status_code == 200
        assert order(again, SECRET).status_code == 401
        assert identity_key(again) == key_before
        versions = again.client("ssm").get_parameter_history(Name=f"/pointbridge/local/channels/shopify/{SHOP}")
        assert [v["Version"] for v in versions["Parameters"]] == [1, 2]
    sb.start()  # the module's fixture stops it again
