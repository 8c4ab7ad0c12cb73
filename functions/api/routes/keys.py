"""API keys and their lifecycle: mint, list, revoke, rotate (operators; auditors may list).

A key is shown once, when minted (or rotated); the table keeps its SHA-256 under its id. A key may
expire, and is refused from its revocation on. Rotating mints a key for the same principal and
brings the old key's expiry forward by the overlap the caller gives, so clients can switch over.
API Gateway caches an authorizer's answer per key for up to 60 seconds (template.yaml), so a
revocation or expiry takes effect within a minute.
"""

from datetime import datetime, timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field, ValidationError, model_validator

from functions.api import context
from functions.services import services
from shared.access.keys import AdminRole, IssuedKey, KeyRecord, Principal, PrincipalKind, mint_key
from shared.access.store import AccessItems
from shared.errors import NotFoundError
from shared.model import Model
from shared.program.config import ProgramId

router = APIGatewayRouter()
KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="The key's id (`key_id`), not the key.")]
Reason = Annotated[str, Field(min_length=1, max_length=200)]
DEFAULT_LIFETIME_DAYS = 365


class UnknownKeyError(NotFoundError):
    """Raised when a key id names no key."""

    code = "unknown_key"


class KeyIn(Model):
    """Who a new key stands for, and for how long."""

    model_config = ConfigDict(extra="forbid")

    kind: PrincipalKind = Field(description="`member`, `channel`, `partner` or `admin`.")
    id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^,#\s]+$")] = Field(
        description="The member id, channel id (for a shop's customer ids: its source, e.g. `shopify:<shop domain>`), "
        "partner id, or the admin's name."
    )
    programs: Annotated[list[ProgramId], Field(max_length=50)] = Field(
        default_factory=list, description="The programs it may touch (members, channels, partners)."
    )
    role: AdminRole | None = Field(None, description="An admin's role: `operator` (default), `support`, `auditor`.")
    agreements: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=50)] = Field(
        default_factory=list, description="The exchange agreements a partner is party to. Partners only."
    )
    authenticates_members: bool = Field(
        False,
        description="A channel that logs its members in itself (the app backend): it may ask for points to leave a "
        "member it acts for. Channels only.",
    )
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        DEFAULT_LIFETIME_DAYS, description="The key is refused (`key_expired`) this many days from now."
    )

    @model_validator(mode="after")
    def _a_principal(self) -> "KeyIn":
        try:
            self.principal()
        except ValidationError as invalid:
            raise ValueError("; ".join(str(e["msg"]) for e in invalid.errors())) from None
        return self

    def principal(self) -> Principal:
        return Principal(
            kind=self.kind,
            id=self.id,
            programs=tuple(self.programs),
            role=self.role,
            agreements=tuple(self.agreements),
            authenticates_members=self.authenticates_members,
        )


class KeyInfo(Model):
    """A key as listed: never the key itself."""

    key_id: str = Field(description="Names the key when it is revoked or rotated.")
    principal: Principal = Field(description="Who the key stands for.")
    status: str = Field(description="`active`, `expired` or `revoked`.")
    created_at: datetime = Field(description="When it was minted.")
    created_by: str = Field(description="Who minted it (`admin:<id>`, or `cli` for a key made by `pointbridge keys`).")
    expires_at: datetime | None = Field(description="When it stops working; null: never.")
    revoked_at: datetime | None = Field(description="When it was revoked; null: it was not.")
    revoked_by: str = Field(description='Who revoked it; "" when not revoked.')
    revoke_reason: str = Field(description='Why it was revoked; "" when not revoked.')
    last_used_at: datetime | None = Field(
        description="When the authorizer last accepted it (to the minute); null: never used."
    )
    replaces: str = Field(description='The key id this key rotated; "" when it was minted afresh.')

    @classmethod
    def of(cls, record: KeyRecord) -> "KeyInfo":
        return cls(
            key_id=record.key_id,
            principal=record.principal,
            status=record.status(services().now()),
            created_at=record.created_at,
            created_by=record.created_by,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
            revoked_by=record.revoked_by,
            revoke_reason=record.revoke_reason,
            last_used_at=record.last_used_at,
            replaces=record.replaces,
        )


