"""What an earn and a redemption cost: DynamoDB requests, write units, and our code's overhead.

Figures:
- earn/redeem requests per operation, counted by the store.
- earn/redeem WCU per operation, COMPUTED from item sizes the way DynamoDB bills (the emulator
  reports a constant capacity, so its numbers say nothing): a transactional write costs 2 WCU per
  started KB of each item; each GSI an item is written to costs 1 WCU per started KB more
  (reported separately as *_gsi_wcu_per_op).
- store_earn_per_s: earns through the ledger and store against the emulator.
- raw_earn_requests_per_s: the very requests an earn makes (same kinds, count and item sizes,
  captured from the store and replayed for fresh members), issued bare by boto3 against the same
  emulator in the same run; earn_vs_raw is their ratio: what our own code costs on top.
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
from pointbridge.sandbox.emulator import Emulator
from pointbridge.tables import create_table
from shared.ledger import Earn, Ledger, Spend
from shared.program import ProgramConfig
from shared.store import DynamoStore, ProgramRepository

MEMBERS = int(os.environ.get("BENCH_LEDGER_MEMBERS", "300"))
TABLE = "bench-points"
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
        client.meta.events.register("provide-client-params.dynamodb.*", self._capture)

    def _capture(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params)))


OPERATIONS = {"GetItem": "get_item", "TransactWriteItems": "transact_write_items", "Query": "query"}
ROUND = 20


def replayed_for_fresh_member(
    client: Any, calls: list[tuple[str, dict[str, Any]]], member: str
) -> list[tuple[str, dict[str, Any]]]:
    """The requests one member's earn made, for a new member whose id has the same length.

    The new member's balance is put in place first (untimed), at the sequence number the recorded
    transaction expects, so the replayed conditional writes succeed exactly as the originals did.
    """
    fresh = "r" + member[1:]
    batch = [(op, json.loads(json.dumps(p).replace(member, fresh))) for op, p in calls if member in json.dumps(p)]
    for op, params in batch:
        if op != "TransactWriteItems":
            continue
        for action in params["TransactItems"]:
            put = action.get("Put")
            if put and put["Item"].get("type", {}).get("S") == "balance":
                seed = copy.deepcopy(put["Item"])
                seed["seq"] = put["ExpressionAttributeValues"][":expected"]
                client.put_item(TableName=put["TableName"], Item=seed)
    return batch


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
        client = boto3.client(
            "dynamodb",
            endpoint_url=emulator.url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        create_table(client, TABLE)
        store = DynamoStore(TABLE, client)
        programs = ProgramRepository(store, cache_seconds=3600)  # a warm function keeps its config
        programs.publish(ProgramConfig(program="bench", name="Bench"))
        ledger = Ledger(store, programs, clock=lambda: NOW)
        members = [f"m{i:06d}" for i in range(MEMBERS)]
        for member in members:  # every member exists before timing: the common case
            ledger.earn(earn_command(member, 0))
        programs.get("bench")

        # Earns through our code, with every request recorded; then the same requests bare.
        # Both run in alternating rounds so that machine noise hits them alike.
        recorder = Recorder(client)
        store.stats.reset()
        store_seconds = raw_seconds = 0.0
        earn_calls: list[tuple[str, dict[str, Any]]] = []
        for start in range(0, MEMBERS, ROUND):
            chunk = members[start : start + ROUND]
            recorder.calls.clear()
            began = time.perf_counter()
            for member in chunk:
                ledger.earn(earn_command(member, 1))
            store_seconds += time.perf_counter() - began
            earn_calls.extend(recorder.calls)
            raw = [replayed_for_fresh_member(client, recorder.calls, member) for member in chunk]
            began = time.perf_counter()
            for batch in raw:
                for op, params in batch:
                    getattr(client, OPERATIONS[op])(**params)
            raw_seconds += time.perf_counter() - began
        earn_requests = sum(store.stats.requests.values()) / MEMBERS
        earn_wcu, earn_gsi = transaction_wcu(next(p for op, p in earn_calls if op == "TransactWriteItems"))

        # Redemptions: one partial lot each.
        recorder.calls.clear()
        store.stats.reset()
        redeemers = members[: min(100, MEMBERS)]
        for member in redeemers:
            ledger.spend(
                Spend(program="bench", member=member, points=150, source="web", external_id=f"r-{member}", reason="r"),
                at=NOW,
            )
        redeem_requests = sum(store.stats.requests.values()) / len(redeemers)
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
                "wcu_computed_from_item_sizes": 1,
            },
        )
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
