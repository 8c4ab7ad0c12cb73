"""Partners' files: an upload URL for a new feed file, then what became of each file's rows.

The URL is S3's own (a presigned PUT), good for one key under the partner's folder, for 15 minutes:
the partner sends the file straight to the files bucket, and the file splitter reads it as it reads
any feed (docs/channels.md, "Partner feeds"). Its report lists every refused line with its reason.
"""

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field

from functions.api import context
from functions.api.routes.exchange import PartnerPath
from functions.api.routes.members import ProgramPath
from functions.services import services
from integrations.errors import ChannelDisabledError
from shared.channels.records import FileRecord
from shared.errors import ForbiddenError
from shared.model import Model

router = APIGatewayRouter()

FilePath = Annotated[str, Path(min_length=1, max_length=40, description="The file's `file_id`.")]
Before = Annotated[str | None, Query(max_length=40, description="Files older than this `file_id` (the last one read).")]
Limit = Annotated[int, Query(ge=1, le=100, description="At most this many files.")]
FILES = "/partners/<partner>/programs/<program>/files"


class FileIn(Model):
    """The file about to be sent."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=106,
        description="The file's name: letters, digits, `.`, `_` or `-`, ending `.csv` (CSV), or `.jsonl` or "
        "`.ndjson` (JSON lines).",
    )
    content_type: Literal["text/csv", "application/x-ndjson", "application/jsonl"] = Field(
        "text/csv", description="The Content-Type the upload must carry (the URL is signed with it)."
    )


class Upload(Model):
    """How to send the file: one HTTP request, as given."""

    url: str = Field(description="S3's presigned URL for this one file.")
    method: str = Field(description="Always `PUT`.")
    headers: dict[str, str] = Field(description="Headers the request must carry exactly (the URL is signed with them).")


class UploadOut(Model):
    """Where to send a new file, and where its report will be."""

    file_id: str = Field(description="The file's id: its report is at `.../files/{file_id}`.")
    key: str = Field(description="Its key in the files bucket.")
    upload: Upload = Field(description="The request that sends it.")
    expires_at: datetime = Field(description="The URL works until then; ask for another after.")


class FileOut(Model):
    """A file and what became of its rows."""

    file_id: str = Field(description="The file's id (sorts by when it was announced or received).")
    name: str = Field(description="Its name.")
    status: str = Field(description="`awaiting_upload` (no file came yet) or `processed`.")
    created_at: datetime = Field(description="When the upload URL was issued, or the file received.")
    processed_at: datetime | None = Field(description="When its rows were read.")
    accepted: int | None = Field(description="Rows queued for posting (each posts once, whatever the retries).")
    rejected: int | None = Field(description="Rows refused (the report says which and why).")

    @classmethod
    def of(cls, record: FileRecord) -> "FileOut":
        return cls(
            file_id=record.file_id,
            name=record.name,
            status=record.status,
            created_at=record.created_at,
            processed_at=record.processed_at,
            accepted=record.accepted,
            rejected=record.rejected,
        )


class FilesOut(Model):
    """A page of the partner's files, newest first."""

    files: list[FileOut] = Field(description="The files, newest first.")
    next: str | None = Field(description="Pass as `before` for the next page; null on the last.")


class RejectedLine(Model):
    """A refused row."""

    line: int = Field(description="The line it starts on (1: the header; 0: the whole file).")
    code: str = Field(description="Why, as a code (docs/channels.md, Errors).")
    reason: str = Field(description="Why, for people.")


class FileReportOut(Model):
    """A file, and once processed, every line it refused."""

    file: FileOut = Field(description="The file.")
    rejected_lines: list[RejectedLine] | None = Field(description="Every refused line; null until processed.")


def _partner_channel(partner: str, program: str) -> None:
    """The partner's files are read by its channel record, which must feed this program."""
    record = services().channels.get("partner", partner)
    if record.program != program:
        raise ForbiddenError(f"partner {partner}'s files feed {record.program}, not {program}")
    if record.status != "active":
        raise ChannelDisabledError(f"partner {partner}'s channel is disabled", source=partner)


@router.post(FILES, status_code=201)
def upload_file(partner: PartnerPath, program: ProgramPath, body: FileIn) -> UploadOut:
    """Ask for an upload URL.

    A URL for one new file under the partner's folder of the files bucket, for 15 minutes. Send the
    file with the request described; its rows are read within seconds and its report is at
    `.../files/{file_id}`.
    """
    context.authorize(router, program=program, partner=partner)
    _partner_channel(partner, program)
    record, url, expires_at = services().channel_files.announce(partner, body.name, body.content_type)
    return UploadOut(
        file_id=record.file_id,
        key=record.key,
        upload=Upload(url=url, method="PUT", headers={"Content-Type": body.content_type}),
        expires_at=expires_at,
    )


@router.get(FILES)
def list_files(partner: PartnerPath, program: ProgramPath, before: Before = None, limit: Limit = 20) -> FilesOut:
    """List the partner's files.

    Newest first: each file's status and how many rows were accepted and refused.
    """
    context.authorize(router, program=program, partner=partner)
    _partner_channel(partner, program)
    files, more = services().channel_files.page("partner", partner, before, limit)
    return FilesOut(files=[FileOut.of(f) for f in files], next=files[-1].file_id if more and files else None)


@router.get(FILES + "/<file_id>")
def file_report(partner: PartnerPath, program: ProgramPath, file_id: FilePath) -> FileReportOut:
    """Read a file's report.

    The file's counts and, once processed, every refused line with its code and reason.
    """
    context.authorize(router, program=program, partner=partner)
    _partner_channel(partner, program)
    record, report = services().channel_files.report("partner", partner, file_id)
    lines = None
    if report is not None:
        lines = [RejectedLine(line=r["line"], code=r["code"], reason=r["reason"]) for r in report.get("rejected", [])]
    return FileReportOut(file=FileOut.of(record), rejected_lines=lines)
