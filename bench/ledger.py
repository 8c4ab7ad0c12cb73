"""What an earn and a redemption cost: DynamoDB requests, write units, and our code's overhead.

Figures:
- earn/redeem requests per operation, counted by the store.
- earn/redeem WCU per operation, COMPUTED from item sizes the way DynamoDB bills (the emulator
  reports a constant capacity, so its numbers say nothing): a transactional write costs 2 WCU per
  started KB of each item; each GSI an item is written to costs 1 WCU per started KB more
  (reported separately as *_gsi_wcu_per_op).
- store_earn_per_s: earns through the ledger and store against the emulator.
- raw_earn_requests_per_s: the very requests an earn makes, captured from the store and issued
  bare by boto3 against a twin table in the same emulator and run; earn_vs_raw is their ratio:
  the share of the bare speed an earn through our code keeps. own_code_ms_per_earn is the part of
  an earn spent outside requests (timed around each HTTP send); emulator_ms_per_earn the rest.

Fairness: the emulator copies a table for each item of a transaction, so a request's cost grows
with the table it lands on. The twin table is seeded with the same members by the same ledger and
clock, so each captured request meets the same state (same balance sequence numbers) on an
equally big table.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from datetime import UTC, datetime
from typing import Any

import boto3

from bench.common import write_results
from functions.services import Services
from pointbridge.sandbox.emulator import Emulator
from pointbridge.tables import create_table
from shared.ledger.commands import Earn, Spend
from shared.program.config import ProgramConfig

MEMBERS = int(os.environ.get("BENCH_LEDGER_MEMBERS", "300"))
TABLE = "bench-points"
TWIN = "bench-twin"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
GSI_KEYS = {"GSI1PK", "GSI2PK"}


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one typed attribute value."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = len(inner.lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    raise ValueError(f"unsized attribute type {kind}")


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def transaction_wcu(request: dict[str, Any]) -> tuple[int, int]:
    """(table WCU, GSI WCU) of one TransactWriteItems request, by DynamoDB's billing rules."""
    table = gsi = 0
    for action in request["TransactItems"]:
        ((kind, body),) = action.items()
        item = body.get("Item") or body.get("Key", {})
        kb = max(1, math.ceil(item_size(item) / 1024))
        table += 2 * kb
        gsi += kb * len(GSI_KEYS & item.keys())
    return table, gsi


