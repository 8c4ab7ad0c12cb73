"""A small world for job tests: a moto table, a program published at a fixed time, a ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.ledger.audit import audit
from shared.ledger.commands import Authorise, Earn, Spend
from shared.ledger.models import Account
from shared.program.config import ProgramConfig

if TYPE_CHECKING:
    from collections.abc import Sequence

    from functions.services import Services
    from shared.jobs.store import JobItems
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from shared.program.store import ProgramRepository

PUBLISHED = datetime(2025, 12, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = PUBLISHED) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FakeNotifier:
    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None:
        self.sent.append((detail_type, event_id, detail))

    def publish_all(self, events: Sequence[tuple[str, str, dict[str, Any]]]) -> set[str]:
        self.sent.extend(events)
        return {event_id for _, event_id, _ in events}


@dataclass
class World:
    services: Services
    store: DynamoLedgerStore
    programs: ProgramRepository
    ledger: Ledger
    jobs: JobItems
    clock: Clock

    def earn(
        self,
        member: str,
        points: int,
        ext: str,
        at: datetime,
        expires_at: datetime | None = None,
        written_at: datetime | None = None,  # when it reaches the ledger, if later than it happened
    ) -> str:
        cmd = Earn(
            program="demo",
            member=member,
            points=points,
            source="shop",
            external_id=ext,
            reason="order",
            event_time=at,
            expires_at=expires_at,
        )
        return self.ledger.earn(cmd, at=written_at or at).entry_id

    def spend(self, member: str, points: int, ext: str, at: datetime) -> Any:
        cmd = Spend(program="demo", member=member, points=points, source="web", external_id=ext, reason="reward")
        return self.ledger.spend(cmd, at=at)

    def hold(self, member: str, points: int, ext: str, at: datetime, lapses_at: datetime) -> Any:
        """A checkout hold (authorise) taken at `at`."""
        cmd = Authorise(
            program="demo",
            member=member,
            points=points,
            source="web",
            external_id=ext,
            reason="checkout",
            lapses_at=lapses_at,
        )
        return self.ledger.authorise(cmd, at=at)

    def breakage(self, program: str = "demo") -> int:
        report = audit(*self.store.ledger_records())
        assert report.ok, report.problems
        return report.totals.get(program, {}).get(str(Account.BREAKAGE), 0)

    def items(self) -> list[dict[str, Any]]:
        return list(self.services.table.scan())


def make_world(services: Services, config: ProgramConfig | None = None) -> World:
    """The services with their clock at PUBLISHED, and the program published then."""
    clock = Clock()
    services.clock = clock
    services.programs.publish(config or ProgramConfig(program="demo", name="Demo rewards"))
    return World(services, services.ledger_store, services.programs, services.ledger, services.job_items, clock)
