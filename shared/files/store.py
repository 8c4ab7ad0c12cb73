"""Where the file splitter keeps its progress (the table) and reads files and writes reports (S3).

One run item per file (its S3 key and ETag), one checkpoint item per chunk: `sending` before the
chunk's events are queued, `done` (with what the chunk gave: events, refused lines) after. A run
that stops anywhere resumes from these: `done` chunks are never queued again. Keys in
`shared.infra.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.infra import keys

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from shared.infra.table import Table

# A refused line's reason kept in a checkpoint: enough to act on, and 500 of them fit one item.
MAX_REASON_CHARS = 300
READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class Refused:
    line: int
    code: str
    reason: str


@dataclass(frozen=True)
class ChunkCheckpoint:
    index: int
    status: str  # "sending" (queued in part, perhaps) or "done"
    attempts: int
    events: list[str] = field(default_factory=list)  # "<source>:<external id>" of each queued event
    refused: list[Refused] = field(default_factory=list)


@dataclass(frozen=True)
class FileRun:
    file_id: str
    key: str
    etag: str
    chunks: int
    invocations: int
    status: str  # "running", "complete", "incomplete", "refused", "failed"
    started_at: str
    finished_at: str = ""


class FileRuns:
    """The splitter's runs and chunk checkpoints in the points table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def begin(self, file_id: str, key: str, etag: str, chunks: int, now: str) -> FileRun:
        """This invocation's run of the file: a first one, or the next of a run that stopped."""
        found = self.table.get(keys.file_run(file_id))
        run = FileRun(
            file_id=file_id,
            key=key,
            etag=etag,
            chunks=chunks,
            invocations=int(found["invocations"]) + 1 if found else 1,
            status="running",
            started_at=str(found["started_at"]) if found else now,
        )
        self.save(run)
        return run

    def save(self, run: FileRun) -> None:
        key = keys.file_run(run.file_id)
        self.table.put(
            {
                "PK": key.pk,
                "SK": key.sk,
                "type": "file_run",
                "key": run.key,
                "etag": run.etag,
                "chunks": run.chunks,
                "invocations": run.invocations,
                "status": run.status,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
            }
        )

    def run(self, file_id: str) -> FileRun | None:
        item = self.table.get(keys.file_run(file_id))
        if item is None:
            return None
        return FileRun(
            file_id=file_id,
            key=str(item["key"]),
            etag=str(item["etag"]),
            chunks=int(item["chunks"]),
            invocations=int(item["invocations"]),
            status=str(item["status"]),
            started_at=str(item["started_at"]),
            finished_at=str(item.get("finished_at", "")),
        )

    def checkpoints(self, file_id: str) -> dict[int, ChunkCheckpoint]:
        found: dict[int, ChunkCheckpoint] = {}
        for item in self.table.partition(keys.file_pk(file_id), keys.FILE_CHUNK_PREFIX):
            found[int(item["index"])] = ChunkCheckpoint(
                index=int(item["index"]),
                status=str(item["status"]),
                attempts=int(item["attempts"]),
                events=list(item.get("events", [])),
                refused=[Refused(int(r[0]), str(r[1]), str(r[2])) for r in item.get("refused", [])],
            )
        return found

    def mark(self, file_id: str, checkpoint: ChunkCheckpoint) -> None:
        key = keys.file_chunk(file_id, checkpoint.index)
        self.table.put(
            {
                "PK": key.pk,
                "SK": key.sk,
                "type": "file_chunk",
                "index": checkpoint.index,
                "status": checkpoint.status,
                "attempts": checkpoint.attempts,
                "events": checkpoint.events,
                "refused": [[r.line, r.code, r.reason[:MAX_REASON_CHARS]] for r in checkpoint.refused],
            }
        )


class FileBucket:
    """One bucket's dropped files and their reports (the S3 client is injected, built lazily)."""

    def __init__(self, bucket: str, client: Callable[[], Any]) -> None:
        self.bucket, self._client = bucket, client

    def etag(self, key: str) -> str:
        return str(self._client().head_object(Bucket=self.bucket, Key=key)["ETag"]).strip('"')

    def blocks(self, key: str, etag: str) -> Iterator[bytes]:
        """The file's bytes in blocks, from the version whose ETag is `etag` (S3 refuses another)."""
        body = self._client().get_object(Bucket=self.bucket, Key=key, IfMatch=etag)["Body"]
        yield from body.iter_chunks(READ_BLOCK)

    def read(self, key: str, etag: str, start: int, end: int) -> bytes:
        """Bytes start..end (end excluded) of the file's version `etag`."""
        if end <= start:
            return b""
        reply = self._client().get_object(Bucket=self.bucket, Key=key, IfMatch=etag, Range=f"bytes={start}-{end - 1}")
        return bytes(reply["Body"].read())

    def put_report(self, key: str, body: bytes) -> None:
        self._client().put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
