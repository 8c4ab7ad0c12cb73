"""Partner files through the sandbox (issue 12, "Big files"): S3 -> FileSplitterFunction -> SQS ->
IngestFunction -> the ledger, a chunk at a time, with the function's IAM policy enforced.

The splitter here is told to stop after each wave of chunks (its time margin is longer than its
timeout), as a run that meets its timeout does: each invocation raises, the sandbox delivers the
S3 event again (as Lambda retries an asynchronous invocation), and the next one resumes from the
checkpoints. The file lands once, in three invocations, no chunk queued twice.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pointbridge.sandbox import Sandbox
from shared.access.keys import Principal, PrincipalKind, issue_key
from shared.files.splitter import file_id
from shared.ledger.audit import audit
from tests.integration.channel_fixtures import SOURCES, acme
from tests.support.channels import create_channels
from tests.support.services import sandbox_services

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SPLITTER = "FileSplitterFunction"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(template=ROOT / "template.yaml", stage="files", schedules=False, pool_size=2) as sandbox:
        # Chunks of 50 lines, 2 at a time, and a margin no invocation ever has: one wave each
        sandbox.functions[SPLITTER].environment.update(
            {"FILES_CHUNK_LINES": "50", "FILES_PARALLEL_CHUNKS": "2", "FILES_TIME_MARGIN_S": "100000"}
        )
        services = sandbox_services(sandbox, config_cache_seconds=0)
        services.programs.publish(acme())
        # The channels as an operator makes them (records, checked when written)
        create_channels(
            sandbox, SOURCES, issue_key(services.access_items, Principal(kind=PrincipalKind.ADMIN, id="ops"))
        )
        yield sandbox


def report(sb: Sandbox, key: str) -> dict[str, Any]:
    body = sb.client("s3").get_object(Bucket=sb.resource("FilesBucket"), Key=f"reports/{key}.json")["Body"].read()
    return dict(json.loads(body))


def test_a_partner_file_stopped_twice_lands_every_row_once(sb: Sandbox) -> None:
    # Given a 280-row partner feed (6 chunks), with one row refused among them
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    rows = [f"AIR-{i % 7},ft-{i},{at},{-3 if i == 100 else 2},flight" for i in range(280)]
    body = ("partner_member_id,external_id,occurred_at,points,reason\n" + "\n".join(rows) + "\n").encode()
    key = "partners/skyair/feed-e2e.csv"
    s3 = sb.client("s3")
    s3.put_object(Bucket=sb.resource("FilesBucket"), Key=key, Body=body)
    # When the sandbox has handled everything
    sb.wait_for_idle(timeout=180)
    # Then three invocations of the splitter: two stopped after their wave, the third finished
    splits = [i for i in sb.invocations if i.function == SPLITTER]
    assert [i.outcome for i in splits] == ["error", "error", "ok"], splits
    done = report(sb, key)
    assert done["status"] == "complete" and done["invocations"] == 3
    assert done["accepted"] == 279 and done["chunks"] == done["chunks_done"] == 6
    assert [(r["line"], r["code"]) for r in done["rejected"]] == [(102, "amount_out_of_range")]
    # And no chunk was queued twice
    etag = s3.head_object(Bucket=sb.resource("FilesBucket"), Key=key)["ETag"].strip('"')
    runs = sandbox_services(sb).file_runs
    checkpoints = runs.checkpoints(file_id(sb.resource("FilesBucket"), key, etag))
    assert sorted((c.status, c.attempts) for c in checkpoints.values()) == [("done", 1)] * 6
    # And each good row is in the ledger exactly once, the audit clean
    store = sandbox_services(sb).ledger_store
    entries, accounts, lots, holds, pending = store.audit_records()
    landed = Counter(
        e.external_id for e in entries if e.external_id.startswith("ft-") and e.entry_id.endswith(e.external_id)
    )
    assert len(landed) == 279 and set(landed.values()) == {1}
    assert "ft-100" not in landed
    assert audit(entries, accounts, lots, holds, pending).ok


def test_a_file_that_is_not_utf8_gets_a_report_saying_so(sb: Sandbox) -> None:
    key = "partners/skyair/feed-utf16.csv"
    body = "partner_member_id,external_id,occurred_at,points\r\nAIR-1,u-1,2026-12-01T00:00:00Z,5\r\n".encode("utf-16")
    sb.client("s3").put_object(Bucket=sb.resource("FilesBucket"), Key=key, Body=body)
    sb.wait_for_idle(timeout=60)
    refused = report(sb, key)
    assert refused["status"] == "refused" and refused["accepted"] == 0
    assert refused["rejected"] == [
        {
            "line": 1,
            "code": "malformed_payload",
            "reason": "file is UTF-16, not UTF-8 (it starts with a UTF-16 byte order mark)",
        }
    ]
