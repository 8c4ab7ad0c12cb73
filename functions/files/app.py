"""S3 file drops -> one queue message per accepted row, plus a report of every refused line.

`till/[<feed>/]<file>.csv` is a till end-of-day file (feed `default` when the key has no folder);
`partners/<partner>/<file>.csv|.jsonl` a partner feed. The report goes to `reports/<key>.json`
(outside both prefixes, so writing it triggers nothing). Re-processing a file is harmless: each
row's event is keyed by its own ids, so ingest posts it once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source

from functions.services import services
from integrations.errors import UnknownSourceError
from integrations.partner_feed import parse_partner_feed
from integrations.till_csv import parse_till_csv
from shared.infra import aws

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from integrations.report import BatchReport

logger = Logger()
metrics = Metrics()


def channel_of(key: str) -> tuple[str, str]:
    """The channel a file belongs to, by its folder: (`till`, feed) or (`partner`, partner id)."""
    parts = key.split("/")
    if parts[0] == "till":
        return "till", parts[1] if len(parts) > 2 else "default"
    if parts[0] == "partners" and len(parts) > 2:
        return "partner", parts[1]
    raise UnknownSourceError(f"no feed is configured for {key[:100]!r}")


def read_file(key: str, raw: bytes, now: datetime) -> BatchReport:
    kind, channel_id = channel_of(key)
    if kind == "till":
        return parse_till_csv(raw, services().sources.till_config(channel_id), now=now)
    jsonl = key.endswith((".jsonl", ".ndjson"))
    return parse_partner_feed(raw, services().sources.partner(channel_id), now=now, fmt="jsonl" if jsonl else "csv")


def split(bucket: str, key: str, now: datetime) -> dict[str, Any]:
    raw = aws.s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    report = read_file(key, raw, now)
    queued = services().ingest_queue.send(report.accepted)
    summary = {
        "file": key,
        "processed_at": now.isoformat(),
        "accepted": queued,
        "rejected": [{"line": r.line, "code": r.code, "reason": r.reason} for r in report.rejected],
        "events": [f"{e.source}:{e.external_id}" for e in report.accepted],
    }
    aws.s3().put_object(
        Bucket=bucket,
        Key=f"reports/{key}.json",
        Body=json.dumps(summary, indent=1).encode(),
        ContentType="application/json",
    )
    # Where the channel (a partner, through the API) reads what became of its file.
    services().channel_files.received(*channel_of(key), key, queued, len(report.rejected))
    metrics.add_metric(name="RowsAccepted", unit=MetricUnit.Count, value=queued)
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=len(report.rejected))
    return summary


@event_source(data_class=S3Event)
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    files = [split(event.bucket_name, unquote_plus(record.s3.get_object.key), now) for record in event.records]
    return {"files": [{"file": f["file"], "accepted": f["accepted"], "rejected": len(f["rejected"])} for f in files]}
