"""Writing channel records: create, change, disable and enable, each checked before anything is written.

A write that fails a check is refused with the field named (`InvalidChannelError`), and nothing is
written: the channel stays as it was and every other channel keeps working. The secret is written
first, as a new version of the channel's SecureString, and the record then names that version; the
record is the commit point (a secret version no record names is never read). A change names the
version it read (`expected_version`), so two operators cannot overwrite each other unknowingly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from shared.channels.records import ChannelChangedError, ChannelExistsError, ChannelRecord, UnknownChannelError
from shared.errors import InvalidChannelError, UnknownProgramError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.channels.store import ChannelItems, ChannelSecrets
    from shared.program.config import ProgramConfig

ACTIVE, DISABLED = "active", "disabled"


class ChannelRules(Protocol):
    """What the adapters require of a record (`integrations.channels`)."""

    def check_kind(self, kind: str) -> str: ...

    def normal_id(self, kind: str, channel_id: str) -> str: ...

    def has_secret(self, kind: str) -> bool: ...

    def check_channel(
        self,
        kind: str,
        channel_id: str,
        program: str,
        settings: dict[str, Any],
        secret: str | None,
        program_currency: str,
    ) -> dict[str, Any]: ...


class LivePrograms(Protocol):
    def get(self, program: str) -> ProgramConfig: ...


class ChannelRegistry:
    def __init__(
        self,
        items: ChannelItems,
        secrets: ChannelSecrets,
        programs: LivePrograms,
        rules: ChannelRules,
        clock: Callable[[], datetime],
    ) -> None:
        self._items, self._secrets, self._programs, self._rules, self._clock = items, secrets, programs, rules, clock

    def get(self, kind: str, channel_id: str) -> ChannelRecord:
        kind = self._rules.check_kind(kind)
        record = self._items.get(kind, self._rules.normal_id(kind, channel_id))
        if record is None:
            raise UnknownChannelError(f"no {kind} channel {channel_id[:80]!r}")
        return record

    def all(self, kind: str | None = None) -> list[ChannelRecord]:
        return self._items.all(self._rules.check_kind(kind) if kind else None)

    def create(
        self, kind: str, channel_id: str, program: str, settings: dict[str, Any], secret: str | None, by: str
    ) -> ChannelRecord:
        kind = self._rules.check_kind(kind)
        channel_id = self._rules.normal_id(kind, channel_id)
        settings = self._check(kind, channel_id, program, settings, secret)
        if self._items.get(kind, channel_id) is not None:
            raise self._exists(kind, channel_id)
        now = self._clock()
        record = ChannelRecord(
            kind=kind,
            id=channel_id,
            program=program,
            settings=settings,
            status=ACTIVE,
            version=1,
            secret_version=self._secrets.put(kind, channel_id, secret) if secret else None,
            created_at=now,
            updated_at=now,
            updated_by=by,
        )
        if not self._items.put_new(record):
            raise self._exists(kind, channel_id)  # created in the instant since the read
        return record

    def change(
        self,
        kind: str,
        channel_id: str,
        *,
        expected_version: int,
        by: str,
        program: str | None = None,
        settings: dict[str, Any] | None = None,
        secret: str | None = None,
    ) -> ChannelRecord:
        """A new version of the record: the fields given replace the stored ones; a secret given is
        stored as the channel's new secret (a rotation), else the one in force stays."""
        current = self._current(kind, channel_id, expected_version)
        program = program if program is not None else current.program
        settings = settings if settings is not None else current.settings
        kept = secret is None and self._rules.has_secret(current.kind)
        settings = self._check(current.kind, current.id, program, settings, secret, secret_kept=kept)
        secret_version = current.secret_version
        if secret is not None:
            secret_version = self._secrets.put(current.kind, current.id, secret)
        changed = current.model_copy(
            update={
                "program": program,
                "settings": settings,
                "secret_version": secret_version,
                "version": current.version + 1,
                "updated_at": self._clock(),
                "updated_by": by,
            }
        )
        return self._replace(current, changed)

    def set_status(self, kind: str, channel_id: str, status: str, *, expected_version: int, by: str) -> ChannelRecord:
        """Disable (its events are refused) or enable again; the settings and secret stay as they are."""
        current = self._current(kind, channel_id, expected_version)
        if status not in (ACTIVE, DISABLED):
            raise InvalidChannelError(f"status must be {ACTIVE} or {DISABLED}", field="status")
        if status == current.status:
            return current
        if status == ACTIVE:
            self._program(current.program)  # a channel is not brought back onto a program that is gone
        changed = current.model_copy(
            update={"status": status, "version": current.version + 1, "updated_at": self._clock(), "updated_by": by}
        )
        return self._replace(current, changed)

    def _current(self, kind: str, channel_id: str, expected_version: int) -> ChannelRecord:
        current = self.get(kind, channel_id)
        if current.version != expected_version:
            raise ChannelChangedError(
                f"the {current.kind} channel {current.id!r} is at version {current.version}, not {expected_version}: "
                "read it again and make the change on that",
                version=current.version,
            )
        return current

    def _replace(self, current: ChannelRecord, changed: ChannelRecord) -> ChannelRecord:
        if not self._items.replace(changed, expected_version=current.version):
            raise ChannelChangedError(
                f"the {current.kind} channel {current.id!r} changed while this change was made: read it again",
                version=current.version,
            )
        return changed

    def _check(
        self,
        kind: str,
        channel_id: str,
        program: str,
        settings: dict[str, Any],
        secret: str | None,
        *,
        secret_kept: bool = False,
    ) -> dict[str, Any]:
        """The settings to store, once the record passes the adapter's checks."""
        config = self._program(program)
        # A kept secret passed its checks when it was written; the rest is checked as if it came again.
        checked_secret = "kept-secret-placeholder-0000" if secret_kept else secret
        return self._rules.check_channel(kind, channel_id, program, settings, checked_secret, config.currency)

    def _program(self, program: str) -> ProgramConfig:
        try:
            return self._programs.get(program)
        except UnknownProgramError:
            raise InvalidChannelError(f"no program {program[:60]!r} is live", field="program") from None

    @staticmethod
    def _exists(kind: str, channel_id: str) -> ChannelExistsError:
        return ChannelExistsError(
            f"a {kind} channel {channel_id!r} exists already: change it, or enable it if it is disabled",
            field="id",
        )
