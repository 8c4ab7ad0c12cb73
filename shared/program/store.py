"""Program config and the other versioned documents (catalogues, agreements) in the table.

Every publish keeps its version next to a LIVE pointer naming the version in force; nothing is
ever overwritten, so the history is complete. Programs are `P#<program>` / `CFG#<version>`;
documents `<partition>` / `DOC#<version>` (`shared.infra.keys`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, ConfigDict

from shared.errors import ConfigError, UnknownProgramError
from shared.infra import keys
from shared.infra.codec import maybe_ts, parse_ts, to_item, ts
from shared.infra.table import TransactionCanceledError
from shared.model import Model
from shared.program.config import ProgramConfig, parse_program

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.infra.table import Table

CONFIG_CACHE_SECONDS = 30.0
# A program published before its first version's time was recorded counts as live since then.
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class StoredVersion(Model):
    """One published version of a config document, as stored."""

    model_config = ConfigDict(frozen=True)

    version: int
    body: str
    published_at: AwareDatetime | None  # None for versions published before the time was recorded


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ProgramRepository:
    """Versioned program configs: CFG#<version> items and a LIVE pointer, cached per process."""

    def __init__(
        self, table: Table, cache_seconds: float = CONFIG_CACHE_SECONDS, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._table = table
        self._clock = clock
        self._cache: dict[str, tuple[float, ProgramConfig, datetime | None]] = {}
        self._history: dict[str, tuple[float, list[tuple[datetime, ProgramConfig]]]] = {}
        self._cache_seconds = cache_seconds

    def get(self, program: str) -> ProgramConfig:
        """The live config (cached for `cache_seconds`)."""
        return self._live(program)[0]

    def at(self, program: str, moment: datetime) -> ProgramConfig:
        """The version that was live at `moment`: what an event of that time is evaluated by.

        The live version when it was published at or before `moment` (the common case costs nothing
        more than `get`); otherwise the newest version published by then, from the program's history
        (one Query, cached like the live one). An event from before the first version gets the first.
        """
        live, published = self._live(program)
        if published is None or moment >= published:
            return live
        history = self._versions(program)
        for published_at, config in reversed(history):
            if published_at <= moment:
                return config
        return history[0][1] if history else live

    def _live(self, program: str) -> tuple[ProgramConfig, datetime | None]:
        cached = self._cache.get(program)
        if cached and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1], cached[2]
        item = self._table.get(keys.live(keys.program_pk(program)), consistent=False)
        if not item:
            raise UnknownProgramError(f"no program {program!r}", program=program)
        config = ProgramConfig.model_validate_json(item["body"])
        # LIVE items written before 2026-12-07 have no time: their version counts as live all along.
        published = parse_ts(item["published_at"]) if item.get("published_at") else None
        self._cache[program] = (time.monotonic(), config, published)
        return config, published

    def _versions(self, program: str) -> list[tuple[datetime, ProgramConfig]]:
        """Every published version with its time, oldest first."""
        cached = self._history.get(program)
        if cached and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        found = [
            (parse_ts(item["published_at"]) if "published_at" in item else LONG_AGO, parse_program(item["body"]))
            for item in self._table.query(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :cfg)",
                ExpressionAttributeValues=to_item({":pk": keys.program_pk(program), ":cfg": keys.CONFIG_PREFIX}),
                ConsistentRead=True,
            )
        ]
        self._history[program] = (time.monotonic(), found)
        return found

    def publish(self, config: ProgramConfig) -> ProgramConfig:
        """Store a new version and make it live, unless that version number is taken."""
        body = config.model_dump_json()
        pk = keys.program_pk(config.program)
        published_at = ts(self._clock())
        # The first version counts as live from the start (events from before it have no other);
        # a later one from its publication (`at`).
        first = self.since(config.program) is None
        version = {
            "PK": pk,
            "SK": keys.version_sk(keys.CONFIG_PREFIX, config.version),
            "type": "config",
            "body": body,
            # The first version's time is when the scheduled jobs start looking.
            "published_at": published_at,
        }
        live = {
            "PK": pk,
            "SK": keys.LIVE_SK,
            "type": "live_config",
            "version": config.version,
            "body": body,
            # Events from before it are evaluated by the version live then (`at`).
            "published_at": None if first else published_at,
            # Lists live programs for the scheduled jobs.
            "GSI1PK": keys.LIVE_PROGRAMS,
            "GSI1SK": config.program,
        }
        try:
            self._table.transact(
                [
                    self._table.put_action(version, "attribute_not_exists(PK)"),
                    self._table.put_action(
                        live,
                        "attribute_not_exists(PK) OR version < :v",
                        ExpressionAttributeValues=to_item({":v": config.version}),
                    ),
                ]
            )
        except TransactionCanceledError as error:
            raise ConfigError(
                f"version {config.version} of {config.program} exists or is older than the live one"
            ) from error
        self._cache.pop(config.program, None)
        self._history.pop(config.program, None)
        return config

    def live_programs(self) -> list[str]:
        """Every program with a live config (the scheduled jobs walk these)."""
        return [
            str(item["GSI1SK"])
            for item in self._table.query(
                IndexName="GSI1",
                KeyConditionExpression="GSI1PK = :pk",
                ExpressionAttributeValues=to_item({":pk": keys.LIVE_PROGRAMS}),
            )
        ]

    def since(self, program: str) -> datetime | None:
        """When the program's first version was published (None: no such program)."""
        for item in self._table.query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :cfg)",
            ExpressionAttributeValues=to_item({":pk": keys.program_pk(program), ":cfg": keys.CONFIG_PREFIX}),
            ConsistentRead=True,
            Limit=1,
        ):
            return parse_ts(item["published_at"]) if "published_at" in item else LONG_AGO
        return None

    def register_holds(self, program: str) -> None:
        """Note that a program has holds: the hold-lapse job reads this small list, not a scan."""
        key = keys.program_with_holds(program)
        self._table.put({"PK": key.pk, "SK": key.sk, "type": "program_ref"})

    def with_holds(self) -> list[str]:
        return [keys.program_of_holds_sk(item["SK"]) for item in self._table.partition(keys.LIVE_PROGRAMS)]


