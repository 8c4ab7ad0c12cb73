"""The foundation over the whole local stack: SQS -> ingest function -> ledger -> HTTP balance,
and concurrent redemptions over HTTP against the sandbox's serialised emulator."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from pointbridge.audit import run_audit
from pointbridge.sandbox import Sandbox
from shared.access.keys import Principal, PrincipalKind, issue_key
from shared.program.config import ProgramConfig
from tests.support.services import sandbox_services

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(template=ROOT / "template.yaml", schedules=False, pool_size=8) as sandbox:
        sandbox_services(sandbox).programs.publish(ProgramConfig(program="found", name="Foundation", currency="USD"))
        yield sandbox


@pytest.fixture(scope="module")
def api(sb: Sandbox) -> requests.Session:
    access = sandbox_services(sb).access_items
    session = requests.Session()
    # The shop's channel key: it reads its members and redeems for them on its own references.
    session.headers["x-api-key"] = issue_key(
        access, Principal(kind=PrincipalKind.CHANNEL, id="shop", programs=("found",))
    )
    return session


def points_event(member: str, points: int, external_id: str) -> dict[str, Any]:
    return {
        "event": {
            "kind": "points",
            "program": "found",
            "channel": "partner",
            "source": "grants",
            "external_id": external_id,
            "identity": {"kind": "member", "value": member},
            "occurred_at": datetime.now(UTC).isoformat(),
            "points": points,
            "reason": "welcome grant",
        }
    }


def send(sb: Sandbox, body: dict[str, Any]) -> None:
    sb.client("sqs").send_message(QueueUrl=sb.resource("IngestQueue"), MessageBody=json.dumps(body))


def balance(sb: Sandbox, api: requests.Session, member: str) -> dict[str, Any]:
    reply = api.get(f"{sb.api_url}/programs/found/members/{member}/balance", timeout=30)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def test_an_earn_through_sqs_shows_up_in_the_http_balance_once_however_often_it_is_sent(
    sb: Sandbox, api: requests.Session
) -> None:
    # Given the same earn event sent three times through the ingest queue
    event = points_event("m-sqs", 120, "grant-1")
    for _ in range(3):
        send(sb, event)

    # When the ingest function has drained the queue
    sb.wait_for_idle(timeout=60)

    # Then the balance over HTTP counts it once, and the statement holds one entry
    assert balance(sb, api, "m-sqs")["available"] == 120
    statement = api.get(f"{sb.api_url}/programs/found/members/m-sqs/statement", timeout=30).json()
    assert len(statement["entries"]) == 1


def test_fifty_concurrent_redemptions_on_a_balance_for_ten(sb: Sandbox, api: requests.Session) -> None:
    # Given a member whose balance covers exactly 10 redemptions of 10
    send(sb, points_event("m-race", 100, "grant-race"))
    sb.wait_for_idle(timeout=60)
    assert balance(sb, api, "m-race")["available"] == 100

    # When 50 threads redeem 10 points each at once, over HTTP
    def redeem(i: int) -> requests.Response:
        return api.post(
            f"{sb.api_url}/programs/found/members/m-race/redemptions",
            json={"points": 10, "reference": f"race-{i}", "reason": "flash sale"},
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(redeem, range(50)))

    # Then exactly 10 succeed, 40 get a typed "insufficient points", and the ledger checks out
    codes = [r.status_code for r in replies]
    assert codes.count(201) == 10, codes
    refused = [r for r in replies if r.status_code != 201]
    assert len(refused) == 40
    assert all(r.status_code == 422 for r in refused)
    assert all(r.headers["Content-Type"].startswith("application/problem+json") for r in refused)
    assert {r.json()["code"] for r in refused} == {"insufficient_points"}
    assert balance(sb, api, "m-race")["available"] == 0
    audit = run_audit(sb.resource("PointsTable"), sb.client("dynamodb"))
    assert audit["ok"], audit["problems"]


def test_a_malformed_message_goes_to_the_dlq_with_its_reason_and_spares_its_batch_mates(sb: Sandbox) -> None:
    # Given a poison message between two good ones
    send(sb, points_event("m-dlq", 5, "ok-1"))
    sb.client("sqs").send_message(QueueUrl=sb.resource("IngestQueue"), MessageBody="{not json")
    send(sb, points_event("m-dlq", 7, "ok-2"))

    # When the queue drains
    sb.wait_for_idle(timeout=60)

    # Then the good ones are posted and the poison one waits in the DLQ, saying why
    state = sandbox_services(sb).ledger_store.get_account("found", "m-dlq")
    assert state is not None and state.available == 12
    dead = sb.client("sqs").receive_message(
        QueueUrl=sb.resource("IngestDeadLetterQueue"), MessageAttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    assert [m["Body"] for m in dead] == ["{not json"]
    assert dead[0]["MessageAttributes"]["reason"]["StringValue"]
