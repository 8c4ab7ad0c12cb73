"""Expiry cost against table size: 10,000 and 100,000 members, 1,000 of them with a lot due today.

Seeds moto (in process, `mock_aws`) with batch_write_item: every member has a balance and a lot
due in a year; 1,000 also have a lot due today. Then one expiry run, and the figures:
`items_read_per_expired_lot` (items DynamoDB would return and bill: index items, the member's
partition read by the ledger, progress and config) and the run time. The first must not grow with
the number of members. The run time under moto does: even with the emulator's speedups an index
query passes over every item of the table, which DynamoDB does not (see docs/jobs.md).

The same 1,000 members also belong to a second program, `ext`, whose expiry is extended by
activity: half were active two months ago (their due lot is kept and moves in the index), half
over a year ago (it expires). `ext_items_read_per_due_lot` covers both kinds of work.

Writes bench/results/expiry.json (flat) and prints the same figures.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from functions.services import Services
from pointbridge.sandbox import moto_speedups
from shared.jobs.walk import JobInput
from shared.ledger.models import AccountState, Lot
from shared.ledger.store import account_item, lot_item
from shared.program.config import ExpiryPolicy, ProgramConfig
from tests.support.aws import create_table

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DUE = NOW - timedelta(hours=2)
LATER = NOW + timedelta(days=365)
EXPIRING = 1_000
SIZES = (10_000, 100_000)
RESULTS = Path(__file__).parent / "results" / "expiry.json"


def _seed(client: Any, table: str, members: int) -> float:
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        request: dict[str, Any] = {table: batch[:]}
        while request:
            reply = client.batch_write_item(RequestItems=request)
            request = reply.get("UnprocessedItems") or {}
        batch.clear()

    # Members with a lot due today are spread over the whole id range.
    step = members // EXPIRING
    for n in range(members):
        member = f"m{n:06d}"
        due = n % step == 0
        remaining = 150 if due else 50
        state = AccountState(
            program="demo", member=member, available=remaining, seq=1, updated_at=DUE - timedelta(days=300)
        )
        batch.append({"PutRequest": {"Item": account_item(state)}})
        batch.append(
            {
                "PutRequest": {
                    "Item": lot_item(
                        Lot(
                            program="demo",
                            member=member,
                            lot_id=f"far-{n}",
                            expires_at=LATER,
                            remaining=50,
                            origin=f"far-{n}",
                        )
                    )
                }
            }
        )
        if due:
            lot = Lot(
                program="demo", member=member, lot_id=f"due-{n}", expires_at=DUE, remaining=100, origin=f"due-{n}"
            )
            batch.append({"PutRequest": {"Item": lot_item(lot)}})
            batch.extend(_extended_program_items(member, n, kept=(n // step) % 2 == 0))
        if len(batch) >= 24:
            flush()
    if batch:
        flush()
    return time.perf_counter() - started


def _extended_program_items(member: str, n: int, kept: bool) -> list[dict[str, Any]]:
    """The member in `ext`: a balance whose last activity keeps its due lot alive, or not."""
    active = NOW - timedelta(days=60 if kept else 400)
    state = AccountState(program="ext", member=member, available=150, seq=1, updated_at=active, active_at=active)
    lots = [
        Lot(program="ext", member=member, lot_id=f"due-{n}", expires_at=DUE, remaining=100, origin=f"due-{n}"),
        Lot(program="ext", member=member, lot_id=f"far-{n}", expires_at=LATER, remaining=50, origin=f"far-{n}"),
    ]
    return [{"PutRequest": {"Item": account_item(state)}}, *({"PutRequest": {"Item": lot_item(lot)}} for lot in lots)]


def measure(members: int) -> dict[str, float]:
    # Table and index queries read one partition, transactions copy only their items (as in the sandbox).
    moto_speedups.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        table = create_table(client, f"bench-{members}")
        seed_seconds = _seed(client, table, members)
        stack = Services(table_name=table, client=client, clock=lambda: NOW - timedelta(days=1), sleep=lambda _: None)
        programs = stack.programs
        programs.publish(ProgramConfig(program="demo", name="Bench"))
        programs.publish(
            ProgramConfig(program="ext", name="Bench ext", expiry=ExpiryPolicy(months=12, extend_on_activity=True))
        )
        job = stack.expiry_job
        stack.table.stats.reset()
        started = time.perf_counter()
        [report] = job.run(JobInput(now=NOW, program="demo", page_budget=10_000, simulate=True))
        run_seconds = time.perf_counter() - started
        assert report.finished and report.lots_expired == EXPIRING, report
        figures = {
            "seed_seconds": round(seed_seconds, 1),
            "run_seconds": round(run_seconds, 2),
            "lots_expired": report.lots_expired,
            "items_read": stack.table.stats.items_read,
            "items_read_per_expired_lot": round(stack.table.stats.items_read / report.lots_expired, 2),
            "requests_per_expired_lot": round(sum(stack.table.stats.requests.values()) / report.lots_expired, 2),
            "index_pages": report.pages,
        }
        stack.table.stats.reset()
        [ext] = job.run(JobInput(now=NOW, program="ext", page_budget=10_000, simulate=True))
        handled = ext.lots_expired + ext.lots_extended
        assert ext.finished and handled == EXPIRING and ext.lots_extended == EXPIRING // 2, ext
        figures |= {
            "ext_lots_expired": ext.lots_expired,
            "ext_lots_extended": ext.lots_extended,
            "ext_items_read_per_due_lot": round(stack.table.stats.items_read / handled, 2),
            "ext_requests_per_due_lot": round(sum(stack.table.stats.requests.values()) / handled, 2),
        }
        return figures


def main() -> None:
    flat: dict[str, float] = {"expiring_lots": EXPIRING}
    for members in SIZES:
        figures = measure(members)
        for name, value in figures.items():
            flat[f"members_{members}_{name}"] = value
        print(f"{members:>7} members: " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(flat, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
