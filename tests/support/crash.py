"""Crash points, enumerated: a real `Table` that lets the Nth write commit and then stops the process.

`CrashingTable` subclasses the one table every store writes through (over moto, never a fake of
boto3). It counts committed writes (PutItem, UpdateItem and TransactWriteItems that took effect;
a refused conditional write changes nothing and is not counted) and raises `Crash` right after the
Nth: the write is in the table, nothing after it ran, exactly as if the Lambda had been killed
there. `Crash` is a BaseException so that no `except Exception` in the code under test can swallow it.

`crash_points` runs a story once without a crash to count its writes, then once per write with a
crash after it on a fresh table, each time followed by the recovery (the next delivery or run, on
a fresh stack over the same table), and compares the outcome with the crash-free run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import count
from typing import TYPE_CHECKING, Any

from functions.services import Services
from shared.infra.table import Table
from tests.support.aws import create_table

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from shared.infra.keys import ItemKey

_TABLES = count(1)


class Crash(BaseException):
    """The process stopped here (after a write committed)."""


class CrashingTable(Table):
    def __init__(self, name: str, client: Any, crash_after: int | None) -> None:
        super().__init__(name, client)
        self.crash_after = crash_after
        self.writes = 0

    def _committed(self, what: str) -> None:
        self.writes += 1
        if self.crash_after is not None and self.writes >= self.crash_after:
            raise Crash(f"stopped after write {self.writes} ({what})")

    def put(self, values: dict[str, Any], condition: str | None = None, **kwargs: Any) -> bool:
        done = super().put(values, condition, **kwargs)
        if done:
            self._committed("PutItem")
        return done

    def update(self, key: ItemKey, expression: str, **kwargs: Any) -> dict[str, Any] | None:
        attributes = super().update(key, expression, **kwargs)
        if attributes is not None:
            self._committed("UpdateItem")
        return attributes

    def transact(self, items: Sequence[Any]) -> None:
        super().transact(items)
        self._committed("TransactWriteItems")


class CrashingServices(Services):
    """The composition root over a `CrashingTable`: every store of the stack writes through it."""

    def __init__(self, table_name: str, client: Any, clock: Callable[[], datetime], crash_after: int | None) -> None:
        super().__init__(
            table_name=table_name, client=client, clock=clock, sleep=lambda _: None, config_cache_seconds=0
        )
        self._crash_after = crash_after

    @cached_property
    def table(self) -> Table:
        return CrashingTable(self._table_name, self._client, self._crash_after)

    @property
    def writes(self) -> int:
        table = self.table
        assert isinstance(table, CrashingTable)
        return table.writes


def fresh_table(client: Any) -> str:
    name = f"crash-{next(_TABLES)}"
    create_table(client, name)
    return name


@dataclass(frozen=True)
class Story:
    """Given (`setup`), when (`operation`, which may be cut short), then the next delivery or run
    (`recover`); `outcome` is what must come out the same with or without a crash."""

    setup: Callable[[Services], None]
    operation: Callable[[Services], object]
    recover: Callable[[Services], object]
    outcome: Callable[[Services], object]


def crash_points(client: Any, clock: Callable[[], datetime], story: Story) -> tuple[int, object]:
    """Run `story` with a crash after every write of its operation; returns (writes, the outcome).

    Each crash point gets a fresh table; after the crash a fresh stack (a restarted process) runs
    the recovery twice (a second recovery must change nothing), and the outcome must equal the
    crash-free run's. Fails with the crash point's number when one differs.
    """
    name = fresh_table(client)
    clean = CrashingServices(name, client, clock, crash_after=None)
    story.setup(clean)
    before = clean.writes
    story.operation(clean)
    writes = clean.writes - before
    story.recover(clean)
    expected = story.outcome(clean)
    assert writes > 0, "the operation wrote nothing: there is no crash point to test"
    for point in range(1, writes + 1):
        name = fresh_table(client)
        given = CrashingServices(name, client, clock, crash_after=None)
        story.setup(given)
        crashing = CrashingServices(name, client, clock, crash_after=point)
        try:
            story.operation(crashing)
        except Crash:
            pass
        else:
            raise AssertionError(f"crash point {point} of {writes}: the operation finished without reaching it")
        restarted = CrashingServices(name, client, clock, crash_after=None)
        story.recover(restarted)
        story.recover(restarted)
        got = story.outcome(restarted)
        assert got == expected, f"crash after write {point} of {writes}: {got!r} != {expected!r}"
    return writes, expected
