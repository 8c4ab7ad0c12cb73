"""The oracle's one allowance beyond re-rating (harness.topped_up_after_activation), pinned on the
domain's behaviour: found by the soak (seed 2644818757, once through 15% faults), where a late
partner purchase was dead-lettered and redriven 31 simulated days later, after the later purchase
it lifts to silver had activated; its top-up was then available at once, where in time order the
same points were pending with the purchase and activated with it."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from shared.ledger.models import EntryKind
from tests.integration.test_arrival_order import NOW, THREE, config, delivered_late
from tests.reliability.harness import compare, outcome

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from functions.services import Services
    from shared.events.model import PurchaseEvent

WINDOW = config(return_window_days=30)
LATE = NOW + timedelta(days=35)  # past the window of all three purchases (the earliest's ends at +27 days)


@pytest.fixture
def dynamo() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb")


def delivered(dynamo: Any, first: Sequence[PurchaseEvent], late: Sequence[PurchaseEvent]) -> Services:
    """`first` on the day, the activation job after every window closed, then `late`, then the job again."""
    return delivered_late(dynamo, WINDOW, first, late, LATE)


def test_a_top_up_recorded_after_its_earn_activated_is_available_at_once_and_equals_time_order(dynamo: Any) -> None:
    in_time = delivered(dynamo, THREE, ())
    late = delivered(dynamo, THREE[1:], THREE[:1])  # the 300 that lifts o-3 to silver comes 5 weeks late

    topup = late.ledger_store.get_entry("demo", "tier:shop:o-3:silver")
    assert topup is not None and topup.kind is EntryKind.EARN  # o-3 had activated: no pending time re-enacted
    got, want = outcome(late, ["demo"]), outcome(in_time, ["demo"])
    assert got["topped_up_after_activation"] == {"shop:o-3"}
    assert want["topped_up_after_activation"] == set()
    assert compare(got, want, seed=0) == (0, 0)  # balances, entries and lines as in time order, audits clean
