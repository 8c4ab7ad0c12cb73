"""The proof at size (make soak): more rounds of every channel and more seeds, every crash point,
every concurrency scenario with more threads, every mutant; writes bench/results/reliability.json.

RELIABILITY_SOAK_SEEDS (default 3) is how many seeds each kind of delivery runs (3x with faults at
3%, and once through faults at 15%); each is about half a minute on one free core. The default
keeps `make soak` near a quarter of an hour on the shared 2-core machine (docs/reliability.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.reliability.concurrency import SCENARIOS
from tests.reliability.harness import seeds
from tests.reliability.mutants import MUTANTS, caught
from tests.reliability.proofs import Proven, crash_proof, delivery_proof, oracle

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "reliability.json"
ROUNDS = 3
THREADS = 12
SEEDS_VARIABLE = "RELIABILITY_SOAK_SEEDS"
DEFAULT_SEEDS = 3


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_the_proof_at_size_writes_reliability_json() -> None:
    total = Proven()
    want = oracle(ROUNDS)
    count = int(os.environ.get(SEEDS_VARIABLE, DEFAULT_SEEDS))
    for seed in seeds(count):
        total.add(delivery_proof(seed, ROUNDS, want=want, record=True))
    for seed in seeds(count):
        total.add(delivery_proof(seed, ROUNDS, copies=1, fault_rate=0.15, want=want, record=True))
    crash_points = crash_proof()
    concurrent_runs = 0
    for run in SCENARIOS.values():
        run(THREADS)
        concurrent_runs += THREADS
    missed = {name: caught(name) for name in MUTANTS}
    figures = total.figures
    results = {
        "messages": figures.messages,
        "duplicates": figures.duplicates,
        "reorders": figures.reorders,
        "crash_points": sum(crash_points.values()),
        "faults_injected": sum(figures.faults.values()),
        "concurrent_runs": concurrent_runs,
        "points_lost": total.points_lost,
        "points_duplicated": total.points_duplicated,
        "audit_failures": total.audit_failures,
        "dlq_without_reason": figures.dlq_without_reason,
        "mutants_caught": sum(1 for failure in missed.values() if failure),
        "mutants_total": len(MUTANTS),
    }
    print(json.dumps(results, indent=2))
    print("faults by kind:", dict(figures.faults), "crash points by operation:", crash_points)
    print("mutants:", missed)
    print("differences from the clean delivery:", total.failures)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    assert not total.failures, total.failures
    assert results["mutants_caught"] == results["mutants_total"], missed
    assert (total.points_lost, total.points_duplicated, total.audit_failures, figures.dlq_without_reason) == (
        0,
        0,
        0,
        0,
    )
