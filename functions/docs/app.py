"""CloudFormation custom resource `DocsSite`: writes the API's documentation site to the docs bucket.

API Gateway serves `/docs`, its assets and `/openapi.json` from that bucket (template.yaml), so no
Lambda runs per page. The site is built from the code this function ships with, the same routes the
API function answers, so a deployment cannot serve a document older or newer than its API. On
Delete the objects are removed (CloudFormation cannot delete a bucket that still holds any).

CloudFormation waits for an answer at the request's `ResponseURL` (a presigned S3 PUT): every path,
failures included, answers, or the stack would hang for an hour before rolling back.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions import handler_loaded
from shared.infra import aws

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
PHYSICAL_ID = "docs-site"


def _site() -> dict[str, tuple[str, bytes]]:
    # The API's whole route table is imported only here, at deployment, never on a request path.
    from functions.api import openapi

    return openapi.site(openapi.served())


def publish(bucket: str) -> list[str]:
    """Writes every file of the site; returns their keys."""
    s3 = aws.s3()
    files = _site()
    for key, (content_type, body) in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    return sorted(files)


def unpublish(bucket: str) -> None:
    from functions.api import openapi

    s3 = aws.s3()
    names = [openapi.PAGE, openapi.DOCUMENT] + [openapi.SITE_PREFIX + n for n in openapi.SWAGGER_ASSETS]
    for key in names:
        s3.delete_object(Bucket=bucket, Key=key)


def answer(event: dict[str, Any], status: str, reason: str, data: dict[str, Any] | None = None) -> None:
    """CloudFormation's custom resource response, PUT to the presigned ResponseURL it gave."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_ID,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data or {},
        }
    ).encode()
    # The presigned URL was signed without a Content-Type: sending one would break its signature.
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - CloudFormation's https URL
        reply.read()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    kind = event.get("RequestType")
    bucket = str(event.get("ResourceProperties", {}).get("Bucket") or os.environ.get("DOCS_BUCKET", ""))
    try:
        if not bucket:
            raise ValueError("DocsSite needs a Bucket property (or DOCS_BUCKET)")
        if kind in ("Create", "Update"):
            keys = publish(bucket)
            logger.info("docs site written", extra={"bucket": bucket, "keys": keys})
            answer(event, "SUCCESS", f"wrote {len(keys)} objects", {"Objects": len(keys)})
        elif kind == "Delete":
            unpublish(bucket)
            answer(event, "SUCCESS", "removed")
        else:
            raise ValueError(f"unknown RequestType {kind!r}")
    except Exception as exc:  # every failure is answered, or CloudFormation waits an hour
        logger.exception("docs site failed")
        answer(event, "FAILED", f"{type(exc).__name__}: {exc}")


handler_loaded()
