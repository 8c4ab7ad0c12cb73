"""Who may call the HTTP API: API keys mapped to principals, and what each kind of principal may touch.

A key is a random secret shown once by `issue_key`; the table keeps only its SHA-256, so the
authorizer looks a key up by hash and a dump of the table grants nothing. Kinds:

- admin: everything, including configuration.
- partner: its own programs, and exchanges under agreements where one of its programs is a party.
- channel (a shop, a till): members of the programs it serves.
- member: only its own account, in its programs.
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.errors import ForbiddenError

if TYPE_CHECKING:
    from shared.access.store import AccessItems

KEY_PREFIX = "pb_"


class PrincipalKind(StrEnum):
    """The kinds of caller a key can stand for (see the module docstring for what each may touch)."""

    ADMIN = "admin"
    PARTNER = "partner"
    CHANNEL = "channel"
    MEMBER = "member"


class Principal(BaseModel):
    """Who a key stands for: what kind of caller, which one, and the programs it may touch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Annotated[
        PrincipalKind,
        Field(
            description="`admin`: everything. `partner`: its programs and agreements. `channel` (a shop, a till): "
            "members of its programs. `member`: its own account."
        ),
    ]
    id: Annotated[
        str,
        StringConstraints(min_length=1, max_length=200, pattern=r"^[^,#\s]+$"),
        Field(description="The caller's id: the member id for a member, the partner's id for a partner."),
    ]
    programs: Annotated[
        tuple[str, ...], Field(description="The programs it may touch (an admin's are not checked).")
    ] = ()

    @property
    def key(self) -> str:
        """What idempotent replies are stored under: two principals never share a reply."""
        return f"{self.kind}:{self.id}"

    def to_context(self) -> dict[str, str]:
        # API Gateway passes authorizer context values as strings only.
        return {"kind": self.kind.value, "id": self.id, "programs": ",".join(self.programs)}

    @classmethod
    def from_context(cls, context: dict[str, object]) -> Principal:
        programs = str(context.get("programs") or "")
        return cls(
            kind=PrincipalKind(str(context["kind"])),
            id=str(context["id"]),
            programs=tuple(p for p in programs.split(",") if p),
        )

    def require_admin(self) -> None:
        if self.kind is not PrincipalKind.ADMIN:
            raise ForbiddenError("only an admin may do this")

    def require_program(self, program: str) -> None:
        if self.kind is not PrincipalKind.ADMIN and program not in self.programs:
            raise ForbiddenError(f"{self.kind} {self.id} has no access to program {program}")

    def require_member(self, program: str, member: str) -> None:
        self.require_program(program)
        if self.kind is PrincipalKind.MEMBER and member != self.id:
            raise ForbiddenError("a member may only see and move its own points")

    def require_staff(self, program: str) -> None:
        """Operations a member may not start on itself (checkout capture, inbound partner credits)."""
        self.require_program(program)
        if self.kind is PrincipalKind.MEMBER:
            raise ForbiddenError("members cannot do this on their own account")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(items: AccessItems, principal: Principal) -> str:
    """Mint a key for a principal; the key itself is returned once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    items.put_key(hash_key(key), principal.model_dump_json())
    return key


def resolve_key(items: AccessItems, key: str) -> Principal | None:
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    body = items.get_key(hash_key(key))
    return Principal.model_validate_json(body) if body else None


def require_agreement(principal: Principal, parties: frozenset[str], from_program: str, member: str) -> None:
    """Who may quote or execute an exchange under an agreement between `parties`."""
    if principal.kind is PrincipalKind.ADMIN:
        return
    if principal.kind is PrincipalKind.PARTNER:
        if not parties & set(principal.programs):
            raise ForbiddenError(f"partner {principal.id} is not a party to this agreement")
        return
    principal.require_member(from_program, member)


def require_partner(principal: Principal, partner: str, program: str) -> None:
    """An external partner acts only as itself, on programs it has an agreement with."""
    if principal.kind is PrincipalKind.ADMIN:
        return
    if principal.kind is not PrincipalKind.PARTNER or principal.id != partner:
        raise ForbiddenError(f"only partner {partner} may do this")
    principal.require_program(program)
