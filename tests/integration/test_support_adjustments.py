"""Support's adjustments retried under their reference: the same adjustment lands once, whenever the
retry comes (the first's time is what it posted); the same reference with another adjustment is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from shared.errors import IdempotencyConflictError
from shared.ledger.audit import audit
from shared.ledger.commands import Earn
from shared.members.support import Agent, adjust
from shared.program.config import ProgramConfig

if TYPE_CHECKING:
    from functions.services import Services
    from tests.integration.conftest import Clock

PROGRAM, MEMBER = "desk", "ann"


@pytest.fixture
def desk(services: Services, clock: Clock) -> Services:
    services.programs.publish(ProgramConfig(program=PROGRAM, name="Desk"))
    welcome = Earn(
        program=PROGRAM,
        member=MEMBER,
        points=100,
        source="seed",
        external_id="w",
        reason="welcome",
        event_time=clock.now,
    )
    services.ledger.earn(welcome, at=clock.now)
    return services


def available(services: Services) -> int:
    return services.ledger.account(PROGRAM, MEMBER).available


@pytest.mark.parametrize("points", [25, -25])
def test_a_retried_adjustment_lands_once_however_late(desk: Services, clock: Clock, points: int) -> None:
    lee = Agent(id="agent-lee", reason="parcel arrived late")
    # Given an adjustment made under a reference
    first = adjust(desk.ledger, PROGRAM, MEMBER, points, lee, clock.now, "ref-1")
    # When it is sent again a minute later (the page timed out and the agent pressed Adjust again)
    clock.now += timedelta(minutes=1)
    again = adjust(desk.ledger, PROGRAM, MEMBER, points, lee, clock.now, "ref-1")
    # Then it is the same entry, and the points moved once
    assert again.entry_id == first.entry_id == "support:adjust:ref-1" and again.event_time == first.event_time
    assert available(desk) == 100 + points
    # And another adjustment under the same reference (other points, another reason) is refused, nothing moves
    for other in (Agent(id="agent-lee", reason="another reason"), Agent(id="agent-kim", reason=lee.reason)):
        with pytest.raises(IdempotencyConflictError):
            adjust(desk.ledger, PROGRAM, MEMBER, points, other, clock.now, "ref-1")
    with pytest.raises(IdempotencyConflictError):
        adjust(desk.ledger, PROGRAM, MEMBER, points * 2, lee, clock.now, "ref-1")
    assert available(desk) == 100 + points
    report = audit(*desk.ledger_store.ledger_records())
    assert report.ok, report.problems


def test_adjustments_without_a_reference_are_each_their_own(desk: Services, clock: Clock) -> None:
    lee = Agent(id="agent-lee", reason="goodwill")
    one = adjust(desk.ledger, PROGRAM, MEMBER, 10, lee, clock.now)
    two = adjust(desk.ledger, PROGRAM, MEMBER, 10, lee, clock.now)
    assert one.entry_id != two.entry_id and available(desk) == 120
