"""Daily partner settlement: yesterday's net positions per partner, as JSON and CSV in S3."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from shared.exchange.settlement import SettlementJob
from shared.infra import aws
from shared.infra.settings import get_settings
from shared.jobs.expiry import parse_job_input
from shared.jobs.notify import services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    s = services()
    job = SettlementJob(s.ledger, s.programs, s.jobs, s3=aws.s3(), bucket=get_settings().statements_bucket)
    reports = job.run(parse_job_input(event))
    for report in reports:
        logger.info("settlement", extra=asdict(report))
    return {"reports": [asdict(r) for r in reports]}
