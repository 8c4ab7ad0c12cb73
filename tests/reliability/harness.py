"""The proof suite's machinery: seeds, a simulated clock, an SQS-like delivery through the real
ingest handler, the jobs run as simulated time passes, and what two runs must agree on.

A delivery is a list of `Arrival`s (a message body at a simulated time). `Delivery.run` hands each
to `functions.ingest.app.handler` as SQS would: one record, a message id, a receive count. A record
the handler reports as failed comes back 30 s later with the same id and the next receive count
(the handler dead-letters it, with its reason, on the last one). Between arrivals the clock moves
on, and every job tick passed on the way runs first: activation of pending earns, expiry, the
hold-lapse job. What reached the DLQ is then redriven once, as an operator's `pointbridge dlq`
redrive does, after checking that every dead letter carries its reason.
"""

from __future__ import annotations

import heapq
import json
import os
import secrets
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

from functions.services import reset, use
from shared.earning.queue import envelope
from shared.infra.settings import get_settings
from shared.jobs.audit import audit_table
from shared.jobs.walk import JobInput
from shared.ledger.models import EntryKind
from shared.ledger.statement import line
from tests.integration.channel_fixtures import SOURCES
from tests.reliability.faults import FaultLayer
from tests.support.aws import create_table
from tests.support.iam import template_name
from tests.support.services import table_services

if TYPE_CHECKING:
    import random
    from collections.abc import Iterator, Sequence

    from functions.services import Services
    from shared.earning.core import Event
    from shared.ledger.models import Entry
    from shared.program.config import ProgramConfig

SEED_VARIABLE = "RELIABILITY_SEED"
TABLE = "points-test"
# The duplicates' delays: past the handler's retries, past an hour, past a day, past a return window.
DELAYS = (timedelta(minutes=6), timedelta(minutes=61), timedelta(hours=25), timedelta(days=30))
REDELIVERY = timedelta(seconds=30)  # the queue's visibility timeout, roughly
JOB_TICK = timedelta(hours=12)


def seeds(count: int) -> list[int]:
    """`count` fresh seeds, or the one in RELIABILITY_SEED (to reproduce a run); each is printed."""
    given = os.environ.get(SEED_VARIABLE)
    chosen = [int(given)] if given else [secrets.randbelow(2**32) for _ in range(count)]
    for seed in chosen:
        print(f"reliability seed {seed} (reproduce with {SEED_VARIABLE}={seed})")
    return chosen


class SimClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class FakeContext:
    function_name: str = "IngestFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:ingest"
    aws_request_id: str = "req-reliability"


@dataclass(order=True)
class Arrival:
    at: datetime
    rank: int  # ties at one instant in a drawn order
    body: str = field(compare=False)
    message_id: str = field(compare=False)
    receives: int = field(default=1, compare=False)


@dataclass
class Figures:
    """What a run counted; summed over runs into bench/results/reliability.json."""

    messages: int = 0
    duplicates: int = 0
    reorders: int = 0
    redeliveries: int = 0
    dead_letters: int = 0
    dlq_without_reason: int = 0
    failed_job_runs: int = 0
    faults: Counter[str] = field(default_factory=Counter)

    def add(self, other: Figures) -> None:
        self.messages += other.messages
        self.duplicates += other.duplicates
        self.reorders += other.reorders
        self.redeliveries += other.redeliveries
        self.dead_letters += other.dead_letters
        self.dlq_without_reason += other.dlq_without_reason
        self.failed_job_runs += other.failed_job_runs
        self.faults.update(other.faults)


@dataclass
class Stack:
    services: Services
    clock: SimClock
    faults: FaultLayer
    sqs: Any
    dlq: str


@contextmanager
def stack(programs: Sequence[ProgramConfig], start: datetime, seed: int, fault_rate: float = 0.0) -> Iterator[Stack]:
    """A fresh moto account: the table, the ingest DLQ, the programs published a month before
    `start`, and the services every in-process handler gets, on the simulated clock and on a
    DynamoDB client carrying the fault layer (off until the run turns it on)."""
    with mock_aws(), pytest.MonkeyPatch.context() as env:
        client = boto3.client("dynamodb")
        create_table(client, TABLE)
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
        queue = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        for name, value in {
            "TABLE_NAME": TABLE,
            "INGEST_QUEUE_URL": queue,
            "INGEST_DLQ_URL": dlq,
            "IDENTITY_HASH_KEY": "identity-key",
            "SOURCES": json.dumps(SOURCES),
            "NOTIFICATIONS_BUS": template_name("NotificationsBus"),
        }.items():
            env.setenv(name, value)
        get_settings.cache_clear()
        reset()
        faults = FaultLayer(client, seed, fault_rate)
        clock = SimClock(start - timedelta(days=30))
        services = use(table_services(TABLE, client, clock))
        for program in programs:
            services.programs.publish(program)
        clock.now = start
        try:
            yield Stack(services, clock, faults, sqs, dlq)
        finally:
            reset()
            get_settings.cache_clear()


