"""HTTP API latency and throughput over the sandbox, next to /health measured in the same run.

8 concurrent clients, each its own member (so the numbers show the API's cost, not contention on
one account). `exchange` is one quote plus its execution (two requests), as a client does it.
Writes bench/results/api.json: p50/p99 in ms, requests/s, and each endpoint's `*_vs_trivial`
ratio (its p50 over /health's p50).

Read the write figures with moto in mind: its TransactWriteItems deep-copies the whole table once
per item in the transaction (to roll back), under the sandbox's one lock, so a write's cost grows
with the table and every concurrent request waits for it. Sequentially, one redeem takes about
35 ms and one quote + execution about 80-120 ms on the same machine; the ratios below are the
emulator's, not DynamoDB's.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from pointbridge.sandbox import Sandbox
from tests.support.api_stack import seed

if TYPE_CHECKING:
    from collections.abc import Callable

CLIENTS = 8
PER_CLIENT = 15
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "api.json"


def _measure(clients: list[Callable[[], None]]) -> dict[str, float]:
    def run(call: Callable[[], None]) -> list[float]:
        spent = []
        for _ in range(PER_CLIENT):
            started = time.perf_counter()
            call()
            spent.append(time.perf_counter() - started)
        return spent

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        latencies = sorted(x for batch in pool.map(run, clients) for x in batch)
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        "per_second": round(len(latencies) / wall, 1),
    }


def _expect(response: requests.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.url}: {response.status_code} {response.text[:200]}")


def main() -> None:
    with Sandbox(template=ROOT / "template.yaml", schedules=False, pool_size=CLIENTS) as sb:
        seeded = seed(sb, members=CLIENTS, points=1_000_000)
        url = sb.api_url
        sessions = [requests.Session() for _ in range(CLIENTS)]
        members = list(seeded.member_keys.items())

        def health(i: int) -> Callable[[], None]:
            return lambda: _expect(sessions[i].get(f"{url}/health", timeout=30), 200)

        def balance(i: int) -> Callable[[], None]:
            member, key = members[i]
            path = f"{url}/programs/demo/members/{member}/balance"
            return lambda: _expect(sessions[i].get(path, headers={"x-api-key": key}, timeout=30), 200)

        def redeem(i: int) -> Callable[[], None]:
            member, key = members[i]
            path = f"{url}/programs/demo/members/{member}/redemptions"

            def call() -> None:
                body = {"points": 1, "reference": uuid.uuid4().hex}
                _expect(sessions[i].post(path, json=body, headers={"x-api-key": key}, timeout=30), 201)

            return call

        def exchange(i: int) -> Callable[[], None]:
            member, key = members[i]

            def call() -> None:
                quote = sessions[i].post(
                    f"{url}/agreements/demo-air/quotes",
                    json={"member": member, "points": 2},
                    headers={"x-api-key": key},
                    timeout=30,
                )
                _expect(quote, 201)
                done = sessions[i].post(
                    f"{url}/quotes/{quote.json()['quote_id']}/execute", headers={"x-api-key": key}, timeout=30
                )
                _expect(done, 201)

            return call

        for warm in (health, balance):  # start every worker once, so cold starts are not measured
            _measure([warm(i) for i in range(CLIENTS)])
        results: dict[str, Any] = {"clients": CLIENTS, "per_client": PER_CLIENT}
        for name, factory in (("health", health), ("balance", balance), ("redeem", redeem), ("exchange", exchange)):
            results[name] = _measure([factory(i) for i in range(CLIENTS)])
        results["table_items_after"] = sum(1 for _ in seeded.store.scan())
        results["note"] = "moto deep-copies the table per transaction item under one lock; see bench/api.py"
        trivial = results["health"]["p50_ms"]
        for name in ("balance", "redeem", "exchange"):
            results[f"{name}_vs_trivial"] = round(results[name]["p50_ms"] / trivial, 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
