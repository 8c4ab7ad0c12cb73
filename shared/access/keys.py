"""Who may call the HTTP API: API keys, the principals they stand for, and their lifecycle.

A key is `pb_<key id>_<secret>`. The table keeps the key's SHA-256 under its id, never the key,
so a dump of the table grants nothing; the id names the key when it is listed, revoked or
rotated. A key may expire, and may be revoked; the authorizer refuses either with its own code.

Principals (what each may touch is the permission table's, `shared.access.permissions`):

- member: its own account, in the programs its key lists.
- channel (a shop, a till, the brand's app backend): members of its programs, on its own
  references and holds; `authenticates_members` marks a channel that logs its members in itself
  (the app backend), which may ask for points to leave a member (gifts, exchanges, transfers out).
- partner: its own transfers, its own agreements, crediting members who linked its partner id.
- admin, in one role: operator (configuration, keys, draws), support (members' problems, with a
  reason), auditor (reads only).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from shared.model import Model

if TYPE_CHECKING:
    from shared.access.store import AccessItems

KEY_PREFIX = "pb_"
KEY_ID_LENGTH = 16
_KEY = re.compile(r"^pb_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
# The authorizer writes `last_used_at` at most this often per key: a busy key costs no write per call.
LAST_USED_RESOLUTION = timedelta(minutes=1)

PrincipalId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^,#\s]+$")]
ScopeId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^,#\s]+$")]


class PrincipalKind(StrEnum):
    """The kinds of caller a key can stand for (see the module docstring for what each may touch)."""

    ADMIN = "admin"
    PARTNER = "partner"
    CHANNEL = "channel"
    MEMBER = "member"


class AdminRole(StrEnum):
    """What an admin key may do: configure (operator), help members (support), or read (auditor)."""

    OPERATOR = "operator"
    SUPPORT = "support"
    AUDITOR = "auditor"


class KeyRefusal(StrEnum):
    """Why the authorizer refused a key: the `code` of the 401 problem API Gateway answers with."""

    MISSING = "key_missing"
    INVALID = "key_invalid"
    EXPIRED = "key_expired"
    REVOKED = "key_revoked"


class Principal(Model):
    """Who a key stands for: what kind of caller, which one, and what it may touch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Annotated[
        PrincipalKind,
        Field(
            description="`member`: its own account. `channel` (a shop, a till, the app backend): members of its "
            "programs, on its own references. `partner`: its transfers and agreements. `admin`: by `role`."
        ),
    ]
    id: Annotated[
        PrincipalId,
        Field(description="The caller's id: the member id for a member, the partner's id for a partner."),
    ]
    programs: Annotated[
        tuple[ScopeId, ...], Field(max_length=50, description="The programs it may touch (not checked for admins).")
    ] = ()
    role: Annotated[
        AdminRole | None,
        Field(description="An admin's role: `operator` (the default), `support` or `auditor`. Admins only."),
    ] = None
    agreements: Annotated[
        tuple[ScopeId, ...],
        Field(max_length=50, description="The exchange agreements a partner is party to. Partners only."),
    ] = ()
    authenticates_members: Annotated[
        bool,
        Field(
            description="A channel that logs its members in itself (the brand's app backend): it may ask for points "
            "to leave a member it acts for (gifts, exchanges, transfers out, confirming a code). Channels only."
        ),
    ] = False

    @model_validator(mode="before")
    @classmethod
    def _admin_role(cls, data: Any) -> Any:
        # Keys minted before roles existed stand for operators, as every admin was then.
        if isinstance(data, dict) and data.get("kind") == PrincipalKind.ADMIN and data.get("role") is None:
            return {**data, "role": AdminRole.OPERATOR}
        return data

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> Principal:
        if self.role is not None and self.kind is not PrincipalKind.ADMIN:
            raise ValueError("only an admin has a role")
        if self.agreements and self.kind is not PrincipalKind.PARTNER:
            raise ValueError("only a partner is party to agreements")
        if self.authenticates_members and self.kind is not PrincipalKind.CHANNEL:
            raise ValueError("only a channel authenticates members")
        return self

    @property
    def key(self) -> str:
        """Its namespace: idempotent replies and references are kept under it, so two principals never share one."""
        return f"{self.kind}:{self.id}"

    def to_context(self) -> dict[str, str]:
        # API Gateway passes authorizer context values as strings only.
        return {
            "kind": self.kind.value,
            "id": self.id,
            "programs": ",".join(self.programs),
            "role": self.role.value if self.role else "",
            "agreements": ",".join(self.agreements),
            "authenticates_members": "true" if self.authenticates_members else "",
        }

    @classmethod
    def from_context(cls, context: dict[str, object]) -> Principal:
        def listed(name: str) -> tuple[str, ...]:
            return tuple(p for p in str(context.get(name) or "").split(",") if p)

        return cls(
            kind=PrincipalKind(str(context["kind"])),
            id=str(context["id"]),
            programs=listed("programs"),
            role=AdminRole(str(context["role"])) if context.get("role") else None,
            agreements=listed("agreements"),
            authenticates_members=str(context.get("authenticates_members") or "") == "true",
        )


