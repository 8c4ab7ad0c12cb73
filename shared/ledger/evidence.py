"""Evidence an insider cannot forge: digests of every account head, kept outside the table.

Each entry's hash is keyed with the stack's chain key (`Entry.sealed`), so whoever can write the
table but does not hold the key cannot recompute a chain. The digest job writes every account's
head (program, member, seq, hash) to a bucket with Object Lock, where no table writer can delete or
overwrite it (template.yaml, DigestsBucket). The audit then holds the table against the last
digest: every account it lists must still have, at that seq, the entry with that hash; an account
whose entry differs (edited, or the whole chain recomputed), whose chain got shorter (truncated) or
that is gone is named as changed after the digest. Entries hashed before the key existed (unkeyed)
stay valid only where the first digest had already anchored them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, ConfigDict

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from shared.ledger.models import AccountState, Entry

DIGEST_PREFIX = "digests/"


class AccountHead(BaseModel):
    model_config = ConfigDict(frozen=True)

    program: str
    member: str
    seq: int
    hash: str


class Digest(BaseModel):
    """Every account head at one moment."""

    model_config = ConfigDict(frozen=True)

    written_at: AwareDatetime
    heads: tuple[AccountHead, ...]

    def key(self) -> str:
        """Its object key: ISO time, so keys sort by when they were written."""
        return f"{DIGEST_PREFIX}{self.written_at.strftime('%Y-%m-%dT%H%M%S.%fZ')}.json"


def digest_of(accounts: Iterable[AccountState], at: datetime) -> Digest:
    heads = sorted(
        (AccountHead(program=a.program, member=a.member, seq=a.seq, hash=a.head) for a in accounts if a.seq > 0),
        key=lambda head: (head.program, head.member),
    )
    return Digest(written_at=at, heads=tuple(heads))


class Anchors(BaseModel):
    """What the audit holds the table against: the first digest ever written and the last."""

    model_config = ConfigDict(frozen=True)

    first: Digest
    last: Digest

    def unkeyed_allowed_through(self, program: str, member: str) -> int:
        """The last seq of the account at which an unkeyed entry may stand: what the first digest anchored."""
        for head in self.first.heads:
            if (head.program, head.member) == (program, member):
                return head.seq
        return 0


def changed_since(last: Digest, chains: dict[tuple[str, str], Sequence[Entry]]) -> dict[tuple[str, str], str]:
    """Each account of the digest whose chain no longer holds its digested head, with how it changed."""
    changed: dict[tuple[str, str], str] = {}
    when = last.written_at.isoformat()
    for head in last.heads:
        account = (head.program, head.member)
        chain = chains.get(account, ())
        at = next((e for e in chain if e.seq == head.seq), None)
        if not chain:
            changed[account] = f"gone since the digest of {when} (it had {head.seq} entries)"
        elif at is None:
            changed[account] = f"truncated since the digest of {when}: it had {head.seq} entries, now {len(chain)}"
        elif at.hash != head.hash:
            changed[account] = (
                f"changed since the digest of {when}: its entry at seq {head.seq} ({at.entry_id}) is not the one "
                "digested (an edited entry or a recomputed chain)"
            )
    return changed
