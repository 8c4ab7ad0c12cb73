"""Ingest throughput: SQS -> ingest function -> ledger through the sandbox, next to the bare requests.

Figures:
- pipeline_events_per_s: purchase events sent to the ingest queue until the sandbox is idle again
  (its pollers, worker processes, the ingest function and the ledger, against the emulator).
- ddb_requests_per_event: DynamoDB requests the ingest use case makes for one purchase by a known
  member (the same code the function runs, counted in-process against the same emulator); the
  demo program holds purchases pending for a 30-day return window, so this is a pending earn.
  docs/channels.md tabulates the other kinds of event.
- raw_events_per_s: the very SQS requests (send, receive, delete; batched by 10 as the pipeline
  does) and DynamoDB requests (captured from the use case, replayed for fresh members with the same
  history) one event costs, issued bare by boto3 against the same emulator in the same run.
- pipeline_vs_raw: pipeline_events_per_s / raw_events_per_s (1.0 would be no overhead at all).

Fairness of the bare replay: every member ("a" through the pipeline, "b" captured, "c" replayed)
bought once before, so each replayed request meets the state the captured one met (balance at
sequence 1, the same day's cap tally, an empty refund list) and writes items of the same size: ids
differ only in same-length member, identity and order ids. The replay runs on the same table in the
same emulator right after the pipeline, with its own boto3 client (no recorder hooks), and checks
that every replayed transaction wrote its entry. The pipeline's own waits are part of its cost: the
function's 1 s batching window and the sandbox's idle detection.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config

from bench.common import FUNCTION_LOGS, ROOT, write_results
from bench.ledger import Recorder
from functions.services import Services
from pointbridge.sandbox import Sandbox
from shared.events.model import Channel, Identity, IdentityKind, PurchaseEvent
from shared.program.config import load_program

EVENTS = int(os.environ.get("BENCH_INGEST_EVENTS", "200"))
SAMPLE = 40
BATCH = 10
OPERATIONS = {
    "GetItem": "get_item",
    "BatchGetItem": "batch_get_item",
    "Query": "query",
    "PutItem": "put_item",
    "UpdateItem": "update_item",
    "DeleteItem": "delete_item",
    "TransactWriteItems": "transact_write_items",
}


def purchase(identity: str, order: str) -> PurchaseEvent:
    return PurchaseEvent(
        program="demo",
        channel=Channel.ONLINE,
        source="shop",
        external_id=order,
        identity=Identity(kind=IdentityKind.EMAIL, value=identity),
        occurred_at=datetime.now(UTC),
        currency="USD",
        eligible_amount=Decimal("60.00"),
    )


def identity(prefix: str, i: int) -> str:
    return f"{prefix}{i:063x}"


def message(event: PurchaseEvent) -> str:
    return json.dumps({"event": event.model_dump(mode="json")})


def main() -> None:
    with Sandbox(template=ROOT / "template.yaml", schedules=False, log_dir=FUNCTION_LOGS / "ingest") as sb:
        ddb = sb.client("dynamodb")
        # The raw side's own client (the sandbox caches one per service, and the recorder hooks that one).
        bare = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=sb.region
        ).client("dynamodb", endpoint_url=sb.endpoint_url, config=Config(retries={"mode": "standard"}))
        sqs = sb.client("sqs")
        stack = Services(table_name=sb.resource("PointsTable"), client=ddb, config_cache_seconds=3600)
        stack.programs.publish(load_program(ROOT / "seeds" / "demo-program.json"))
        ingest = stack.ingest
        queue = sb.resource("IngestQueue")

        # Members who bought before: the common case, and the same history for every figure below.
        for prefix, count in (("a", EVENTS), ("b", SAMPLE), ("c", SAMPLE)):
            for i in range(count):
                ingest.handle(purchase(identity(prefix, i), f"{prefix}-first-{i:06d}"))

        # The pipeline: every event through SQS and the ingest function.
        sb.wait_for_idle(timeout=60)
        started = time.perf_counter()
        for first in range(0, EVENTS, BATCH):
            entries = [
                {"Id": str(i), "MessageBody": message(purchase(identity("a", i), f"a-again-{i:06d}"))}
                for i in range(first, min(first + BATCH, EVENTS))
            ]
            sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        sb.wait_for_idle(timeout=600)
        pipeline_seconds = time.perf_counter() - started
        posted = sum(
            1 for i in range(EVENTS) if stack.ledger_store.get_entry("demo", f"shop:a-again-{i:06d}") is not None
        )
        if posted != EVENTS:
            raise RuntimeError(f"only {posted} of {EVENTS} events reached the ledger")

        # What one event asks of DynamoDB, captured from the use case itself.
        recorder = Recorder(ddb)
        captured: list[list[tuple[str, dict[str, Any]]]] = []
        for i in range(SAMPLE):
            recorder.calls.clear()
            ingest.handle(purchase(identity("b", i), f"b-again-{i:06d}"))
            captured.append(list(recorder.calls))
        ddb_requests = sum(len(calls) for calls in captured) / SAMPLE

        # The same requests bare, for members "c" who have the same history as members "b".
        replays = []
        for i, calls in enumerate(captured):
            old_member = stack.members.member_for(Identity(kind=IdentityKind.EMAIL, value=identity("b", i)).key)
            new_member = stack.members.member_for(Identity(kind=IdentityKind.EMAIL, value=identity("c", i)).key)
            assert old_member and new_member and len(old_member) == len(new_member)
            replays.append(
                [
                    (
                        op,
                        json.loads(
                            json.dumps(p)
                            .replace(identity("b", i), identity("c", i))
                            .replace(old_member, new_member)
                            .replace(f"b-again-{i:06d}", f"c-again-{i:06d}")
                        ),
                    )
                    for op, p in calls
                ]
            )
        raw_queue = sqs.create_queue(QueueName="bench-raw-ingest")["QueueUrl"]
        started = time.perf_counter()
        for first in range(0, SAMPLE, BATCH):
            chunk = range(first, min(first + BATCH, SAMPLE))
            sqs.send_message_batch(
                QueueUrl=raw_queue,
                Entries=[{"Id": str(i), "MessageBody": message(purchase(identity("c", i), f"c-{i}"))} for i in chunk],
            )
            # As the sandbox's poller asks (no long poll: the emulator's lock would be held for the wait).
            received = sqs.receive_message(
                QueueUrl=raw_queue,
                MaxNumberOfMessages=BATCH,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            for i in chunk:
                for op, params in replays[i]:
                    getattr(bare, OPERATIONS[op])(**params)
            if received:
                sqs.delete_message_batch(
                    QueueUrl=raw_queue,
                    Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(received)],
                )
        raw_seconds = time.perf_counter() - started
        # Fair only if every replayed request did what the pipeline's did: the writes all landed.
        replayed = sum(
            1 for i in range(SAMPLE) if stack.ledger_store.get_entry("demo", f"shop:c-again-{i:06d}") is not None
        )
        if replayed != SAMPLE:
            raise RuntimeError(f"only {replayed} of {SAMPLE} bare replays wrote their entry")

        pipeline_rate = EVENTS / pipeline_seconds
        raw_rate = SAMPLE / raw_seconds
        write_results(
            "ingest",
            {
                "pipeline_events_per_s": round(pipeline_rate, 2),
                "raw_events_per_s": round(raw_rate, 2),
                "pipeline_vs_raw": round(pipeline_rate / raw_rate, 3),
                "ddb_requests_per_event": round(ddb_requests, 2),
                "events": EVENTS,
                "ingest_workers": sb.pool_size,
            },
        )


if __name__ == "__main__":
    main()
