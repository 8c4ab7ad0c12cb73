"""Negative controls (issue 12, item 4): the proofs fail on each mutant of the real code. Two quick
ones here; every mutant runs in the soak (test_soak.py)."""

from __future__ import annotations

import pytest

from tests.reliability.mutants import caught, expired_points_cannot_be_spent


def test_the_expiry_proof_holds_on_the_real_code() -> None:
    expired_points_cannot_be_spent()  # raises when it does not


@pytest.mark.parametrize("name", ["expiry not checked at redemption", "balance condition dropped"])
def test_the_suite_fails_on_the_mutant(name: str) -> None:
    failure = caught(name)
    assert failure, f"no proof failed with '{name}' in place"
    print(f"{name}: caught by {failure}")
