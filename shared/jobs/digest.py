"""The digest job: every account head (program, member, seq, hash) written where no table writer can
rewrite it, so that `pointbridge audit` can tell which accounts changed after it (`shared.ledger.evidence`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.ledger.evidence import digest_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime

    from shared.jobs.store import DigestFiles
    from shared.ledger.models import AccountState


@dataclass(frozen=True)
class DigestReport:
    key: str
    accounts: int
    written_at: str


class DigestJob:
    def __init__(
        self, accounts: Callable[[], Iterable[AccountState]], files: DigestFiles, clock: Callable[[], datetime]
    ) -> None:
        self._accounts, self._files, self._clock = accounts, files, clock

    def run(self) -> DigestReport:
        """One digest of the heads as they are now. Stamped with the wall clock when the read begins: an
        entry written during the read is in the next digest if not in this one."""
        at = self._clock()
        digest = digest_of(self._accounts(), at)
        key = self._files.put(digest)
        return DigestReport(key=key, accounts=len(digest.heads), written_at=at.isoformat())
