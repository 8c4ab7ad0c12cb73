"""The capacity and cost model (docs/capacity.md): the target load priced from measured costs per event.

Target: 1,000,000 members, 10,000 earn events a second at peak, 50,000,000 ledger entries a month.

Measured inputs (the other benchmarks' results in bench/results/, read here, not typed in):
- ledger.json: an earn's write units (`earn_wcu_per_op`, transactional, from item sizes) and its
  GSI write units (`earn_gsi_wcu_per_op`);
- stack.json: DynamoDB and SQS requests per event through the whole pipeline (ingest, the stream
  watch), and each function's CPU milliseconds per event.

Assumptions (constants below, each with its reason) cover what a local stack cannot measure:
DynamoDB's network latency, how many items an earn reads, what the watch's transaction
writes, and list prices. The hottest-partition figure applies DynamoDB's per-partition limits
(1,000 WCU and 3,000 RCU a second) to the keys every earn writes: see `hot_keys`.
"""

from __future__ import annotations

import json
from typing import Any

from bench.common import RESULTS, write_results
from shared.infra.counters import SHARDS as FIGURE_SHARDS
from shared.infra.keys import INDEX_DAY_SHARDS

MEMBERS = 1_000_000
PEAK_EARNS_PER_S = 10_000
ENTRIES_PER_MONTH = 50_000_000
SECONDS_PER_MONTH = 30 * 86_400
RETAINED_MONTHS = 12  # entries are the ledger: kept; the model prices a year of them

# DynamoDB's limits per partition (any key's items live in one partition).
PARTITION_WCU = 1_000
PARTITION_RCU = 3_000

# Assumptions.
DYNAMODB_MS_PER_REQUEST = 8.0  # a DynamoDB call inside the region, round trip (single-digit ms)
# Items an earn reads, strongly consistent, each under 4 KB (1 RCU): its identity link and the
# member's profile, tier, tallies, balance and flag (docs/channels.md). Ingest reads a batch's in two
# BatchGetItems (links, then views): fewer requests, the same read units.
ITEMS_READ_PER_EVENT = 1 + 5
# The watch's transaction: the figures marker (a put) and three counter updates (the day, the month,
# to date), each item < 1 KB, transactional: 2 WCU each (shared/projections/store.py add_entry).
WATCH_WCU_PER_EVENT = 4 * 2
# The lot (or pending earn) an earn writes is one GSI1 item under 1 KB on its due day's key: 1 WCU.
INDEX_WCU_PER_EARN = 1
# An earn leaves its entry and a lot (or pending earn) behind; the balance and tallies are rewritten.
# Each is under 1 KB (the WCU of ledger.json are 2 per started KB, transactional).
KB_STORED_PER_ENTRY = 2
KB_PER_MEMBER = 5  # profile, balance, tier, tallies, identity: about 1 KB each
FUNCTION_GB = 0.5  # template.yaml Globals MemorySize 512
SQS_BATCH = 10  # the ingest mapping's batch size
# Ingest's own DynamoDB requests per event: the earn's transaction, and the batch's two reads.
INGEST_REQUESTS_PER_EVENT = 1 + 2 / SQS_BATCH
STREAM_BATCH = 100  # the watch's stream batch size
# The webhook function's own work per request (stack.json sends to the queue directly): assumed.
WEBHOOK_CPU_MS = 10.0
WEBHOOK_SHARE = 1.0  # every earn event arrives by webhook (files would skip API Gateway): the dearest case

# List prices, us-east-1, on-demand (USD), as AWS publishes them.
PRICE_WRITE_REQUEST_UNIT = 0.625 / 1e6
PRICE_READ_REQUEST_UNIT = 0.125 / 1e6
PRICE_STORAGE_GB_MONTH = 0.25
PRICE_LAMBDA_GB_S_ARM = 0.0000133334
PRICE_LAMBDA_REQUEST = 0.20 / 1e6
PRICE_SQS_REQUEST = 0.40 / 1e6
PRICE_REST_API_REQUEST = 3.50 / 1e6