class Recorder:
    """Captures the parameters of every request a boto3 client sends, by operation."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.request_seconds = 0.0
        self._sent_at = 0.0
        client.meta.events.register("provide-client-params.dynamodb.*", self._capture)
        client.meta.events.register("before-send.dynamodb.*", self._before_send)
        client.meta.events.register("needs-retry.dynamodb.*", self._after_send)

    def _capture(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params)))

    def _before_send(self, **_: Any) -> None:
        self._sent_at = time.perf_counter()

    def _after_send(self, **_: Any) -> None:
        # Time on the wire and in the emulator; the rest of an operation is our own code.
        self.request_seconds += time.perf_counter() - self._sent_at


OPERATIONS = {"GetItem": "get_item", "TransactWriteItems": "transact_write_items", "Query": "query"}
ROUND = 20


def on_twin(calls: list[tuple[str, dict[str, Any]]], twin: str) -> list[tuple[str, dict[str, Any]]]:
    """The captured requests, addressed to the twin table."""
    return [(op, json.loads(json.dumps(params).replace(f'"{TABLE}"', f'"{twin}"'))) for op, params in calls]


def earn_command(member: str, n: int) -> Earn:
    return Earn(
        program="bench",
        member=member,
        points=120,
        source="shop",
        external_id=f"order-{member}-{n}",
        reason="order",
        event_time=NOW,
    )


def main() -> None:
    emulator = Emulator()
    emulator.start()
    try:

        def dynamodb() -> Any:
            return boto3.client(
                "dynamodb",
                endpoint_url=emulator.url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )

        client = dynamodb()
        bare = dynamodb()  # the raw side's own client: it carries no recorder
        create_table(client, TABLE)
        create_table(client, TWIN)
        stack = Services(table_name=TABLE, client=client, clock=lambda: NOW, config_cache_seconds=3600)
        programs = stack.programs  # a warm function keeps its config (config_cache_seconds)
        programs.publish(ProgramConfig(program="bench", name="Bench"))
        ledger = stack.ledger
        twin = Services(table_name=TWIN, client=client, clock=lambda: NOW, config_cache_seconds=3600)
        twin_programs = twin.programs
        twin_programs.publish(ProgramConfig(program="bench", name="Bench"))
        twin_ledger = twin.ledger
        members = [f"m{i:06d}" for i in range(MEMBERS)]
        for member in members:  # every member exists before timing, on both tables alike
            ledger.earn(earn_command(member, 0))
            twin_ledger.earn(earn_command(member, 0))
        programs.get("bench")

        # Rounds of earns through our code on the table (every request recorded), each followed by
        # the same requests bare on the twin, so noise over time hits both sides alike.
        recorder = Recorder(client)
        stack.table.stats.reset()
        store_seconds = raw_seconds = 0.0
        earn_calls: list[tuple[str, dict[str, Any]]] = []
        for start in range(0, MEMBERS, ROUND):
            recorder.calls.clear()
            began = time.perf_counter()
            for member in members[start : start + ROUND]:
                ledger.earn(earn_command(member, 1))
            store_seconds += time.perf_counter() - began
            earn_calls.extend(recorder.calls)
            raw = on_twin(recorder.calls, TWIN)
            began = time.perf_counter()
            for op, params in raw:
                getattr(bare, OPERATIONS[op])(**params)
            raw_seconds += time.perf_counter() - began
        earn_requests = sum(stack.table.stats.requests.values()) / MEMBERS
        earn_request_seconds = recorder.request_seconds
        own_code_seconds = store_seconds - earn_request_seconds
        earn_wcu, earn_gsi = transaction_wcu(next(p for op, p in earn_calls if op == "TransactWriteItems"))

        # Redemptions: one partial lot each.
        recorder.calls.clear()
        stack.table.stats.reset()
        redeemers = members[: min(100, MEMBERS)]
        for member in redeemers:
            ledger.spend(
                Spend(program="bench", member=member, points=150, source="web", external_id=f"r-{member}", reason="r"),
                at=NOW,
            )
        redeem_requests = sum(stack.table.stats.requests.values()) / len(redeemers)
        redeem_wcu, redeem_gsi = transaction_wcu(next(p for op, p in recorder.calls if op == "TransactWriteItems"))

        store_rate = MEMBERS / store_seconds
        raw_rate = MEMBERS / raw_seconds
        write_results(
            "ledger",
            {
                "earn_requests_per_op": earn_requests,
                "earn_wcu_per_op": earn_wcu,
                "earn_gsi_wcu_per_op": earn_gsi,
                "redeem_requests_per_op": redeem_requests,
                "redeem_wcu_per_op": redeem_wcu,
                "redeem_gsi_wcu_per_op": redeem_gsi,
                "store_earn_per_s": round(store_rate, 1),
                "raw_earn_requests_per_s": round(raw_rate * earn_requests, 1),
                "raw_earns_per_s": round(raw_rate, 1),
                # Share of the bare requests' speed that an earn through our code keeps (1.0: no overhead).
                "earn_vs_raw": round(store_rate / raw_rate, 3),
                # Where an earn's time goes: our code (validation, hashing, building the
                # transaction) versus waiting on the emulator's replies.
                "own_code_ms_per_earn": round(own_code_seconds / MEMBERS * 1000, 2),
                "emulator_ms_per_earn": round(earn_request_seconds / MEMBERS * 1000, 2),
                "wcu_computed_from_item_sizes": 1,
            },
        )
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
