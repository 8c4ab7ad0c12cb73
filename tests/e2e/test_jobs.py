"""The scheduled jobs through the local sandbox: expiry at a chosen time, the watch on the stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pointbridge import cli
from pointbridge.sandbox import InvocationError, Sandbox
from shared.ledger.audit import audit
from shared.ledger.commands import Earn
from shared.ledger.models import Account
from shared.program.config import ProgramConfig
from tests.support.jobs import PUBLISHED, Clock
from tests.support.services import sandbox_services

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _pytest.capture import CaptureFixture

pytestmark = pytest.mark.e2e

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
EARNED = datetime(2026, 1, 10, tzinfo=UTC)
DUE = datetime(2026, 1, 20, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(template=TEMPLATE, stage="e2e", pool_size=1, schedules=False) as sandbox:
        yield sandbox


def test_expiry_runs_through_the_sandbox_at_a_chosen_time(sb: Sandbox) -> None:
    # Given a program and two members' lots in the sandbox's table (one from a partner)
    services = sandbox_services(sb, clock=Clock(PUBLISHED), sleep=lambda _: None, config_cache_seconds=0)
    store = services.ledger_store
    services.programs.publish(ProgramConfig(program="demo", name="Demo"))
    ledger = services.ledger
    for member, points, counter, owner in (("ann", 100, Account.ISSUANCE, ""), ("bob", 40, Account.PARTNER, "acme")):
        cmd = Earn(
            program="demo",
            member=member,
            points=points,
            source="shop",
            external_id=f"o-{member}",
            reason="order",
            event_time=EARNED,
            expires_at=DUE,
            counter=counter,
            counter_owner=owner,
        )
        ledger.earn(cmd, at=EARNED)
    # When the ExpiryFunction's schedule fires an hour after the lots are due, and again
    first = sb.run_function("ExpiryFunction", now=DUE + timedelta(hours=1))
    again = sb.run_function("ExpiryFunction", now=DUE + timedelta(hours=1))
    # Then both lots expired once, and the ledger's audit holds
    assert first["reports"][0]["points_expired"] == 140
    assert again["reports"][0]["lots_expired"] == 0
    report = audit(*store.ledger_records())
    assert report.ok and report.totals["demo"]["breakage"] == 140
    # And the watch function on the stream recorded the partner's settlement line
    sb.wait_for_idle(timeout=30)
    lines = services.exchange_items.settlement_lines("demo", EARNED.date().isoformat())
    assert [(line.partner, line.points) for line in lines] == [("acme", -40)]


def test_an_operator_cannot_expire_points_months_early_by_mistake(
    sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: CaptureFixture[str]
) -> None:
    # Given points that expire in a month, in a program of their own, and the sandbox running
    services = sandbox_services(sb, sleep=lambda _: None, config_cache_seconds=0)
    services.programs.publish(ProgramConfig(program="clock", name="Clock"))
    now = datetime.now(UTC)
    earn = Earn(
        program="clock",
        member="cy",
        points=2820,
        source="shop",
        external_id="o-cy",
        reason="order",
        event_time=now,
        expires_at=now + timedelta(days=30),
    )
    services.ledger.earn(earn, at=now)
    monkeypatch.chdir(tmp_path)
    cli.RUNTIME_FILE.parent.mkdir()
    cli.RUNTIME_FILE.write_text(json.dumps({"api_url": sb.api_url}), encoding="utf-8")
    ahead = (now + timedelta(days=90)).isoformat()
    # When the operator runs expiry three months ahead, through the CLI, without --simulate
    code = cli.main(["run", "ExpiryFunction", "--now", ahead])
    refused = capsys.readouterr().err
    # Then it is refused as a run in the future, in one line, and nothing expired
    assert code == 1 and refused.startswith("pointbridge run: ExpiryFunction failed: FutureRunError")
    assert len(refused.strip().splitlines()) == 1
    assert services.ledger.account("clock", "cy").available == 2820
    # And runs at the real time still work (nothing was moved ahead), directly and through the CLI
    assert sb.run_function("ExpiryFunction")["reports"]
    assert cli.main(["run", "ExpiryFunction"]) == 0
    capsys.readouterr()
    with pytest.raises(InvocationError) as direct:
        sb.run_function("ExpiryFunction", now=now + timedelta(days=90))
    assert direct.value.error_type == "FutureRunError"
    # When they say it is a simulation, the run happens, with its real effect
    assert cli.main(["run", "ExpiryFunction", "--now", ahead, "--simulate"]) == 0
    simulated = json.loads(capsys.readouterr().out)["reply"]["reports"]
    assert {r["program"]: r["points_expired"] for r in simulated}["clock"] == 2820
    assert services.ledger.account("clock", "cy").available == 0
