"""Concurrent redemptions, holds, exchanges, merges and links on the same members, and concurrent
earns under a daily cap: nothing spent twice, nothing lost, the audit clean (tests/reliability/concurrency.py)."""

from __future__ import annotations

import pytest

from tests.reliability.concurrency import SCENARIOS


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_concurrent(name: str) -> None:
    SCENARIOS[name](8)
