"""The whole sandbox path: SQS -> IngestFunction -> DynamoDB -> stream -> WatchFunction, end to end.

Figures:
- pipeline_events_per_s: repeat purchases by known members sent to the ingest queue (batched by
  10, as a file splitter sends them) until the sandbox is idle again: every event posted, every
  stream record of its writes handed to the stream consumer (WatchFunction: partner settlement
  lines, program figures, velocity checks) and every invocation finished.
- raw_events_per_s: the very DynamoDB requests the pipeline applied (taken from the emulator's
  request log in the order it applied them: ingest's and the stream consumer's), issued bare and
  in order by one boto3 client against a copy of the table as it stood before the run, in another
  region of the same emulator, in the same run. Every replayed request must answer with the
  status the pipeline's got (a conditional write that failed there fails here too).
- pipeline_vs_raw: pipeline_events_per_s / raw_events_per_s. Above 1 means the pipeline's
  parallel workers beat one client's requests in a row; the SQS and stream requests the pipeline
  also makes are its own cost (they are counted per event below).
- <service>_<Operation>_per_event: what one event asked of the emulator, and
  <service>_<Operation>_moto_cpu_ms_per_event the CPU time moto's app spent on it (last round;
  the rest of the emulator's CPU is HTTP: reading requests, writing replies).
- cpu_ms_per_event_<part>: CPU time (user + system, from /proc) each process used per event, the
  median of the rounds: the emulator, each function's workers, and "sandbox" (this process: the
  pollers, the worker pools' I/O and the driver). CPU time does not count the time a process
  waits for a core, so it holds on a busy machine where the rates do not.
- emulator_bound_events_per_s (1000 / the emulator's CPU ms per event) and
  workers_bound_events_per_s (1000 / everything else's): the rates the pipeline could reach on an
  idle 2-core machine if the emulator had one core and the rest the other - the emulator runs
  one request at a time on one core, so the lower of the two is the ceiling.
- emulator_running_share, emulator_waiting_for_core_share, emulator_asleep_share: how the
  emulator's wall time in the pipeline pass divides (Linux schedstat of its threads): running on
  a core, ready but waiting for one (the machine's other processes, our own workers included,
  had them), and asleep (no request to serve: the only time the pipeline left it without work).
  The pipeline runs at about emulator_running_share x emulator_bound_events_per_s.
- load_average_1m: the machine's load when the rounds ended (2.0 fills both cores).

Each figure is the median of ROUNDS rounds, pipeline and replay alternating, so both sides see the
same machine (it is shared); *_spread is (max - min) / median of the rounds.

`BENCH_PROFILE=1` also samples every process of one more round with py-spy (the bench process
with the pollers, the emulator, each function's workers) and writes each part's share of the
busy time to bench/results/stack_profile.json and the hottest functions of each part to
.pointbridge/bench-profile/stack.txt.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from bench.common import FUNCTION_LOGS, ROOT, write_results
from functions.services import Services
from pointbridge.sandbox import Sandbox
from shared.events.model import Channel, Identity, IdentityKind, PurchaseEvent
from shared.program.config import load_program

if TYPE_CHECKING:
    from pointbridge.sandbox.emulator import LoggedRequest

EVENTS = int(os.environ.get("BENCH_STACK_EVENTS", "400"))
ROUNDS = int(os.environ.get("BENCH_STACK_ROUNDS", "3"))
PROFILE = os.environ.get("BENCH_PROFILE", "") not in ("", "0")
BATCH = 10
REPLAY_REGION = "us-west-2"
PROFILE_DIR = ROOT / ".pointbridge" / "bench-profile"


def purchase(member: str, order: str) -> str:
    event = PurchaseEvent(
        program="demo",
        channel=Channel.ONLINE,
        source="shop",
        external_id=order,
        identity=Identity(kind=IdentityKind.EMAIL, value=member),
        occurred_at=datetime.now(UTC),
        currency="USD",
        eligible_amount=Decimal("60.00"),
    )
    return json.dumps({"event": event.model_dump(mode="json")})


def send(sb: Sandbox, bodies: list[str]) -> None:
    sqs, queue = sb.client("sqs"), sb.resource("IngestQueue")
    for first in range(0, len(bodies), BATCH):
        chunk = bodies[first : first + BATCH]
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)])


def member(i: int) -> str:
    return f"m{i:07d}@stack.example"


def client(sb: Sandbox, service: str, region: str) -> Any:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
    return session.client(  # type: ignore[call-overload]
        service, endpoint_url=sb.endpoint_url, config=Config(retries={"mode": "standard"})
    )


def copy_table(sb: Sandbox, table: str, region: str) -> None:
    """The table as it stands now, created afresh (same keys, indexes and stream) in `region`."""
    source, target = sb.client("dynamodb"), client(sb, "dynamodb", region)
    description = source.describe_table(TableName=table)["Table"]
    try:
        target.delete_table(TableName=table)
    except ClientError:
        pass
    indexes = [
        {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
        for i in description.get("GlobalSecondaryIndexes", [])
    ]
    target.create_table(
        TableName=table,
        KeySchema=description["KeySchema"],
        AttributeDefinitions=description["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification=description["StreamSpecification"],
        **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
    )
    for page in source.get_paginator("scan").paginate(TableName=table):
        items = page["Items"]
        for first in range(0, len(items), 25):
            target.batch_write_item(
                RequestItems={table: [{"PutRequest": {"Item": i}} for i in items[first : first + 25]]}
            )


def snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def replay(sb: Sandbox, requests: list[LoggedRequest]) -> float:
    """Seconds to issue `requests` bare, in order; raises if any answers otherwise than it did."""
    bare = client(sb, "dynamodb", REPLAY_REGION)
    calls = [(snake(r.target.split(".", 1)[1]), json.loads(r.body), r.status) for r in requests]
    mismatches = 0
    started = time.perf_counter()
    for operation, params, status in calls:
        try:
            getattr(bare, operation)(**params)
            answered = 200
        except ClientError as error:
            answered = int(error.response["ResponseMetadata"]["HTTPStatusCode"])
        mismatches += answered != status
    seconds = time.perf_counter() - started
    if mismatches:
        raise RuntimeError(f"{mismatches} of {len(calls)} replayed requests answered otherwise than in the pipeline")
    return seconds


def entries_posted(sb: Sandbox, orders: list[str]) -> int:
    store = Services(table_name=sb.resource("PointsTable"), client=sb.client("dynamodb")).ledger_store
    return sum(1 for order in orders if store.get_entry("demo", f"shop:{order}") is not None)


class Profiler:
    """py-spy sampling this process and its children (emulator, workers) until stopped."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if py_spy is None:
            raise RuntimeError("BENCH_PROFILE needs py-spy (pip install -e '.[dev]')")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [py_spy, "record", "--pid", str(os.getpid()), "--subprocesses", "--format", "raw", "--nolineno"]
            + ["--rate", "200", "--nonblocking", "--output", str(self.output)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)  # py-spy attaches to each process before the round starts
        return self

    def __exit__(self, *_: object) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        self._process.wait(timeout=120)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scheduled_seconds(pid: int | None) -> tuple[float, float] | None:
    """Seconds a process's threads have run on a core, and waited ready for one (Linux schedstat)."""
    ran = waited = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            run_ns, wait_ns, _ = (task / "schedstat").read_text().split()
            ran, waited = ran + int(run_ns), waited + int(wait_ns)
    except (FileNotFoundError, ValueError):
        return None  # no schedstat on this kernel, or no such process
    return ran / 1e9, waited / 1e9


