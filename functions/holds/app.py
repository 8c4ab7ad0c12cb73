"""Scheduled: release holds whose lapse time has passed, from where the last run stopped (`shared.jobs.holds`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions import handler_loaded
from functions.services import services
from shared.jobs.holds import released_total
from shared.jobs.walk import parse_job_input

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reports = services().hold_lapse_job.run(parse_job_input(event))
    for report in reports:
        logger.info("hold lapse run", extra=asdict(report))
    return {"released": released_total(reports), "reports": [asdict(r) for r in reports]}


handler_loaded()
