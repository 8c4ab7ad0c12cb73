"""Scheduled tier review: members whose qualification period (plus grace) has ended."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions import handler_loaded
from functions.services import services
from shared.jobs.walk import parse_job_input

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reports = services().tier_review_job.run(parse_job_input(event))
    for report in reports:
        logger.info("tier review", extra=asdict(report))
    return {"reports": [asdict(r) for r in reports]}


handler_loaded()
