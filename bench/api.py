"""HTTP API latency and throughput over the sandbox, next to /health measured in the same run.

8 concurrent clients, each its own member (so the figures show the API's cost, not contention on
one account), each making PER_CLIENT calls of one kind after every worker has been started once.
`exchange` is one quote plus its execution (two requests), as a client does it.

Writes bench/results/api.json as a flat object of numbers: for health, balance, redeem and
exchange, `<name>_p50_ms`, `<name>_p99_ms` and `<name>_per_s` (calls completed per second of wall
time, all 8 clients together), and for the three real endpoints `<name>_p50_vs_trivial` and
`<name>_p99_vs_trivial` (over /health's figure from the same run).

What the ratios measure: the sandbox runs each Lambda as a local worker process and answers every
DynamoDB call from moto under one lock, so a write waits for every other client's DynamoDB calls.
The ratios say how much an endpoint costs next to a request that does no I/O on the same stack;
they are not DynamoDB's latencies.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import requests

from bench.common import FUNCTION_LOGS, ROOT, write_results
from pointbridge.sandbox import Sandbox
from tests.support.api_stack import seed

if TYPE_CHECKING:
    from collections.abc import Callable

CLIENTS = 8
PER_CLIENT = 25
ENDPOINTS = ("health", "balance", "redeem", "exchange")


def _measure(name: str, clients: list[Callable[[], None]]) -> dict[str, float]:
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
        f"{name}_p50_ms": round(statistics.median(latencies) * 1000, 2),
        f"{name}_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        f"{name}_per_s": round(len(latencies) / wall, 1),
    }


def _expect(response: requests.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.url}: {response.status_code} {response.text[:200]}")


def main() -> None:
    with Sandbox(
        template=ROOT / "template.yaml", schedules=False, pool_size=CLIENTS, log_dir=FUNCTION_LOGS / "api"
    ) as sb:
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

        factories = {"health": health, "balance": balance, "redeem": redeem, "exchange": exchange}
        for warm in (health, balance):  # start every worker once, so cold starts are not measured
            _measure("warm", [warm(i) for i in range(CLIENTS)])
        # The machine's 1-minute load average as the run starts: other work on its 2 cores slows every figure.
        figures: dict[str, float | int] = {
            "clients": CLIENTS,
            "calls_per_client": PER_CLIENT,
            "load_average_at_start": round(os.getloadavg()[0], 2),
        }
        for name in ENDPOINTS:
            figures.update(_measure(name, [factories[name](i) for i in range(CLIENTS)]))
        for name in ENDPOINTS[1:]:
            for stat in ("p50", "p99"):
                ratio = figures[f"{name}_{stat}_ms"] / figures[f"health_{stat}_ms"]
                figures[f"{name}_{stat}_vs_trivial"] = round(ratio, 2)
        figures["table_items_after"] = sum(1 for _ in seeded.services.table.scan())
    write_results("api", figures)


if __name__ == "__main__":
    main()
