"""`pointbridge` against a running sandbox, as a person at a terminal uses it (a process of its own):
`run` acts on the sandbox a command started (the demo's), `import` drops a file through the feed
path and prints its report, and what goes wrong is one line and a non-zero status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pointbridge import cli
from pointbridge.sandbox import Sandbox
from shared.access.keys import Principal, PrincipalKind, issue_key
from tests.integration.channel_fixtures import SOURCES, acme
from tests.support.channels import create_channels
from tests.support.services import sandbox_services

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path]]:
    """A sandbox announced as `pointbridge demo` announces its own (cli.main sets where), in a folder
    that stands for the repository's checkout."""
    home = tmp_path_factory.mktemp("checkout")
    announcement = home / cli.RUNTIME_FILE
    before, Sandbox.announce_to = Sandbox.announce_to, announcement
    try:
        sb = Sandbox(template=ROOT / "template.yaml", stage="clistack", pool_size=1, schedules=False).start()
    finally:
        Sandbox.announce_to = before
    try:
        services = sandbox_services(sb, config_cache_seconds=0)
        services.programs.publish(acme())
        create_channels(sb, SOURCES, issue_key(services.access_items, Principal(kind=PrincipalKind.ADMIN, id="ops")))
        yield sb, home
    finally:
        sb.stop()
    assert not announcement.exists(), "a stopped sandbox withdraws its announcement"


def pointbridge(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POINTBRIDGE_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pointbridge.cli", *argv], cwd=home, env=env, capture_output=True, text=True, timeout=300
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr.strip()


def test_run_acts_on_the_sandbox_that_is_up(stack: tuple[Sandbox, Path]) -> None:
    sb, home = stack
    # Given the sandbox announced while it is up
    assert json.loads((home / cli.RUNTIME_FILE).read_text(encoding="utf-8"))["api_url"] == sb.api_url
    runs = len([i for i in sb.invocations if i.function == "ExpiryFunction"])
    # When `pointbridge run` is asked for a job
    done = pointbridge(home, "run", "ExpiryFunction")
    # Then it ran in that sandbox (no other one started) and printed the job's reply
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert len([i for i in sb.invocations if i.function == "ExpiryFunction"]) == runs + 1


def test_run_answers_an_unknown_job_or_a_refused_time_in_one_line(stack: tuple[Sandbox, Path]) -> None:
    _, home = stack
    unknown = pointbridge(home, "run", "NoSuchFunction")
    assert unknown.returncode == 2 and "has no function NoSuchFunction" in one_line(unknown)
    ahead = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    refused = pointbridge(home, "run", "ExpiryFunction", "--now", ahead)
    assert refused.returncode == 1 and "ExpiryFunction failed: FutureRunError" in one_line(refused)
    bad = pointbridge(home, "run", "ExpiryFunction", "--now", "next tuesday")
    assert bad.returncode == 2 and "not an ISO 8601 time: 'next tuesday'" in one_line(bad)


def test_import_drops_a_partner_file_and_prints_its_report(stack: tuple[Sandbox, Path]) -> None:
    _, home = stack
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    rows = [
        "partner_member_id,external_id,occurred_at,points,reason",
        f"AIR-7,cli-1,{at},30,flight",
        f"AIR-8,cli-2,{at},-1,x",
    ]
    (home / "skyair.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    # When an operator imports a partner's file into the sandbox
    done = pointbridge(home, "import", "skyair.csv", "--partner", "skyair")
    # Then it went through the partner's folder of the files bucket, and the report says what landed
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["key"].startswith("partners/skyair/") and report["key"].endswith("-skyair.csv")
    assert (report["status"], report["accepted"]) == ("complete", 1)
    assert [(r["line"], r["code"]) for r in report["rejected"]] == [(3, "amount_out_of_range")]
    # And a file for a partner no channel names is refused as a whole: one line, status 1
    refused = pointbridge(home, "import", "skyair.csv", "--partner", "nobody")
    assert refused.returncode == 1 and "refused" in one_line(refused)
