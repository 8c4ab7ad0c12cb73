"""Scheduled tier review: members whose qualification period (plus grace) has ended."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from shared.jobs.expiry import parse_job_input
from shared.jobs.notify import services
from shared.members.tiers import Tiers

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    s = services()
    reports = Tiers(s.ledger, s.programs, s.jobs).run(parse_job_input(event))
    for report in reports:
        logger.info("tier review", extra=asdict(report))
    return {"reports": [asdict(r) for r in reports]}
