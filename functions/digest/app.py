"""Hourly: every account head to the digests bucket (Object Lock), for `pointbridge audit` to hold the table against."""

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
    parse_job_input(event)  # a malformed schedule input is refused like every job's
    report = services().digest_job.run()
    logger.info("digest", extra=asdict(report))
    return asdict(report)


handler_loaded()