class KeyOut(Model):
    """A new API key, shown this once, and what the table keeps about it."""

    key: str = Field(
        description="The key, shown this once: only its hash is stored, and a retry under the same "
        "`Idempotency-Key` does not show it again (`secret_not_replayed`)."
    )
    info: KeyInfo = Field(description="The key's id, principal and lifetime.")


class KeysOut(Model):
    """One page of keys, oldest first."""

    keys: list[KeyInfo] = Field(description="The keys, in the order they were minted.")
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


class RevokeIn(Model):
    """Why a key is revoked."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason = Field(description="Why; kept with the key.")


class RotateIn(Model):
    """How long the old key keeps working next to the new one."""

    model_config = ConfigDict(extra="forbid")

    overlap_seconds: Annotated[int, Field(ge=0, le=30 * 24 * 3600)] = Field(
        3600, description="The old key expires this many seconds from now (0: at once)."
    )
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        DEFAULT_LIFETIME_DAYS, description="The new key's lifetime."
    )


def _items() -> AccessItems:
    return services().access_items


def _minted(issued: IssuedKey) -> KeyOut:
    # The reply holds a secret: the Idempotency-Key guard stores it without its body.
    router.append_context(**{context.SECRET_REPLY: True})
    return KeyOut(key=issued.key, info=KeyInfo.of(issued.record))


@router.post("/admin/keys", status_code=201)
def create_key(body: KeyIn) -> KeyOut:
    """Mint an API key.

    A key for a principal (its kind, id, programs, role, agreements) that expires after
    `expires_in_days`. The key is in this reply only: the table keeps its SHA-256.
    """
    who = context.authorize(router)
    now = services().now()
    issued = mint_key(
        _items(),
        body.principal(),
        now=now,
        expires_at=now + timedelta(days=body.expires_in_days),
        created_by=who.key,
    )
    return _minted(issued)


@router.get("/admin/keys")
def list_keys(
    after: Annotated[str, Query(max_length=64, description="The previous page's `next`.")] = "",
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many keys.")] = 50,
) -> KeysOut:
    """List API keys.

    Every key ever minted, oldest first, with its principal, status, expiry, revocation and when it
    was last used; never the key itself.
    """
    context.authorize(router)
    found, cursor = _items().keys_page(after, limit)
    return KeysOut(keys=[KeyInfo.of(record) for record in found], next=cursor)


@router.post("/admin/keys/<key_id>/revoke")
def revoke_key(key_id: KeyIdPath, body: RevokeIn) -> KeyInfo:
    """Revoke an API key.

    From now on the authorizer refuses it (`key_revoked`; API Gateway may keep accepting it for up
    to a minute from its cache). Revoking a revoked key keeps the first revocation.
    """
    who = context.authorize(router)
    revoked = _items().revoke_key(key_id, services().now(), who.key, body.reason)
    if revoked is None:
        raise UnknownKeyError(f"no key {key_id}")
    return KeyInfo.of(revoked)


@router.post("/admin/keys/<key_id>/rotate", status_code=201)
def rotate_key(key_id: KeyIdPath, body: RotateIn) -> KeyOut:
    """Rotate an API key.

    Mints a key for the same principal and makes the old one expire after `overlap_seconds`, so its
    holder can switch over. A revoked key is not rotated (`unknown_key`).
    """
    who = context.authorize(router)
    items, now = _items(), services().now()
    old = items.get_key(key_id)
    if old is None or old.revoked_at is not None:
        raise UnknownKeyError(f"no active key {key_id}")
    issued = mint_key(
        items,
        old.principal,
        now=now,
        expires_at=now + timedelta(days=body.expires_in_days),
        created_by=who.key,
        replaces=key_id,
    )
    items.expire_key(key_id, now + timedelta(seconds=body.overlap_seconds))
    return _minted(issued)