def sqs_event(arrival: Arrival) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": arrival.message_id,
                "receiptHandle": f"rh-{arrival.message_id}-{arrival.receives}",
                "body": arrival.body,
                "attributes": {"ApproximateReceiveCount": str(arrival.receives)},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
                "awsRegion": "us-east-1",
            }
        ]
    }


def run_jobs(services: Services, programs: Sequence[str], now: datetime) -> None:
    for program in programs:
        services.ingest.activate_due(program, now)
    services.expiry_job.run(JobInput(now=now, simulate=True))
    services.hold_lapse_job.run(JobInput(now=now, simulate=True))


class Delivery:
    """Arrivals on a simulated clock through the ingest handler, the jobs ticking as time passes."""

    def __init__(self, stack: Stack, programs: Sequence[str], rng: random.Random, tick: timedelta = JOB_TICK) -> None:
        self.stack = stack
        self.tick = tick
        self.programs = programs
        self.rng = rng
        self.figures = Figures()
        self._ids = 0

    def message(self, event: Event, at: datetime) -> Arrival:
        self._ids += 1
        return Arrival(at, self.rng.randrange(2**31), envelope(event), f"m-{self._ids:06d}")

    def run(self, arrivals: list[Arrival], until: datetime, faults: bool = False) -> None:
        from functions.ingest.app import handler

        clock = self.stack.clock
        queue = list(arrivals)
        heapq.heapify(queue)
        tick = clock.now
        self.stack.faults.enabled = faults
        try:
            while queue:
                arrival = heapq.heappop(queue)
                while tick + self.tick <= arrival.at:
                    tick += self.tick
                    clock.now = tick
                    self._jobs(tick)
                clock.now = max(clock.now, arrival.at)
                if not self._handled(handler, arrival):
                    self.figures.redeliveries += 1
                    again = Arrival(
                        arrival.at + REDELIVERY, arrival.rank, arrival.body, arrival.message_id, arrival.receives + 1
                    )
                    heapq.heappush(queue, again)
            while tick + self.tick <= until:
                tick += self.tick
                clock.now = tick
                self._jobs(tick)
        finally:
            self.stack.faults.enabled = False
        self.figures.faults.update(self.stack.faults.counts)
        self.stack.faults.counts.clear()
        clock.now = until
        self._redrive(handler)
        run_jobs(self.stack.services, self.programs, until)

    @staticmethod
    def _handled(handler: Any, arrival: Arrival) -> bool:
        """False when the record comes back: reported as failed, or the whole batch raised (a batch
        of one whose record failed raises, and Lambda's retry is SQS's redelivery)."""
        try:
            reply = handler(sqs_event(arrival), FakeContext())
        except BatchProcessingError:
            return False
        return not reply["batchItemFailures"]

    def _jobs(self, now: datetime) -> None:
        # A job run that meets a fault fails, as a Lambda's would; the next tick catches up from its progress.
        try:
            run_jobs(self.stack.services, self.programs, now)
        except Exception:
            if not self.stack.faults.enabled:
                raise
            self.figures.failed_job_runs += 1

    def _redrive(self, handler: Any) -> None:
        """Every dead letter must say why; then each is sent back once (faults off)."""
        sqs, url = self.stack.sqs, self.stack.dlq
        letters: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            if not got.get("Messages"):
                break
            for message in got["Messages"]:
                letters.append(message)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        self.figures.dead_letters += len(letters)
        for letter in letters:
            attributes = letter.get("MessageAttributes", {})
            if not attributes.get("reason", {}).get("StringValue") or not attributes.get("code", {}).get("StringValue"):
                self.figures.dlq_without_reason += 1
            self._ids += 1
            replay = Arrival(self.stack.clock.now, 0, letter["Body"], f"redrive-{self._ids:06d}")
            reply = handler(sqs_event(replay), FakeContext())
            assert reply == {"batchItemFailures": []}, f"a redriven message failed again: {letter['Body'][:200]}"


