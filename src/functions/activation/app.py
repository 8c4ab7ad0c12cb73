"""Hourly: activate pending earns whose return window has closed, for every configured program."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from functions.wiring import ingest_service
from shared.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    # The scheduled time, not the clock: a late or replayed invocation activates the same set.
    scheduled = event.get("scheduled_time")
    now = datetime.fromisoformat(scheduled.replace("Z", "+00:00")) if scheduled else datetime.now(UTC)
    done: dict[str, int] = {}
    for program in filter(None, (p.strip() for p in get_settings().programs.split(","))):
        done[program] = len(ingest_service().activate_due(program, now))
        metrics.add_metric(name="PendingActivated", unit=MetricUnit.Count, value=done[program])
    return done
