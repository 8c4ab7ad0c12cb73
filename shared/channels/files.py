"""Files delivered on a channel: where a partner puts one, and what is kept about each.

A partner asks for an upload URL; the file goes to `partners/<partner>/<file id>/<name>` in the
files bucket, the URL good for that one key only, for `UPLOAD_SECONDS`. The file splitter reads it
(its rows become ingest messages), writes its report to `reports/<key>.json` and records the
counts under the file's id, where the partner reads them. A file an operator drops without an
upload URL is recorded the same way, under an id made from when it was read and its key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.channels.records import FileRecord
from shared.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.channels.store import ChannelItems, FileObjects

UPLOAD_SECONDS = 900
# An upload URL that was never used: its record goes (TTL) a day after the URL expired.
UNUSED_KEPT = timedelta(days=1)
AWAITING, PROCESSED = "awaiting_upload", "processed"
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(csv|jsonl|ndjson)$")
_FILE_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")


class UnknownFileError(NotFoundError):
    """Raised when a file id names no file of the channel."""

    code = "unknown_file"


def new_file_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def partner_file_key(partner: str, file_id: str, name: str) -> str:
    return f"partners/{partner}/{file_id}/{name}"


def file_id_for(key: str, now: datetime) -> str:
    """The id a received file is recorded under: the one in its key when an upload URL put it there."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "partners" and _FILE_ID.fullmatch(parts[2]):
        return parts[2]
    return f"{now:%Y%m%dT%H%M%SZ}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def report_key(key: str) -> str:
    return f"reports/{key}.json"


class ChannelFiles:
    def __init__(self, items: ChannelItems, objects: FileObjects, clock: Callable[[], datetime]) -> None:
        self._items, self._objects, self._clock = items, objects, clock

    def announce(self, partner: str, name: str, content_type: str) -> tuple[FileRecord, str, datetime]:
        """An upload URL for one new file of the partner: (its record, the URL, when the URL expires)."""
        if not FILE_NAME.fullmatch(name):
            raise InvalidInputError(
                "name must be 1-100 letters, digits, '.', '_' or '-', ending .csv, .jsonl or .ndjson", field="name"
            )
        now = self._clock()
        file_id = new_file_id(now)
        key = partner_file_key(partner, file_id, name)
        expires_at = now + timedelta(seconds=UPLOAD_SECONDS)
        record = FileRecord(file_id=file_id, name=name, key=key, status=AWAITING, created_at=now)
        self._items.expect_file("partner", partner, record, expires=expires_at + UNUSED_KEPT)
        url = self._objects.upload_url(key, content_type, UPLOAD_SECONDS)
        return record, url, expires_at

    def received(self, kind: str, channel_id: str, key: str, accepted: int, rejected: int) -> FileRecord:
        """What became of a file's rows, recorded under its id (the file splitter, after its report)."""
        now = self._clock()
        record = FileRecord(
            file_id=file_id_for(key, now),
            name=key.rsplit("/", 1)[-1],
            key=key,
            status=PROCESSED,
            created_at=now,
            processed_at=now,
            accepted=accepted,
            rejected=rejected,
        )
        self._items.file_processed(kind, channel_id, record)
        return record

    def page(self, kind: str, channel_id: str, before: str | None, limit: int) -> tuple[list[FileRecord], bool]:
        return self._items.files_page(kind, channel_id, before, limit)

    def report(self, kind: str, channel_id: str, file_id: str) -> tuple[FileRecord, dict[str, Any] | None]:
        """The file's record and, once processed, its report (every refused line with its reason)."""
        record = self._items.file(kind, channel_id, file_id)
        if record is None:
            raise UnknownFileError(f"no file {file_id[:40]!r} from {kind} {channel_id}")
        if record.status != PROCESSED:
            return record, None
        return record, self._objects.report(report_key(record.key))