def emulator_shares(
    before: tuple[float, float] | None, after: tuple[float, float] | None, seconds: float
) -> dict[str, float]:
    if before is None or after is None:
        return {}
    running, waiting = ((a - b) / seconds for a, b in zip(after, before, strict=True))
    return {
        "emulator_running_share": running,
        "emulator_waiting_for_core_share": waiting,
        "emulator_asleep_share": max(0.0, 1 - running - waiting),
    }


def cpu_by_part(roles: dict[int, str]) -> dict[str, float]:
    used: dict[str, float] = defaultdict(float)
    for pid, role in roles.items():
        try:
            used[role] += cpu_seconds(pid)
        except FileNotFoundError:
            pass  # a worker that ended (its pool was restarted): its time is not counted
    return used


def run_round(
    sb: Sandbox, start: int, table: str, profile: Path | None = None
) -> tuple[float, float, list[LoggedRequest], dict[str, float], dict[str, float]]:
    """One pipeline pass over EVENTS members (who bought before) and its bare replay: seconds each,
    the request log, CPU seconds by part and the emulator's shares of the pass (emulator_shares).

    With `profile`, the pipeline pass (not the replay) is sampled into that file."""
    copy_table(sb, table, REPLAY_REGION)
    orders = [f"again-{start:03d}-{i:06d}" for i in range(EVENTS)]
    bodies = [purchase(member(i), order) for i, order in enumerate(orders)]
    roles = process_roles(sb)
    with Profiler(profile) if profile is not None else contextlib.nullcontext():
        sb.emulator.start_request_log()
        cpu_before = cpu_by_part(roles)
        scheduled_before = scheduled_seconds(sb.emulator.pid)
        started = time.perf_counter()
        send(sb, bodies)
        sb.wait_for_idle(timeout=900)
        pipeline_seconds = time.perf_counter() - started
        shares = emulator_shares(scheduled_before, scheduled_seconds(sb.emulator.pid), pipeline_seconds)
        cpu = {part: seconds - cpu_before.get(part, 0.0) for part, seconds in cpu_by_part(roles).items()}
        log = sb.emulator.stop_request_log()
    if (posted := entries_posted(sb, orders)) != EVENTS:
        raise RuntimeError(f"only {posted} of {EVENTS} events reached the ledger")
    failed = [i for i in sb.invocations if i.outcome != "ok"]
    if failed:
        raise RuntimeError(f"{len(failed)} invocations did not succeed, e.g. {failed[0]}")
    ddb = [r for r in log if r.target.startswith("DynamoDB_20120810.")]
    return pipeline_seconds, replay(sb, ddb), log, cpu, shares