def shuffled_delivery(
    delivery: Delivery, events: Sequence[Event], start: datetime, copies: int = 3
) -> tuple[list[Arrival], datetime]:
    """Each event `copies` times: the first at a random moment of the first hour, every other copy
    after one of the `DELAYS` (so a duplicate arrives after other work, a day later, after the
    return window closed). Returns the arrivals and the end of the run."""
    arrivals: list[Arrival] = []
    for event in events:
        first = start + timedelta(seconds=delivery.rng.randrange(3600))
        arrivals.append(delivery.message(event, first))
        for _ in range(copies - 1):
            arrivals.append(delivery.message(event, first + delivery.rng.choice(DELAYS)))
    figures = delivery.figures
    figures.messages += len(arrivals)
    figures.duplicates += len(arrivals) - len(events)
    # A reorder: a message arriving right after one whose event happened later.
    time_of = {envelope(e): e.occurred_at for e in events}
    arrived = [time_of[a.body] for a in sorted(arrivals)]
    figures.reorders += sum(1 for before, after in zip(arrived, arrived[1:], strict=False) if before > after)
    return arrivals, start + max(DELAYS) + timedelta(days=1)


def clean_delivery(delivery: Delivery, events: Sequence[Event], start: datetime) -> list[Arrival]:
    """The oracle's delivery: every event once, in the order it happened."""
    ordered = sorted(events, key=lambda e: e.occurred_at)
    return [Arrival(start + timedelta(seconds=n), n, envelope(e), f"clean-{n:06d}") for n, e in enumerate(ordered)]


# What two runs must agree on


def outcome(services: Services, programs: Sequence[str]) -> dict[str, Any]:
    """Balances, entries and statement lines of every member, and the audit's findings."""
    entries, accounts, *_ = services.ledger_store.audit_records()
    related = {e.entry_id: e for e in entries}
    return {
        "balances": sorted(
            (a.program, a.member, a.available, a.pending, a.held, a.debt, a.merged_into)
            for a in accounts
            if a.program in programs
        ),
        "entries": [
            (
                e.program,
                e.entry_id,
                e.kind.value,
                e.member,
                e.related,
                [(p.account.value, p.owner, p.amount) for p in e.postings],
            )
            for e in entries
        ],
        # A statement line as the member reads it; its position and running balance follow arrival
        # by design (lines are in the order written). A line dated when it was written (a job's: an
        # activation, a parked refund it applied) is dated by the tick that ran it, later when a
        # fault failed the run before: its date is left out.
        "statements": {
            (e.program, e.entry_id): (
                e.member,
                s.date if e.event_time != e.recorded_at else None,
                s.title,
                s.detail,
                s.points,
                s.spendable,
            )
            for e in entries
            for s in (line(e, "en", related),)
        },
        "audit": audit_table(services.table).problems,
        "topped_up_after_activation": topped_up_after_activation(entries),
    }


def source_of(entry_id: str) -> str:
    """The entry a tier top-up (`tier:<earn>:<tier>`, and its `settle:` twin) adds to.

    An earn that arrives late re-rates the later earns it lifts with a top-up (docs/channels.md,
    "Tiers at earn time"), so one source event may have two entries where a delivery in time order
    has one: they are compared summed, per source event."""
    if entry_id.startswith("settle:tier:"):
        return "settle:" + source_of(entry_id.removeprefix("settle:"))
    if entry_id.startswith("tier:"):
        return entry_id.removeprefix("tier:").rsplit(":", 1)[0]
    return entry_id


def topped_up_after_activation(entries: Sequence[Entry]) -> set[str]:
    """The pending earns whose tier top-up was recorded after they had activated.

    An earn re-rated only once its pending time is over (the late earn that lifts it was delivered
    weeks late, e.g. redriven from the DLQ) gets its top-up as available points: the domain does not
    re-enact a pending time already over ("pending alongside the earn if it still is",
    shared/earning/rating.py). In time order the same points were pending with the earn and
    activated with it: the member ends with the same points available, split over other entries.
    A top-up posted available while its earn was still pending is not in this set (it would be a
    defect: points spendable before the return window closed)."""
    by_id = {(e.program, e.entry_id): e for e in entries}
    found = set()
    for top_up in entries:
        if not top_up.entry_id.startswith("tier:") or top_up.kind is not EntryKind.EARN:
            continue
        earn_id = source_of(top_up.entry_id)
        earned = by_id.get((top_up.program, earn_id))
        activated = by_id.get((top_up.program, f"settle:{earn_id}"))
        if (
            earned is not None
            and earned.kind is EntryKind.EARN_PENDING
            and activated is not None
            and activated.kind is EntryKind.ACTIVATE
            and activated.recorded_at <= top_up.recorded_at
        ):
            found.add(earn_id)
    return found


