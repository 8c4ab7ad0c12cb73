"""Scheduled: release checkout holds whose lapse time has passed (`shared.jobs.holds`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions.services import services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    raw = event.get("scheduled_time")
    at = datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else datetime.now(UTC)
    released = services().hold_lapse_job.run(at)
    logger.info("lapsed holds released", extra={"released": released, "at": at.isoformat()})
    return {"released": released}