def request_figures(log: list[LoggedRequest]) -> dict[str, float]:
    """Requests per event by service and operation, and the CPU milliseconds moto spent on them."""
    services: Counter[str] = Counter()
    operations: Counter[str] = Counter()
    seconds: dict[str, float] = defaultdict(float)
    for request in log:
        service, _, operation = request.target.partition(".")
        service = {"DynamoDB_20120810": "ddb", "DynamoDBStreams_20120810": "streams", "AmazonSQS": "sqs"}.get(
            service, service or "other"
        )
        services[service] += 1
        operations[f"{service}_{operation}"] += 1
        seconds[f"{service}_{operation}"] += request.cpu_seconds
    figures = {f"{s}_requests_per_event": round(n / EVENTS, 3) for s, n in services.items()}
    figures |= {f"{op}_per_event": round(n / EVENTS, 3) for op, n in operations.items()}
    figures |= {f"{op}_moto_cpu_ms_per_event": round(s * 1000 / EVENTS, 3) for op, s in seconds.items()}
    figures["moto_cpu_ms_per_event"] = round(sum(seconds.values()) * 1000 / EVENTS, 3)
    return figures


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def spread(values: list[float]) -> float:
    return round((max(values) - min(values)) / statistics.median(values), 3)


def main() -> None:
    with Sandbox(template=ROOT / "template.yaml", schedules=False, log_dir=FUNCTION_LOGS / "stack") as sb:
        table = sb.resource("PointsTable")
        programs = Services(table_name=table, client=sb.client("dynamodb"), config_cache_seconds=3600).programs
        programs.publish(load_program(ROOT / "seeds" / "demo-program.json"))
        # Every member buys once first (not timed): the timed rounds are repeat purchases, the common case.
        send(sb, [purchase(member(i), f"first-{i:06d}") for i in range(EVENTS)])
        sb.wait_for_idle(timeout=900)

        pipeline, raw, loads = [], [], []
        log: list[LoggedRequest] = []
        cpu_rounds: list[dict[str, float]] = []
        share_rounds: list[dict[str, float]] = []
        for round_number in range(ROUNDS):
            pipeline_seconds, raw_seconds, log, cpu, shares = run_round(sb, round_number, table)
            pipeline.append(EVENTS / pipeline_seconds)
            raw.append(EVENTS / raw_seconds)
            cpu_rounds.append(cpu)
            share_rounds.append(shares)
            loads.append(os.getloadavg()[0])
            print(
                f"  round {round_number}: pipeline {pipeline[-1]:.1f}/s, raw {raw[-1]:.1f}/s,"
                f" emulator CPU {cpu.get('emulator', 0) * 1000 / EVENTS:.1f} ms/event, load {loads[-1]:.1f},"
                f" emulator running {shares.get('emulator_running_share', 0):.0%}"
                f" / waiting for a core {shares.get('emulator_waiting_for_core_share', 0):.0%}"
                f" / asleep {shares.get('emulator_asleep_share', 0):.0%}",
                flush=True,
            )
        pipeline_rate, raw_rate = statistics.median(pipeline), statistics.median(raw)
        ratios = [p / r for p, r in zip(pipeline, raw, strict=True)]
        cpu_ms = {
            part: statistics.median(r.get(part, 0.0) for r in cpu_rounds) * 1000 / EVENTS for part in cpu_rounds[0]
        }
        rest_ms = sum(ms for part, ms in cpu_ms.items() if part != "emulator")
        write_results(
            "stack",
            {
                "pipeline_events_per_s": round(pipeline_rate, 2),
                "raw_events_per_s": round(raw_rate, 2),
                "pipeline_vs_raw": round(statistics.median(ratios), 3),
                "pipeline_spread": spread(pipeline),
                "raw_spread": spread(raw),
                "pipeline_vs_raw_spread": spread(ratios),
                "events": EVENTS,
                "rounds": ROUNDS,
                "ingest_workers": sb.pool_size,
                **request_figures(log),
                **{f"cpu_ms_per_event_{slug(part)}": round(ms, 2) for part, ms in cpu_ms.items()},
                "emulator_bound_events_per_s": round(1000 / cpu_ms["emulator"], 1),
                "workers_bound_events_per_s": round(1000 / rest_ms, 1),
                **{name: round(statistics.median(r[name] for r in share_rounds), 3) for name in share_rounds[0]},
                "load_average_1m": round(statistics.median(loads), 2),
            },
        )
        if PROFILE:
            raw_profile = PROFILE_DIR / "stack.raw"
            run_round(sb, ROUNDS, table, profile=raw_profile)
            roles = process_roles(sb)
            write_results("stack_profile", profile_shares(raw_profile, roles, PROFILE_DIR / "stack.txt"))