class Documents:
    """Versioned documents other than program configs: a catalogue, an agreement."""

    def __init__(self, table: Table, clock: Callable[[], datetime] = _utcnow) -> None:
        self._table = table
        self._clock = clock

    def publish(self, pk: str, version: int, body: str) -> bool:
        """Store a version and make it live; False if that version exists or is not newer than live."""
        stored = {
            "PK": pk,
            "SK": keys.version_sk(keys.DOCUMENT_PREFIX, version),
            "type": "document",
            "body": body,
            "published_at": ts(self._clock()),
        }
        live = {"PK": pk, "SK": keys.LIVE_SK, "type": "live_document", "version": version, "body": body}
        try:
            self._table.transact(
                [
                    self._table.put_action(stored, "attribute_not_exists(PK)"),
                    self._table.put_action(
                        live,
                        "attribute_not_exists(PK) OR version < :v",
                        ExpressionAttributeValues=to_item({":v": version}),
                    ),
                ]
            )
        except TransactionCanceledError:
            return False
        return True

    def live(self, pk: str) -> str | None:
        item = self._table.get(keys.live(pk))
        return str(item["body"]) if item else None

    def live_version(self, pk: str) -> int | None:
        item = self._table.get(keys.live(pk))
        return int(item["version"]) if item else None

    def versions(self, pk: str, prefix: str, after: int, limit: int) -> list[StoredVersion]:
        """Up to `limit` versions newer than `after`, oldest first (programs and documents alike)."""
        found = []
        for item in self._table.query(
            KeyConditionExpression="PK = :pk AND SK BETWEEN :low AND :high",
            ExpressionAttributeValues=to_item(
                {
                    ":pk": pk,
                    ":low": keys.version_sk(prefix, after + 1),
                    ":high": keys.version_sk(prefix, keys.LAST_VERSION),
                }
            ),
            ConsistentRead=True,
            Limit=limit,
        ):
            found.append(_version(item, prefix))
            if len(found) >= limit:
                break
        return found


def _version(item: dict[str, Any], prefix: str) -> StoredVersion:
    return StoredVersion(
        version=int(str(item["SK"]).removeprefix(prefix)),
        body=str(item["body"]),
        published_at=maybe_ts(item.get("published_at")),
    )
