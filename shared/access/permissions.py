"""The permission model: which role may call an operation, and on what.

A rule grants each role at most one scope. A principal's role is its kind, or for an admin its
role (operator, support, auditor). A request is allowed when the rule grants the principal's role
and the request's target (the program, member, partner or agreement it names, as the route
knows them) lies within the granted scope; anything else is a 403 `forbidden`, decided before
anything is read about the target, so a refusal says nothing about other members.

The rules themselves, one per route, are the permission table (`functions.permissions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING

from shared.access.keys import AdminRole, Principal, PrincipalKind
from shared.errors import ForbiddenError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


class Role(StrEnum):
    """The columns of the permission table."""

    MEMBER = "member"
    CHANNEL = "channel"
    PARTNER = "partner"
    OPERATOR = "operator"
    SUPPORT = "support"
    AUDITOR = "auditor"


ADMIN_ROLES = (Role.OPERATOR, Role.SUPPORT, Role.AUDITOR)


class Scope(Enum):
    """On what a granted role may act; each needs the facts named in `needs` from the route."""

    SELF = (
        "itself",
        "the member in the path is the key's own member, in a program the key lists",
        ("program", "member"),
    )
    PROGRAM = ("its programs", "a program the key lists", ("program",))
    MEMBER_AUTH = (
        "its programs, authenticating",
        "a channel that logs its members in itself (`authenticates_members`), in a program the key lists",
        ("program",),
    )
    NAMED = (
        "itself, named",
        "the partner in the path is the key's own partner, in a program the key lists",
        ("program", "partner"),
    )
    LINKED = (
        "itself, to members linked to it",
        "the partner in the path is the key's own, in a program the key lists, and the member linked that partner's id",
        ("program", "partner", "linked"),
    )
    PARTY = ("its agreements", "an agreement the key's partner is party to (the key lists it)", ("agreement",))
    ANY = ("any", "anything of the kind", ())

    def __init__(self, label: str, meaning: str, needs: tuple[str, ...]) -> None:
        self.label = label
        self.meaning = meaning
        self.needs = needs


@dataclass(frozen=True)
class Rule:
    """Which roles may call one operation, and each on what."""

    grants: Mapping[Role, Scope] = field(default_factory=dict)
    open: bool = False  # no key at all (the health check)

    def scope_for(self, role: Role) -> Scope | None:
        return self.grants.get(role)


OPEN = Rule(open=True)


@dataclass(frozen=True)
class Target:
    """What a request names, as far as its route knows it when it checks."""

    program: str | None = None
    member: str | None = None
    partner: str | None = None
    agreement: str | None = None
    # Whether the member holds the path partner's id (read only when a LINKED grant asks).
    linked: Callable[[], bool] | None = None


def role_of(principal: Principal) -> Role:
    if principal.kind is PrincipalKind.ADMIN:
        return Role(principal.role or AdminRole.OPERATOR)
    return Role(principal.kind.value)


def admits(rule: Rule, principal: Principal) -> bool:
    """Whether the rule grants the principal's role at all (checked before the route runs)."""
    return rule.open or role_of(principal) in rule.grants


def authorize(rule: Rule, principal: Principal, target: Target) -> None:
    """Allow the request, or raise ForbiddenError. A LookupError means the route did not give a fact
    its rule needs: a bug in the route, never the caller's fault."""
    if rule.open:
        return
    role = role_of(principal)
    scope = rule.scope_for(role)
    if scope is None:
        raise ForbiddenError(f"a {role} key may not do this")
    for fact in scope.needs:
        if getattr(target, fact) is None:
            raise LookupError(f"the route did not name the {fact} its {role} grant ({scope.name}) needs")
    if not _within(scope, principal, target):
        raise ForbiddenError(_refusal(scope, role))


def _within(scope: Scope, principal: Principal, target: Target) -> bool:
    if scope is Scope.ANY:
        return True
    if scope is Scope.PARTY:
        return target.agreement in principal.agreements
    if target.program not in principal.programs:
        return False
    if scope is Scope.PROGRAM:
        return True
    if scope is Scope.SELF:
        return target.member == principal.id
    if scope is Scope.MEMBER_AUTH:
        return principal.authenticates_members
    named = target.partner == principal.id
    if scope is Scope.NAMED:
        return named
    assert scope is Scope.LINKED and target.linked is not None
    return named and target.linked()


def _refusal(scope: Scope, role: Role) -> str:
    # One sentence per scope, the same whoever the target is: a refusal reveals nothing about it.
    return {
        Scope.SELF: "a member may only see and move its own points",
        Scope.PROGRAM: f"this {role} key does not cover that program",
        Scope.MEMBER_AUTH: "only the member itself, or a channel that authenticates its members, may ask for this",
        Scope.NAMED: "a partner acts only as itself, in its programs",
        Scope.LINKED: "a partner credits only members who linked its partner id, in its programs",
        Scope.PARTY: "this partner is not party to that agreement",
    }.get(scope, "forbidden")
