"""Hourly: activate pending earns whose return window has closed, in every live program."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from functions import handler_loaded
from functions.services import services
from shared.jobs.walk import parse_job_input

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    # The scheduled time (or an operator's `now`), not the clock: a late or replayed invocation
    # activates the same set.
    request = parse_job_input(event)
    s = services()
    at = request.moment(s.now())  # a "now" ahead of the clock is refused unless it says it simulates
    programs = [request.program] if request.program else s.programs.live_programs()
    done: dict[str, int] = {}
    for program in programs:
        done[program] = len(s.ingest.activate_due(program, at))
        metrics.add_metric(name="PendingActivated", unit=MetricUnit.Count, value=done[program])
    return done


handler_loaded()