@dataclass(frozen=True)
class KeyRecord:
    """What the table holds about a key: never the key, only its hash."""

    key_id: str
    secret_hash: str
    principal: Principal
    created_at: datetime
    created_by: str = ""
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str = ""
    revoke_reason: str = ""
    last_used_at: datetime | None = None
    replaces: str = ""  # the key id this key rotated

    def refusal(self, now: datetime) -> KeyRefusal | None:
        """Why the key is refused at `now`, or None when it is good."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return KeyRefusal.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return KeyRefusal.EXPIRED
        return None

    def status(self, now: datetime) -> str:
        refused = self.refusal(now)
        return "active" if refused is None else refused.value.removeprefix("key_")


@dataclass(frozen=True)
class IssuedKey:
    key: str  # shown once
    record: KeyRecord


@dataclass(frozen=True)
class KeyCheck:
    """What a presented key resolves to: its principal, or why it is refused."""

    principal: Principal | None
    refusal: KeyRefusal | None
    record: KeyRecord | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The id inside a well-formed key; None when the text is not a key at all."""
    found = _KEY.match(key)
    return found.group(1) if found else None


def mint_key(
    items: AccessItems,
    principal: Principal,
    *,
    now: datetime | None = None,
    expires_at: datetime | None = None,
    created_by: str = "",
    replaces: str = "",
) -> IssuedKey:
    """Mint a key for a principal; the key itself is returned once and never stored."""
    from datetime import UTC

    moment = now or datetime.now(UTC)
    if expires_at is not None and expires_at <= moment:
        raise ValueError("a key must expire in the future")
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    record = KeyRecord(
        key_id=key_id,
        secret_hash=hash_key(key),
        principal=principal,
        created_at=moment,
        created_by=created_by,
        expires_at=expires_at,
        replaces=replaces,
    )
    items.put_key(record)
    return IssuedKey(key=key, record=record)


def issue_key(items: AccessItems, principal: Principal, **options: Any) -> str:
    """`mint_key`, when only the key itself is wanted (tests, the demo)."""
    return mint_key(items, principal, **options).key


def check_key(items: AccessItems, key: str, now: datetime) -> KeyCheck:
    """Resolve a presented key: the principal, or the refusal the authorizer answers with."""
    key_id = key_id_of(key)
    record = items.get_key(key_id) if key_id else None
    if record is None or not hmac.compare_digest(record.secret_hash, hash_key(key)):
        return KeyCheck(None, KeyRefusal.INVALID)
    refused = record.refusal(now)
    if refused is not None:
        return KeyCheck(None, refused, record)
    return KeyCheck(record.principal, None, record)
