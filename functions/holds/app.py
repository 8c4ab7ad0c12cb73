"""Scheduled: release checkout holds whose lapse time has passed.

Reads GSI1 `H#<program>#<date>` for the days up to the scheduled time (today and yesterday,
so a run that straddles midnight or follows a missed run still finds its holds). Safe to re-run:
a hold already captured or released is gone from the index, and a release is idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from shared.errors import AlreadySettledError, UnknownEntryError
from shared.ledger.commands import Release
from shared.ledger.ledger import Ledger
from shared.ledger.store import ApiItems, DynamoStore, ProgramRepository

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
LOOKBACK_DAYS = 2
LAPSED = "checkout hold lapsed"


@cache
def _store() -> DynamoStore:
    return DynamoStore()


def release_lapsed(store: DynamoStore, at: datetime) -> int:
    ledger = Ledger(store, ProgramRepository(store))
    items = ApiItems(store)
    until = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    released = 0
    for program in items.programs():
        for back in range(LOOKBACK_DAYS):
            day = (at - timedelta(days=back)).strftime("%Y-%m-%d")
            for hold in items.due_holds(program, day, until):
                if hold.lapses_at > at:
                    continue
                try:
                    cmd = Release(program=program, member=hold.member, hold_id=hold.hold_id, reason=LAPSED)
                    ledger.release(cmd, at=at)
                except (AlreadySettledError, UnknownEntryError):
                    continue  # captured or released between the read and now
                released += 1
    return released


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    raw = event.get("scheduled_time")
    at = datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else datetime.now(UTC)
    released = release_lapsed(_store(), at)
    logger.info("lapsed holds released", extra={"released": released, "at": at.isoformat()})
    return {"released": released}
