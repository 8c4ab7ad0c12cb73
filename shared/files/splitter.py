"""The file splitter: a dropped file, a chunk at a time, into one ingest message per good row.

A file is cut at row boundaries (the reader's `layout`), and its chunks are parsed and queued in
parallel, each behind a checkpoint in the table: `sending` before its events are queued, `done`
after. A run stopped anywhere (a crash, the function's timeout, SQS refusing) is resumed by the
next invocation for the same file (S3's retry of the event, or the same bytes dropped again): the
`done` chunks are skipped, a chunk caught `sending` is queued again - ingest posts each event once
by its own ids, so that costs nothing - and nothing starts again from row 1.

The report (`reports/<key>.json`) is written whatever happens: `complete`, `incomplete` (stopped;
resumed by the next invocation), `refused` (the file as a whole: no header, not UTF-8, no feed
configured) or `failed` (an error this code did not expect). Refused lines carry their physical
line number and why.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import InvalidInputError, PointbridgeError
from shared.files.store import ChunkCheckpoint, Refused

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from datetime import datetime

    from shared.earning.core import Event
    from shared.files.store import FileBucket, FileRun, FileRuns

# UTF-16 and UTF-32 files start with a byte order mark; naming it says what to do about the file.
_WIDE_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


class FileNotFinishedError(PointbridgeError):
    """The run stopped before every chunk was queued; raised so that the event is delivered again."""

    code = "file_not_finished"
    status = 503


class Span(Protocol):
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def first_line(self) -> int: ...


class Layout(Protocol):
    @property
    def header(self) -> str: ...
    @property
    def header_at(self) -> int: ...
    @property
    def spans(self) -> Sequence[Span]: ...


class RefusedRow(Protocol):
    @property
    def line(self) -> int: ...
    @property
    def code(self) -> str: ...
    @property
    def reason(self) -> str: ...


class ChunkReport(Protocol):
    @property
    def accepted(self) -> Sequence[Event]: ...
    @property
    def rejected(self) -> Sequence[RefusedRow]: ...


class ChunkReader(Protocol):
    """What an adapter offers the splitter (integrations.files.FileReader)."""

    @property
    def fmt(self) -> str: ...

    def layout(self, blocks: Iterable[bytes]) -> Layout: ...

    def parse(self, header: str, body: bytes, first_line: int, header_at: int, now: datetime) -> ChunkReport: ...


@dataclass(frozen=True)
class SplitterLimits:
    parallel_chunks: int = 4  # chunks parsed and queued at once
    # A new chunk starts only while more than this is left of the invocation (once `parallel_chunks`
    # have started: every invocation moves the file on).
    time_margin_s: float = 60.0


def file_id(bucket: str, key: str, etag: str) -> str:
    """One run per version of a file: the same bytes dropped again resume it, new bytes start anew."""
    return hashlib.sha256(f"{bucket}\n{key}\n{etag}".encode()).hexdigest()[:32]


def report_key(key: str) -> str:
    return f"reports/{key}.json"


@dataclass
class FileSplitter:
    files: FileBucket
    runs: FileRuns
    send: Callable[[Sequence[Event]], int]
    limits: SplitterLimits = SplitterLimits()

    def split(
        self,
        key: str,
        reader: Callable[[], ChunkReader],
        now: datetime,
        time_left: Callable[[], float],
    ) -> dict[str, Any]:
        """Queue the file's good rows and write its report; raises FileNotFinishedError if stopped."""
        summary: dict[str, Any] = {"file": key, "processed_at": now.isoformat()}
        try:
            etag = self.files.etag(key)
        except Exception as exc:
            self._write(key, {**summary, **_failed("failed", f"the file could not be read: {exc}")})
            raise
        run_id = file_id(self.files.bucket, key, etag)
        summary |= {"run": run_id}
        try:
            chosen = reader()
            head = bytearray()  # the first bytes, for a byte order mark

            def blocks() -> Iterator[bytes]:
                for block in self.files.blocks(key, etag):
                    head.extend(block[: 4 - len(head)])
                    yield block

            shape = chosen.layout(blocks())
            refusal = self._whole_file_problem(chosen, shape, bytes(head), now)
        except InvalidInputError as exc:  # no feed for the key, a source misconfigured
            return self._write(key, {**summary, **_failed("refused", exc.detail, exc.code)})
        except Exception as exc:
            self._write(key, {**summary, **_failed("failed", f"the file could not be read: {exc}")})
            raise
        if refusal is not None:
            line, code, reason = refusal
            return self._write(key, {**summary, **_failed("refused", reason, code, line)})

        try:
            run = self.runs.begin(run_id, key, etag, len(shape.spans), now.isoformat())
            stopped_by = self._queue_chunks(run, chosen, shape, now, time_left)
            outcome = self._finish(run, summary, stopped_by, now)
        except Exception as exc:
            # The table itself failing: the report still says so, and the event comes again.
            self._write(key, {**summary, **_failed("failed", f"the run stopped: {type(exc).__name__}: {exc}")})
            raise
        if outcome["status"] != "complete":
            raise FileNotFinishedError(
                f"{key}: {outcome['chunks_done']} of {outcome['chunks']} chunks queued ({stopped_by});"
                " resumed on redelivery"
            )
        return outcome

    def _whole_file_problem(
        self, reader: ChunkReader, shape: Layout, head: bytes, now: datetime
    ) -> tuple[int, str, str] | None:
        for bom, name in _WIDE_BOMS.items():
            if head.startswith(bom):
                return 1, "malformed_payload", f"file is {name}, not UTF-8 (it starts with a {name} byte order mark)"
        if reader.fmt != "csv":
            return None
        if not shape.header_at:
            return 0, "malformed_payload", "file has no header row"
        # The header alone: a missing column or bytes that are not UTF-8 refuse the whole file once.
        check = reader.parse(shape.header, b"", shape.header_at + 1, shape.header_at, now)
        if check.rejected:
            first = check.rejected[0]
            return first.line, first.code, first.reason
        return None

    def _queue_chunks(
        self, run: FileRun, reader: ChunkReader, shape: Layout, now: datetime, time_left: Callable[[], float]
    ) -> str | None:
        """Queue every chunk not done yet; returns why it stopped early, None when all are done."""
        done = self.runs.checkpoints(run.file_id)
        pending = [i for i in range(len(shape.spans)) if i not in done or done[i].status != "done"]
        started = 0
        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=self.limits.parallel_chunks, thread_name_prefix="chunk") as pool:
            running: set[Future[None]] = set()
            for index in pending:
                if len(running) >= self.limits.parallel_chunks:
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    errors += _errors(finished)
                if errors:
                    break
                if started >= self.limits.parallel_chunks and time_left() < self.limits.time_margin_s:
                    errors.append(f"less than {self.limits.time_margin_s:g} s left in this invocation")
                    break
                previous = done.get(index)
                attempts = previous.attempts + 1 if previous else 1
                running.add(pool.submit(self._queue_chunk, run, reader, shape, index, attempts, now))
                started += 1
            finished, _ = wait(running)
            errors += _errors(finished)
        return "; ".join(dict.fromkeys(errors)) if errors else None

    def _queue_chunk(
        self, run: FileRun, reader: ChunkReader, shape: Layout, index: int, attempts: int, now: datetime
    ) -> None:
        span = shape.spans[index]
        body = self.files.read(run.key, run.etag, span.start, span.end)
        report = reader.parse(shape.header, body, span.first_line, shape.header_at, now)
        events = [f"{e.source}:{e.external_id}" for e in report.accepted]
        refused = [Refused(r.line, r.code, r.reason) for r in report.rejected]
        # Marked before sending: a chunk found `sending` later may be queued in part, so all again.
        self.runs.mark(run.file_id, ChunkCheckpoint(index, "sending", attempts))
        self.send(report.accepted)
        self.runs.mark(run.file_id, ChunkCheckpoint(index, "done", attempts, events, refused))

    def _finish(self, run: FileRun, summary: dict[str, Any], stopped_by: str | None, now: datetime) -> dict[str, Any]:
        checkpoints = self.runs.checkpoints(run.file_id)
        done = [c for c in sorted(checkpoints.values(), key=lambda c: c.index) if c.status == "done"]
        complete = len(done) == run.chunks
        status = "complete" if complete else "incomplete"
        self.runs.save(replace(run, status=status, finished_at=now.isoformat() if complete else ""))
        events = [e for c in done for e in c.events]
        refused = sorted((r for c in done for r in c.refused), key=lambda r: r.line)
        outcome = {
            **summary,
            "status": status,
            "accepted": len(events),
            "rejected": [{"line": r.line, "code": r.code, "reason": r.reason} for r in refused],
            "chunks": run.chunks,
            "chunks_done": len(done),
            "invocations": run.invocations,
            "events": events,
        }
        if not complete:
            outcome["reason"] = (
                f"stopped after {len(done)} of {run.chunks} chunks ({stopped_by}); the next delivery of the"
                " file's event, or the same file dropped again, resumes from there"
            )
        return self._write(run.key, outcome)

    def _write(self, key: str, report: dict[str, Any]) -> dict[str, Any]:
        self.files.put_report(report_key(key), json.dumps(report, indent=1).encode())
        return report


def _failed(status: str, reason: str, code: str = "file_unreadable", line: int = 0) -> dict[str, Any]:
    return {
        "status": status,
        "reason": reason,
        "accepted": 0,
        "rejected": [{"line": line, "code": code, "reason": reason}],
        "events": [],
    }


def _errors(finished: set[Future[None]]) -> list[str]:
    return [f"{type(exc).__name__}: {exc}" for f in finished if (exc := f.exception()) is not None]
