"""A big partner file through the sandbox: S3 -> FileSplitterFunction -> SQS -> IngestFunction -> the ledger.

The file (BENCH_FILE_ROWS rows, default 100,000; points credits for BENCH_FILE_ROWS / 5 partner
members, five each, dated over the last day) is dropped in the files bucket; the clock runs until
the sandbox is idle again (every row posted, every stream record handed to WatchFunction).

Figures:
- rows: the file's data rows.
- seconds: from the drop to idle (to the deadline when it did not land in time);
  file_100k_rows_seconds, the same, only when a 100,000-row file landed in time.
- split_seconds: from the drop until the splitter's report says `complete` (every chunk queued).
- exactly_once: 1 when the report accepted every row, every row's entry is in the ledger (looked
  up by its key, the entry id "<source>:<external id>"), every member's balance (available +
  pending) is the sum of their rows' points (a row posted twice would show there), and the ingest
  dead-letter queue is empty; else 0.
- rows_landed: rows whose entry is in the ledger; rows_queued: rows the splitter's report accepted.
- splitter_invocations: invocations of the splitter the file took (1 unless a run stopped);
  file_dropped_again: how many times the bench dropped the same bytes again after Lambda's two
  retries of the event were spent with the run still incomplete (an operator's move: the same
  ETag resumes the run from its checkpoints).
- events_per_s: rows_landed / seconds.

BENCH_FILE_DEADLINE_S (default 3600) bounds the wait: a run that does not land in time writes what
it measured, with exactly_once 0 and `complete` 0.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from bench.common import FUNCTION_LOGS, ROOT, write_results
from functions.services import Services
from pointbridge.sandbox import Sandbox
from shared.access.keys import Principal, PrincipalKind, issue_key
from shared.events.model import Identity, IdentityKind
from shared.infra import keys
from shared.program.config import ProgramConfig

if TYPE_CHECKING:
    from shared.infra.table import Table

ROWS = int(os.environ.get("BENCH_FILE_ROWS", "100000"))
DEADLINE_S = float(os.environ.get("BENCH_FILE_DEADLINE_S", "3600"))
ROWS_PER_MEMBER = 5
PROGRAM = "bench"
PARTNER = "skyair"
KEY = f"partners/{PARTNER}/bench-{ROWS}.csv"
SPLITTER = "FileSplitterFunction"
PARTNER_CHANNEL = {
    "kind": "partner",
    "id": PARTNER,
    "program": PROGRAM,
    "settings": {"currency": {"program_currency": "EUR"}},
}


def partner_file(rows: int, now: datetime) -> tuple[bytes, dict[str, int]]:
    """The feed, and the points each partner member should end with."""
    expected: dict[str, int] = defaultdict(int)
    lines = ["partner_member_id,external_id,occurred_at,points,reason"]
    members = max(1, rows // ROWS_PER_MEMBER)
    for i in range(rows):
        member = f"SKY-{i % members:06d}"
        points = 1 + i % 97
        at = (now - timedelta(seconds=60 + (i * 7919) % 86_000)).isoformat()
        lines.append(f"{member},bf-{i:07d},{at},{points},flight")
        expected[member] += points
    return ("\n".join(lines) + "\n").encode(), dict(expected)


def report(sb: Sandbox) -> dict[str, Any] | None:
    try:
        body = sb.client("s3").get_object(Bucket=sb.resource("FilesBucket"), Key=f"reports/{KEY}.json")["Body"].read()
    except sb.client("s3").exceptions.NoSuchKey:
        return None
    return dict(json.loads(body))


def rows_landed(table: Table, rows: int, source: str) -> int:
    found = 0
    ids = [f"bf-{i:07d}" for i in range(rows)]
    for first in range(0, rows, 1000):
        wanted = [keys.entry(PROGRAM, f"{source}:{external}") for external in ids[first : first + 1000]]
        found += len(table.batch_get(wanted, consistent=False))
    return found


def balances_match(table: Table, expected: dict[str, int]) -> bool:
    links = {
        member: keys.identity(Identity(kind=IdentityKind.PARTNER, value=member, scope=PARTNER).key)
        for member in expected
    }
    found = table.batch_get(list(links.values()), consistent=False)
    holders = {member: str(found[link]["member"]) for member, link in links.items() if link in found}
    if len(holders) != len(expected):
        return False
    balances = table.batch_get([keys.balance(PROGRAM, m) for m in holders.values()], consistent=False)
    for member, holder in holders.items():
        item = balances.get(keys.balance(PROGRAM, holder)) or {}
        if int(item.get("available", 0)) + int(item.get("pending", 0)) != expected[member]:
            return False
    return True


def main() -> None:
    now = datetime.now(UTC)
    body, expected = partner_file(ROWS, now)
    with Sandbox(
        template=ROOT / "template.yaml",
        stage="benchfiles",
        schedules=False,
        log_dir=FUNCTION_LOGS / "files",
    ) as sb:
        services = Services(table_name=sb.resource("PointsTable"), client=sb.client("dynamodb"))
        services.programs.publish(ProgramConfig(program=PROGRAM, name="Bench", currency="EUR"))
        # The partner as a channel record, made as an operator makes it (the splitter refuses a file
        # from a partner it has no record of).
        admin_key = issue_key(services.access_items, Principal(kind=PrincipalKind.ADMIN, id="bench-operator"))
        created = requests.post(
            f"{sb.api_url}/admin/channels", json=PARTNER_CHANNEL, headers={"x-api-key": admin_key}, timeout=60
        )
        if created.status_code != 201:
            raise RuntimeError(f"the partner channel was refused: {created.text}")
        print(f"  dropping {ROWS:,} rows ({len(body) / 1e6:.1f} MB) in the files bucket", flush=True)
        started = time.perf_counter()
        sb.client("s3").put_object(Bucket=sb.resource("FilesBucket"), Key=KEY, Body=body)
        split_seconds = 0.0
        landed_in_time = False
        deadline = started + DEADLINE_S
        redrops = 0
        while time.perf_counter() < deadline:
            current = report(sb) if not split_seconds else None
            if current is not None and current.get("status") not in ("running", "complete", "incomplete", None):
                print(f"  the splitter answered {current.get('status')}: {current.get('reason')}", flush=True)
                break
            if current is not None and current.get("status") == "complete":
                split_seconds = time.perf_counter() - started
                print(f"  split in {split_seconds:,.1f} s", flush=True)
            stopped = [i for i in sb.invocations if i.function == SPLITTER and i.outcome == "error"]
            if current is not None and current.get("status") == "incomplete" and len(stopped) >= 3 * (redrops + 1):
                # Lambda retried the event twice and gave up: the operator drops the same bytes again,
                # which resumes the run (same ETag) from its checkpoints.
                redrops += 1
                print(f"  {current.get('reason')}; the same file dropped again", flush=True)
                sb.client("s3").put_object(Bucket=sb.resource("FilesBucket"), Key=KEY, Body=body)
            try:
                sb.wait_for_idle(timeout=min(5.0, max(1.0, deadline - time.perf_counter())))
            except TimeoutError:
                continue
            if split_seconds:
                landed_in_time = True
                break
        seconds = time.perf_counter() - started
        final = report(sb) or {}
        if final.get("status") == "complete" and not split_seconds:
            split_seconds = seconds
        source = f"partner:{PARTNER}"
        entries = rows_landed(services.table, ROWS, source)
        dlq = sb.client("sqs").get_queue_attributes(
            QueueUrl=sb.resource("IngestDeadLetterQueue"), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        exactly_once = (
            landed_in_time
            and final.get("accepted") == ROWS
            and entries == ROWS
            and dlq == "0"
            and balances_match(services.table, expected)
        )
        splits = [i for i in sb.invocations if i.function == SPLITTER]
        figures: dict[str, float | int] = {
            "rows": ROWS,
            "seconds": round(seconds, 1),
            "split_seconds": round(split_seconds, 1),
            "exactly_once": int(exactly_once),
            "complete": int(landed_in_time),
            "rows_landed": entries,
            "rows_queued": int(final.get("accepted", 0)),
            "splitter_invocations": len(splits),
            "file_dropped_again": redrops,
            "events_per_s": round(entries / seconds, 2),
        }
        if ROWS == 100_000 and landed_in_time:
            figures["file_100k_rows_seconds"] = round(seconds, 1)
        write_results("files", figures)