def _results(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `python -m bench {name}` first")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def hot_keys() -> dict[str, float]:
    """WCU a second on the busiest item of each kind every earn writes, at the peak, over the limit.

    - a member's partition: one member's own events (a few a second at most), never near it;
    - the program's figure counters: every event updates one of FIGURE_SHARDS items of its day, of
      its month and of to date, transactionally (2 WCU each);
    - the expiry (or pending) index's day key in GSI1 (`X#<program>#<day>[#<shard>]`): every earn
      of a day with rolling expiry lands on the same due day, spread over INDEX_DAY_SHARDS keys by
      member: GSI1 partitions have the same limit, and a throttled GSI throttles the table's writes.
    """
    return {
        "member": 5 * 2 / PARTITION_WCU,
        "figures_shard": PEAK_EARNS_PER_S / FIGURE_SHARDS * 2 / PARTITION_WCU,
        "expiry_index_day": PEAK_EARNS_PER_S / INDEX_DAY_SHARDS * INDEX_WCU_PER_EARN / PARTITION_WCU,
    }


def model() -> dict[str, float | int]:
    ledger, stack = _results("ledger"), _results("stack")
    earn_wcu = float(ledger["earn_wcu_per_op"])
    earn_gsi_wcu = float(ledger["earn_gsi_wcu_per_op"])
    wcu_per_event = earn_wcu + earn_gsi_wcu + WATCH_WCU_PER_EVENT
    # Reads: the items ingest reads (the transaction's condition checks are billed with its writes).
    rcu_per_event = ITEMS_READ_PER_EVENT
    ddb_requests = float(stack["ddb_requests_per_event"])
    sqs_requests = float(stack["sqs_requests_per_event"])

    # Lambda: CPU measured per event plus the wait on each DynamoDB call, billed per millisecond.
    ingest_ms = float(stack["cpu_ms_per_event_ingestfunction"]) + INGEST_REQUESTS_PER_EVENT * DYNAMODB_MS_PER_REQUEST
    watch_requests = max(0.0, ddb_requests - INGEST_REQUESTS_PER_EVENT)
    watch_ms = float(stack["cpu_ms_per_event_watchfunction"]) + watch_requests * DYNAMODB_MS_PER_REQUEST
    gb_s_per_event = (ingest_ms + watch_ms) / 1000 * FUNCTION_GB
    invocations_per_event = 1 / SQS_BATCH + 1 / STREAM_BATCH + WEBHOOK_SHARE
    webhook_ms = WEBHOOK_CPU_MS + DYNAMODB_MS_PER_REQUEST  # verify the signature, one SQS send
    gb_s_per_event += WEBHOOK_SHARE * webhook_ms / 1000 * FUNCTION_GB

    per_million = 1e6
    dynamodb_usd = per_million * (wcu_per_event * PRICE_WRITE_REQUEST_UNIT + rcu_per_event * PRICE_READ_REQUEST_UNIT)
    lambda_usd = per_million * (gb_s_per_event * PRICE_LAMBDA_GB_S_ARM + invocations_per_event * PRICE_LAMBDA_REQUEST)
    sqs_usd = per_million * sqs_requests * PRICE_SQS_REQUEST
    api_usd = per_million * WEBHOOK_SHARE * PRICE_REST_API_REQUEST

    stored_gb = (ENTRIES_PER_MONTH * RETAINED_MONTHS * KB_STORED_PER_ENTRY + MEMBERS * KB_PER_MEMBER) / 1024**2
    events_per_month = ENTRIES_PER_MONTH  # an earn event posts one entry
    monthly_usd = (
        events_per_month / per_million * (dynamodb_usd + lambda_usd + sqs_usd + api_usd)
        + stored_gb * PRICE_STORAGE_GB_MONTH
    )
    hot = hot_keys()
    return {
        "members": MEMBERS,
        "peak_earn_events_per_s": PEAK_EARNS_PER_S,
        "entries_per_month": ENTRIES_PER_MONTH,
        "wcu_per_earn_event": round(wcu_per_event, 2),
        "rcu_per_earn_event": round(rcu_per_event, 2),
        "ddb_requests_per_earn_event": round(ddb_requests, 3),
        "peak_wcu": round(PEAK_EARNS_PER_S * wcu_per_event),
        "peak_rcu": round(PEAK_EARNS_PER_S * rcu_per_event),
        "peak_ddb_requests_per_s": round(PEAK_EARNS_PER_S * ddb_requests),
        "peak_sqs_requests_per_s": round(PEAK_EARNS_PER_S * sqs_requests),
        "peak_lambda_concurrency": round(PEAK_EARNS_PER_S * (ingest_ms + watch_ms + webhook_ms) / 1000),
        "lambda_gb_s_per_million_events": round(gb_s_per_event * per_million),
        "stored_gb_after_a_year": round(stored_gb, 1),
        "dynamodb_usd_per_million_earn_events": round(dynamodb_usd, 3),
        "lambda_usd_per_million_earn_events": round(lambda_usd, 3),
        "sqs_usd_per_million_earn_events": round(sqs_usd, 3),
        "api_gateway_usd_per_million_earn_events": round(api_usd, 3),
        "cost_per_million_earn_events_usd": round(dynamodb_usd + lambda_usd + sqs_usd + api_usd, 2),
        "monthly_usd_at_50m_entries": round(monthly_usd),
        "hot_member_share_of_limit": round(hot["member"], 3),
        "hot_figures_shard_share_of_limit": round(hot["figures_shard"], 3),
        "hot_expiry_index_day_share_of_limit": round(hot["expiry_index_day"], 3),
        "hottest_partition_share_of_limit": round(max(hot.values()), 3),
    }


def main() -> None:
    write_results("capacity", model())


if __name__ == "__main__":
    main()
