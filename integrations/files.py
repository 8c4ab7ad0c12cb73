"""Which adapter reads a dropped file, from its key: till files and partner feeds, in chunks.

`till/[<feed>/]<file>.csv` is a till end-of-day file (feed `default` when the key has no folder);
`partners/<partner>/<file>.csv|.jsonl|.ndjson` a partner feed. Anything else is `unknown_source`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from integrations.batch import CHUNK_LINES, layout
from integrations.errors import UnknownSourceError
from integrations.partner_feed import parse_partner_chunk
from integrations.till_csv import parse_till_chunk

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from integrations.batch import Layout
    from integrations.partner_feed import PartnerFeedConfig
    from integrations.report import BatchReport
    from integrations.till_csv import TillCsvConfig


class FeedConfigs(Protocol):
    """Where the file feeds' configs come from (the channel records, or a static set in tests)."""

    def till_config(self, name: str) -> TillCsvConfig: ...

    def partner(self, partner: str) -> PartnerFeedConfig: ...


@dataclass(frozen=True)
class FileReader:
    """How one dropped file is cut into chunks and each chunk turned into events."""

    fmt: str  # "csv" or "jsonl"
    till: TillCsvConfig | None = None
    partner: PartnerFeedConfig | None = None
    chunk_lines: int = CHUNK_LINES

    def layout(self, blocks: Iterable[bytes]) -> Layout:
        return layout(blocks, fmt=self.fmt, max_lines=self.chunk_lines)

    def parse(self, header: str, body: bytes, first_line: int, header_at: int, now: datetime) -> BatchReport:
        if self.till is not None:
            return parse_till_chunk(header, body, first_line, self.till, now=now, header_at=header_at)
        assert self.partner is not None
        if self.fmt == "jsonl":
            return parse_partner_chunk(header, body, first_line, self.partner, now=now, fmt="jsonl")
        return parse_partner_chunk(header, body, first_line, self.partner, now=now, fmt="csv", header_at=header_at)


def feed_of(key: str) -> tuple[str, str]:
    """The feed a dropped file belongs to, by its folder: (`till`, feed) or (`partner`, partner id)."""
    parts = key.split("/")
    if parts[0] == "till" and len(parts) > 1:
        return "till", parts[1] if len(parts) > 2 else "default"
    if parts[0] == "partners" and len(parts) > 2:
        return "partner", parts[1]
    raise UnknownSourceError(f"no feed is configured for {key[:100]!r}")


def file_reader(key: str, sources: FeedConfigs, *, chunk_lines: int = CHUNK_LINES) -> FileReader:
    kind, feed = feed_of(key)
    if kind == "till":
        return FileReader(fmt="csv", till=sources.till_config(feed), chunk_lines=chunk_lines)
    fmt = "jsonl" if key.endswith((".jsonl", ".ndjson")) else "csv"
    return FileReader(fmt=fmt, partner=sources.partner(feed), chunk_lines=chunk_lines)
