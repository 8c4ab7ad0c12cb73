"""`pointbridge keys`: the first admin key, minted from the command line against a running sandbox (as
`pointbridge audit` finds it) or a table named with --table in the AWS environment, works on the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from pointbridge import cli
from pointbridge.sandbox import Sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=1) as sandbox:
        yield sandbox


def _keys(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["keys", *argv])
    return code, capsys.readouterr().out


def test_the_first_admin_key_comes_from_the_command_line(
    sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a running sandbox, found as `pointbridge sandbox` announces it (.pointbridge/sandbox.json)
    monkeypatch.chdir(tmp_path)
    runtime = tmp_path / cli.RUNTIME_FILE
    runtime.parent.mkdir(parents=True)
    resources = {k: r.as_json() for k, r in sb.resources.items()}
    runtime.write_text(json.dumps({"endpoint_url": sb.endpoint_url, "api_url": sb.api_url, "resources": resources}))
    # When an admin key is created from the command line
    code, out = _keys(["create", "--role", "admin", "--id", "alice", "--json"], capsys)
    assert code == 0, out
    minted = json.loads(out)
    # Then it is an operator's key that works on the API, and only its hash is in the table
    assert minted["principal"] == {"kind": "admin", "id": "alice", "role": "operator"}
    headers = {"x-api-key": minted["key"]}
    assert requests.get(f"{sb.api_url}/admin/keys", headers=headers, timeout=30).status_code == 200
    table = sb.resource("PointsTable")
    items = sb.client("dynamodb").scan(TableName=table)["Items"]
    assert minted["key"] not in json.dumps(items)
    # And with it the operator mints the next keys over the API
    body = {"kind": "channel", "id": "till-1", "programs": ["demo"]}
    assert requests.post(f"{sb.api_url}/admin/keys", json=body, headers=headers, timeout=30).status_code == 201
    # When the key is listed and revoked from the command line, against the table by name (a deployed
    # stack's way: --table and the standard AWS environment, here pointed at the sandbox's emulator)
    runtime.unlink()
    for name, value in sb.boto_env().items():
        monkeypatch.setenv(name, value)
    code, out = _keys(["list", "--table", table, "--json"], capsys)
    listed = {k["key_id"]: k for k in json.loads(out)}
    assert code == 0 and listed[minted["key_id"]]["last_used_at"] is not None
    assert _keys(["revoke", minted["key_id"], "--reason", "rotated out", "--table", table], capsys)[0] == 0
    # Then the API refuses it, with a problem that says so
    refused = requests.get(f"{sb.api_url}/admin/keys", headers=headers, timeout=30)
    assert (refused.status_code, refused.json()["code"]) == (401, "key_revoked")
    # And nonsense is refused before anything is written
    code, _ = _keys(["create", "--role", "member"], capsys)
    assert code == 2
