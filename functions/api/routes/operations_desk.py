"""The operations page of the console, and the file reports of every partner and till for operators.

`/console/operations` is a static page like the dashboard (`/console`): it asks for an admin key and
calls the guarded API with it (dead letters, channels' files, settlement, config, keys). Partners
read their own files under `/partners/...`; operators and auditors read any partner's or till's here.
"""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api import context
from functions.api.console_page import console_page
from functions.api.routes.partner_files import FileOut, FileReportOut, FilesOut, RejectedLine
from functions.services import services

router = APIGatewayRouter()

FeedKind = Annotated[Literal["partner", "till"], Path(description="`partner` or `till`: the channels that send files.")]
ChannelPath = Annotated[str, Path(min_length=1, max_length=100, description="The channel's id.")]
FileIdPath = Annotated[str, Path(min_length=1, max_length=40, description="The file's `file_id`.")]
Before = Annotated[str | None, Query(max_length=40, description="Files older than this `file_id` (the last one read).")]
Limit = Annotated[int, Query(ge=1, le=100, description="At most this many files.")]
FILES = "/admin/channels/<kind>/<channel>/files"


@router.get(FILES)
def channel_files(kind: FeedKind, channel: ChannelPath, before: Before = None, limit: Limit = 20) -> FilesOut:
    """List a partner's or till's files.

    Newest first: each file's status and how many rows were accepted and refused.
    """
    context.authorize(router)
    services().channels.get(kind, channel)
    files, more = services().channel_files.page(kind, channel, before, limit)
    return FilesOut(files=[FileOut.of(f) for f in files], next=files[-1].file_id if more and files else None)


@router.get(FILES + "/<file_id>")
def channel_file_report(kind: FeedKind, channel: ChannelPath, file_id: FileIdPath) -> FileReportOut:
    """Read a partner's or till's file report.

    The file's counts and, once processed, every refused line with its code and reason.
    """
    context.authorize(router)
    services().channels.get(kind, channel)
    record, report = services().channel_files.report(kind, channel, file_id)
    lines = None
    if report is not None:
        lines = [RejectedLine(line=r["line"], code=r["code"], reason=r["reason"]) for r in report.get("rejected", [])]
    return FileReportOut(file=FileOut.of(record), rejected_lines=lines)


@router.get("/console/operations", include_in_schema=False)
def operations_page() -> Response[str]:
    return console_page("console_operations.html")
