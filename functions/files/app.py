"""S3 file drops -> one queue message per accepted row, a chunk at a time, and a report per file.

`till/[<feed>/]<file>.csv` is a till end-of-day file (feed `default` when the key has no folder);
`partners/<partner>/<file>.csv|.jsonl` a partner feed. The report goes to `reports/<key>.json`
(outside both prefixes, so writing it triggers nothing), whatever happens. A run that stops (a
crash, the timeout, SQS refusing) raises, so Lambda delivers the event again, and the next
invocation resumes from the chunks' checkpoints (shared.files.splitter).

Tuning (environment): FILES_PARALLEL_CHUNKS (chunks queued at once, default 4), FILES_TIME_MARGIN_S
(no new chunk starts with less than this left, default 60), FILES_CHUNK_LINES (lines a chunk, 500).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source

from functions import handler_loaded
from functions.services import services
from integrations.batch import CHUNK_LINES
from integrations.errors import UnknownSourceError
from integrations.files import feed_of, file_reader
from shared.files.splitter import FileNotFinishedError, SplitterLimits

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()


def limits() -> SplitterLimits:
    return SplitterLimits(
        parallel_chunks=int(os.environ.get("FILES_PARALLEL_CHUNKS", "4")),
        time_margin_s=float(os.environ.get("FILES_TIME_MARGIN_S", "60")),
    )


def split(bucket: str, key: str, now: datetime, context: Any) -> dict[str, Any]:
    chunk_lines = int(os.environ.get("FILES_CHUNK_LINES", str(CHUNK_LINES)))
    splitter = services().file_splitter(bucket, limits())
    remaining = getattr(context, "get_remaining_time_in_millis", None)

    def time_left() -> float:
        return remaining() / 1000 if remaining is not None else float("inf")

    summary = splitter.split(key, lambda: file_reader(key, services().sources, chunk_lines=chunk_lines), now, time_left)
    if summary.get("status") != "incomplete":
        try:
            kind, feed = feed_of(key)
        except UnknownSourceError:
            pass  # a key in no feed's folder: its report says so, and no channel lists it
        else:
            # Where the channel (a partner, through the API) reads what became of its file.
            services().channel_files.received(kind, feed, key, summary["accepted"], len(summary.get("rejected", [])))
    metrics.add_metric(name="RowsAccepted", unit=MetricUnit.Count, value=summary["accepted"])
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=len(summary.get("rejected", [])))
    return summary


@event_source(data_class=S3Event)
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    files: list[dict[str, Any]] = []
    unfinished: list[str] = []
    for record in event.records:
        try:
            files.append(split(event.bucket_name, unquote_plus(record.s3.get_object.key), now, context))
        except FileNotFinishedError as exc:
            logger.warning("file not finished; it resumes on redelivery", extra={"detail": exc.detail})
            unfinished.append(exc.detail)
    if unfinished:
        raise FileNotFinishedError("; ".join(unfinished))
    return {
        "files": [
            {
                "file": f["file"],
                "status": f["status"],
                "accepted": f["accepted"],
                "rejected": len(f.get("rejected", [])),
            }
            for f in files
        ]
    }


handler_loaded()
