"""Crash points enumerated, not sampled: every step boundary of every multi-step operation (activation
with parked refunds, a void by refund and its referral, link and merge, exchange, transfer confirm,
hold capture, expiry, a held gift) gets a crash, then the next delivery or run completes it exactly
once (tests/reliability/stories.py)."""

from __future__ import annotations

import pytest

from tests.reliability.proofs import crash_proof
from tests.reliability.stories import STORIES


@pytest.mark.parametrize("name", list(STORIES))
def test_every_step_boundary_of(name: str) -> None:
    found = crash_proof([name])
    assert found[name] >= 1
