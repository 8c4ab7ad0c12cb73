"""Dead letters through the sandbox, with their reasons, and back (issue 12, "Poison without a reason").

The stream: a record WatchFunction cannot process is retried MaximumRetryAttempts times, then Lambda
(here the sandbox's poller, in Lambda's format) sends a record of the batch to WatchDeadLetterQueue,
the function having noted the record's error; `pointbridge dlq redrive watch` replays it, once. The
ingest queue: `pointbridge dlq` names why each message is there, and sends back what a retry may fix.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pointbridge import cli
from pointbridge.deadletters import _replay
from pointbridge.sandbox import Sandbox
from shared.earning.queue import envelope
from shared.events.model import Channel, Identity, IdentityKind, PointsEvent
from shared.infra import keys
from shared.ledger.commands import Earn
from shared.ledger.models import Account
from shared.program.config import ProgramConfig
from shared.projections.figures import SHARDS
from tests.support.services import sandbox_services

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _pytest.capture import CaptureFixture

    from functions.services import Services

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(template=TEMPLATE, stage="dlq", pool_size=1, schedules=False) as sandbox:
        yield sandbox


@pytest.fixture
def pointbridge(sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: CaptureFixture[str]) -> Any:
    """`pointbridge ...` against this sandbox, as the CLI finds a running one; returns its JSON output."""
    monkeypatch.chdir(tmp_path)
    cli.RUNTIME_FILE.parent.mkdir()
    resources = {k: r.as_json() for k, r in sb.resources.items()}
    runtime = {"api_url": sb.api_url, "endpoint_url": sb.endpoint_url, "resources": resources}
    cli.RUNTIME_FILE.write_text(json.dumps(runtime), encoding="utf-8")

    def run(*argv: str) -> Any:
        capsys.readouterr()
        assert cli.main(list(argv)) == 0
        return json.loads(capsys.readouterr().out)

    return run


def counted(services: Services, program: str) -> dict[str, int]:
    return services.figure_items.read_buckets(program, ["ALL"], SHARDS).get("ALL", {})


def test_a_stream_record_the_watch_gave_up_on_is_kept_with_its_reason_and_replayed_once(
    sb: Sandbox, pointbridge: Any
) -> None:
    services = sandbox_services(sb, sleep=lambda _: None, config_cache_seconds=0)
    services.programs.publish(ProgramConfig(program="figs", name="Figures"))
    now = datetime.now(UTC)
    earn = Earn(
        program="figs",
        member="ann",
        points=120,
        source="partner",
        external_id="p-1",
        reason="partner earn",
        event_time=now,
        counter=Account.PARTNER,
        counter_owner="acme",
    )
    entry = services.ledger.earn(earn, at=now)
    sb.wait_for_idle(timeout=60)
    # Given an entry of a program the watch cannot read yet (its config arrives late): written as the
    # ledger writes one, so the stream carries it, and every attempt of the watch fails on it
    item = services.table.get(keys.ItemKey(f"E#figs#{entry.entry_id}", "E"))
    assert item is not None
    ghost = entry.model_copy(update={"program": "ghost"})
    pk = f"E#ghost#{entry.entry_id}"
    services.table.put({**item, "PK": pk, "body": ghost.model_dump_json()})
    sb.wait_for_idle(timeout=120)
    # Then after its retries the batch's record is in WatchDeadLetterQueue, and the list names the
    # entry and the error the function noted on it
    [batch] = pointbridge("dlq", "list", "watch")
    assert batch["batch_size"] == 1 and batch["unreadable"] == ""
    [noted] = batch["entries"]
    assert noted["entry"] == pk and "UnknownProgramError: no program 'ghost'" in noted["last_error"]
    assert counted(services, "ghost") == {}
    # When the config is published and the operator redrives the queue
    services.programs.publish(ProgramConfig(program="ghost", name="Ghost"))
    redriven = pointbridge("dlq", "redrive", "watch")
    # Then the entry is projected once (figures, the partner's settlement line), the message is gone,
    # and the day whose statement needs rewriting is named
    [done] = redriven["batches"]
    assert done["replayed"] == [pk] and done["deleted"], json.dumps(done)
    assert redriven["settlement_days"] == [{"program": "ghost", "day": entry.recorded_at.date().isoformat()}]
    once = counted(services, "ghost")
    assert once["partner_earned"] == 120
    lines = services.exchange_items.settlement_lines("ghost", entry.recorded_at.date().isoformat())
    assert [(line.partner, line.points) for line in lines] == [("acme", -120)]
    assert pointbridge("dlq", "list", "watch") == []
    assert services.failure_notes.all() == []
    # And replaying it again (a redrive that stopped before deleting the message) changes nothing
    _replay(services, pk)
    assert counted(services, "ghost") == once
    assert pointbridge("dlq", "redrive", "watch") == {"batches": [], "settlement_days": []}


def test_every_ingest_dead_letter_says_why_and_the_crashed_ones_go_back(sb: Sandbox, pointbridge: Any) -> None:
    services = sandbox_services(sb, sleep=lambda _: None, config_cache_seconds=0)
    services.programs.publish(ProgramConfig(program="back", name="Back"))
    sqs = sb.client("sqs")
    dlq, queue = sb.resource("IngestDeadLetterQueue"), sb.resource("IngestQueue")
    event = PointsEvent(
        program="back",
        channel=Channel.PARTNER,
        source="partner:acme",
        external_id="t-9",
        identity=Identity(kind=IdentityKind.MEMBER, value="bo"),
        occurred_at=datetime.now(UTC),
        points=75,
    )
    # Given a good event the queue's redrive moved here bare (its worker crashed on every delivery),
    # and a poison event the ingest function dead-lettered itself
    sqs.send_message(QueueUrl=dlq, MessageBody=envelope(event))
    sqs.send_message(QueueUrl=queue, MessageBody='{"event": {"kind": "purchase"}}')
    sb.wait_for_idle(timeout=60)
    # When the operator lists the queue, each message says why it is there
    letters = {letter["code"]: letter for letter in pointbridge("dlq", "list", "ingest")}
    assert set(letters) == {"none", "malformed_event"}
    assert "crash" in letters["none"]["reason"] and "timeout" in letters["none"]["reason"]
    assert "not a normalised event" in letters["malformed_event"]["reason"]
    # When they redrive it, the crashed one goes back and lands, once; the poison stays with its reason
    moved = pointbridge("dlq", "redrive", "ingest")
    assert len(moved["moved"]) == 1 and [k["code"] for k in moved["kept"]] == ["malformed_event"]
    sb.wait_for_idle(timeout=60)
    account = services.ledger_store.get_account("back", "bo")
    assert account is not None and account.available == 75
    assert [x["code"] for x in pointbridge("dlq", "list", "ingest")] == ["malformed_event"]
