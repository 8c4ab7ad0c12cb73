"""The proofs, as functions of a size and a seed: the tests run them small, the soak large, and the
negative controls run them against each mutant. Each fails with an AssertionError naming its seed
and returns what it counted."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import boto3
from moto import mock_aws

from shared.program.config import ProgramConfig, Tier
from tests.integration.channel_fixtures import acme
from tests.integration.ingest_support import Clock
from tests.reliability.harness import (
    DELAYS,
    Delivery,
    Figures,
    at,
    channel_mix,
    clean_delivery,
    compare,
    outcome,
    shuffled_delivery,
    stack,
)
from tests.reliability.stories import STORIES
from tests.support.crash import crash_points

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shared.earning.core import Event

START = at(27)
# Pending for two weeks (activation, voids and claw-backs by refunds), tiers (late earns re-rate).
TIERS = (
    Tier(name="member", rank=0),
    Tier(name="silver", rank=1, threshold=Decimal(150), multiplier=Decimal("1.5")),
)


def program() -> ProgramConfig:
    return acme().model_copy(update={"return_window_days": 14, "tiers": TIERS})


@dataclass
class Proven:
    figures: Figures = field(default_factory=Figures)
    points_lost: int = 0
    points_duplicated: int = 0
    audit_failures: int = 0
    runs: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: Proven) -> None:
        self.figures.add(other.figures)
        self.points_lost += other.points_lost
        self.points_duplicated += other.points_duplicated
        self.audit_failures += other.audit_failures
        self.runs += other.runs
        self.failures += other.failures


def tick_of(rounds: int) -> timedelta:
    """Jobs every 12 simulated hours at size; daily for the small size (a job run costs most of a run)."""
    return timedelta(hours=12) if rounds > 1 else timedelta(days=1)


def _deliver(events: list[Event], seed: int, *, copies: int, fault_rate: float) -> tuple[dict[str, object], Figures]:
    config = program()
    with stack([config], START, seed, fault_rate) as s:
        delivery = Delivery(s, [config.program], random.Random(seed), tick_of(len(events) // BATCH))
        if copies:
            arrivals, until = shuffled_delivery(delivery, events, START, copies)
        else:
            arrivals, until = clean_delivery(delivery, events, START), START + _span()
        delivery.run(arrivals, until, faults=fault_rate > 0)
        return outcome(s.services, [config.program]), delivery.figures


BATCH = len(channel_mix(1))  # events in one round of every channel


def _span() -> timedelta:
    return max(DELAYS) + timedelta(days=1)


_ORACLES: dict[int, dict[str, object]] = {}


def oracle(rounds: int) -> dict[str, object]:
    """One clean delivery: every event once, in the order it happened, no faults (made once per size)."""
    if rounds not in _ORACLES:
        _ORACLES[rounds], _ = _deliver(channel_mix(rounds), 0, copies=0, fault_rate=0.0)
    return _ORACLES[rounds]


def delivery_proof(
    seed: int,
    rounds: int,
    *,
    copies: int = 3,
    fault_rate: float = 0.03,
    want: dict | None = None,
    record: bool = False,
) -> Proven:
    """Every channel's events, `copies` times each in a random order with delayed duplicates and
    faults at the store, against the oracle. Fails on any difference, or with `record` notes it in
    `failures` (the soak counts them and still writes its figures)."""
    events = channel_mix(rounds)
    want = want if want is not None else oracle(rounds)
    got, figures = _deliver(events, seed, copies=copies, fault_rate=fault_rate)
    proven = Proven(figures=figures, runs=1)
    proven.audit_failures = len(got["audit"])  # type: ignore[arg-type]
    proven.points_lost, proven.points_duplicated = losses(got, want)
    try:
        compare(got, want, seed)
        assert figures.dlq_without_reason == 0, (
            f"seed {seed}: {figures.dlq_without_reason} dead letters without a reason"
        )
    except AssertionError as failure:
        proven.failures.append(str(failure))
        if not record:
            raise
    return proven


def losses(got: dict[str, object], want: dict[str, object]) -> tuple[int, int]:
    """(points lost, points duplicated): each member's points against the oracle's, summed."""

    def held(result: dict[str, object]) -> Counter[tuple[str, str]]:
        return Counter({(row[0], row[1]): row[2] + row[3] + row[4] for row in result["balances"]})  # type: ignore[attr-defined]

    mine, theirs = held(got), held(want)
    lost = sum(max(0, theirs[k] - mine[k]) for k in set(mine) | set(theirs))
    duplicated = sum(max(0, mine[k] - theirs[k]) for k in set(mine) | set(theirs))
    return lost, duplicated


def crash_proof(names: Sequence[str] | None = None) -> dict[str, int]:
    """A crash after every write of every multi-step operation (all of them, not a sample), then the
    next delivery or run: the crash-free outcome, a clean audit. Returns the crash points per story."""
    found: dict[str, int] = {}
    for name in names or STORIES:
        with mock_aws():
            client = boto3.client("dynamodb")
            clock = Clock()
            writes, expected = crash_points(client, clock, STORIES[name](clock))
        problems = expected[-1] if name != "link (merge of a provisional member)" else expected[-2]  # type: ignore[index]
        assert problems == [], f"{name}: the audit found {problems}"
        found[name] = writes
    return found