def _folded(result: dict[str, Any], rerated: set[str], active_first: set[str]) -> dict[str, set[Any]]:
    """Entries and statement lines summed per source event; for an earn in `active_first` its
    activation is summed with it (what moved between pending and available nets out)."""

    def source_key(program: str, entry_id: str) -> tuple[str, str]:
        source = source_of(entry_id)
        if source.startswith("settle:") and source.removeprefix("settle:") in active_first:
            source = source.removeprefix("settle:")
        return program, source

    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for program, entry_id, kind, member, related, postings in result["entries"]:
        key = source_key(program, entry_id)
        group = entries.setdefault(key, {"kind": "", "member": member, "related": "", "moved": Counter()})
        if entry_id == key[1]:
            group["kind"], group["related"] = kind, source_of(related)
        for account, owner, amount in postings:
            group["moved"][(account, owner)] += amount
    lines: dict[tuple[str, str], list[Any]] = {}
    for (program, entry_id), (member, date, title, detail, points, spendable) in result["statements"].items():
        key = source_key(program, entry_id)
        folded = lines.setdefault(key, [member, None, "", "", 0, 0])
        if entry_id == key[1]:
            # the rating's arithmetic differs where a top-up re-rated the earn: compared by its sums
            folded[1:4] = [date, title, "" if key[1] in rerated else detail]
        folded[4] += points
        folded[5] += spendable
    return {
        "balances": set(result["balances"]),
        "entries": {
            (*key, g["kind"], g["member"], g["related"], tuple(sorted((k, v) for k, v in g["moved"].items() if v)))
            for key, g in entries.items()
        },
        "statements": {(*key, *values) for key, values in lines.items()},
    }


def points_of(result: dict[str, Any]) -> int:
    return sum(available + pending + held for _, _, available, pending, held, _, _ in result["balances"])


def compare(got: dict[str, Any], want: dict[str, Any], seed: int) -> tuple[int, int]:
    """(points lost, points duplicated) against the oracle; fails naming the seed on any difference."""
    difference = points_of(got) - points_of(want)
    lost, duplicated = max(0, -difference), max(0, difference)
    rerated = {
        source_of(entry[1]) for result in (got, want) for entry in result["entries"] if entry[1].startswith("tier:")
    }
    active_first = got["topped_up_after_activation"] | want["topped_up_after_activation"]
    folded_got, folded_want = _folded(got, rerated, active_first), _folded(want, rerated, active_first)
    for part in ("balances", "entries", "statements"):
        missing = sorted(folded_want[part] - folded_got[part], key=repr)[:5]
        extra = sorted(folded_got[part] - folded_want[part], key=repr)[:5]
        assert not missing and not extra, (
            f"seed {seed} ({SEED_VARIABLE}={seed}): {part} differ from a clean delivery;"
            f" missing {missing}, extra {extra}"
        )
    assert got["audit"] == [], f"seed {seed}: the audit found {got['audit']}"
    assert want["audit"] == [], f"the clean delivery's audit found {want['audit']}"
    return lost, duplicated


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def channel_mix(rounds: int) -> list[Event]:
    """Every channel's sample events (Shopify order and refund, Square payment and refund, till rows
    and a till refund, partner file rows, an app event), `rounds` times over as distinct orders of
    the same members, each round 61 minutes before the next."""
    from shared.events.model import BehaviourEvent, IdentityKind, RefundEvent
    from tests.integration.channel_fixtures import channel_events

    found: list[Event] = []
    for n in range(rounds):
        for event in channel_events():
            update: dict[str, Any] = {
                "external_id": f"{event.external_id}-{n}" if n else event.external_id,
                "occurred_at": event.occurred_at - n * timedelta(minutes=61),
            }
            if isinstance(event, BehaviourEvent) and n and event.subject:
                # a review pays once per product: each round reviews another (docs/reliability.md)
                update["subject"] = f"{event.subject}-{n}"
            if isinstance(event, RefundEvent) and n:
                order = f"{event.order_external_id}-{n}"
                update["order_external_id"] = order
                if event.identity.kind is IdentityKind.ORDER:
                    update["identity"] = event.identity.model_copy(update={"value": order})
            found.append(event.model_copy(update=update))
    return found