def process_roles(sb: Sandbox) -> dict[int, str]:
    """pid -> part of the path: the bench process (pollers), the emulator, each function's workers."""
    roles = {os.getpid(): "sandbox"}
    if sb.emulator.pid is not None:
        roles[sb.emulator.pid] = "emulator"
    for logical_id, pool in sb._pools.items():  # noqa: SLF001 - the bench reads which pids serve which function
        for pid in pool.worker_pids():
            roles[pid] = logical_id
    return roles


THREAD_PARTS = (
    ("SqsPoller", "sqs pollers"),
    ("StreamPoller", "stream poller"),
    ("Poller._run", "pollers"),
    ("concurrent/futures/process.py", "worker pool I/O"),
    ("bench/stack.py", "bench driver"),
)


def profile_shares(raw: Path, roles: dict[int, str], report: Path) -> dict[str, float | int]:
    """Busy samples per part (share of all) and each part's hottest functions, written to `report`."""
    parts: Counter[str] = Counter()
    hottest: dict[str, Counter[str]] = defaultdict(Counter)
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        process = max(i for i, f in enumerate(frames) if f.startswith("process "))
        pid = int(frames[process].split()[1].split(":")[0])
        role = roles.get(pid, "other")
        if role == "sandbox":
            role = next((name for marker, name in THREAD_PARTS if marker in stack), "sandbox other")
        count = int(count_text)
        parts[role] += count
        for frame in set(frames[process + 1 :]):
            hottest[role][frame] += count
    total = sum(parts.values())
    lines = []
    for role, samples in parts.most_common():
        lines.append(f"== {role}: {samples} samples, {samples / total:.1%} of all busy samples")
        lines += [f"  {n / samples:6.1%}  {frame}" for frame, n in hottest[role].most_common(40)]
    report.write_text("\n".join(lines) + "\n")
    print(f"  hottest functions of each part -> {report.relative_to(ROOT)}")
    figures: dict[str, float | int] = {"samples": total, "rate_hz": 200}
    figures |= {f"share_{slug(role)}": round(n / total, 3) for role, n in parts.items()}
    return figures


if __name__ == "__main__":
    main()
