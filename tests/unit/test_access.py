"""The permission model and principals, pure: scopes, facts a rule needs, roles, key refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from functions.permissions import PERMISSIONS
from shared.access.keys import AdminRole, KeyRecord, KeyRefusal, Principal, PrincipalKind, key_id_of
from shared.access.permissions import Role, Rule, Scope, Target, admits, authorize, role_of
from shared.errors import ForbiddenError

MEMBER = Principal(kind=PrincipalKind.MEMBER, id="m1", programs=("demo",))
TILL = Principal(kind=PrincipalKind.CHANNEL, id="till", programs=("demo",))
APP = Principal(kind=PrincipalKind.CHANNEL, id="app", programs=("demo",), authenticates_members=True)
ACME = Principal(kind=PrincipalKind.PARTNER, id="acme", programs=("demo",), agreements=("demo-air",))
T0 = datetime(2026, 12, 7, tzinfo=UTC)


def _rule(**grants: Scope) -> Rule:
    return Rule({Role(name): scope for name, scope in grants.items()})


def test_each_scope_allows_exactly_its_targets() -> None:
    on_m1 = Target(program="demo", member="m1")
    authorize(_rule(member=Scope.SELF), MEMBER, on_m1)
    for refused in (Target(program="demo", member="m2"), Target(program="air", member="m1")):
        with pytest.raises(ForbiddenError):
            authorize(_rule(member=Scope.SELF), MEMBER, refused)
    authorize(_rule(channel=Scope.MEMBER_AUTH), APP, on_m1)
    with pytest.raises(ForbiddenError, match="authenticates"):
        authorize(_rule(channel=Scope.MEMBER_AUTH), TILL, on_m1)
    linked = Target(program="demo", member="m1", partner="acme", linked=lambda: True)
    authorize(_rule(partner=Scope.LINKED), ACME, linked)
    for refused in (
        Target(program="demo", member="m1", partner="acme", linked=lambda: False),
        Target(program="demo", member="m1", partner="zeta", linked=lambda: True),
    ):
        with pytest.raises(ForbiddenError):
            authorize(_rule(partner=Scope.LINKED), ACME, refused)
    authorize(_rule(partner=Scope.PARTY), ACME, Target(agreement="demo-air"))
    with pytest.raises(ForbiddenError):
        authorize(_rule(partner=Scope.PARTY), ACME, Target(agreement="demo-hotel"))


def test_a_role_the_rule_does_not_grant_is_refused_whatever_the_target() -> None:
    rule = _rule(member=Scope.SELF)
    assert not admits(rule, TILL)
    with pytest.raises(ForbiddenError, match="a channel key may not do this"):
        authorize(rule, TILL, Target(program="demo", member="m1"))


def test_a_route_that_leaves_out_a_fact_its_rule_needs_is_a_bug_not_an_allow() -> None:
    with pytest.raises(LookupError, match="member"):
        authorize(_rule(member=Scope.SELF), MEMBER, Target(program="demo"))
    with pytest.raises(LookupError, match="linked"):
        authorize(_rule(partner=Scope.LINKED), ACME, Target(program="demo", partner="acme", member="m1"))


def test_admins_have_one_role_and_old_admin_keys_are_operators() -> None:
    assert role_of(Principal(kind=PrincipalKind.ADMIN, id="ops")) is Role.OPERATOR
    auditor = Principal(kind=PrincipalKind.ADMIN, id="a", role=AdminRole.AUDITOR)
    assert role_of(auditor) is Role.AUDITOR
    assert Principal.model_validate_json('{"kind": "admin", "id": "old", "programs": []}').role is AdminRole.OPERATOR
    for principal in (auditor, APP, ACME, MEMBER):
        assert Principal.from_context(dict(principal.to_context())) == principal
    for wrong in (
        {"kind": "member", "id": "m", "role": "operator"},
        {"kind": "channel", "id": "c", "agreements": ["x"]},
        {"kind": "partner", "id": "p", "authenticates_members": True},
    ):
        with pytest.raises(ValidationError):
            Principal.model_validate(wrong)


def test_every_rule_of_the_table_grants_known_roles_and_none_is_empty() -> None:
    for (method, path), rule in PERMISSIONS.items():
        assert rule.open or rule.grants, (method, path)
        assert set(rule.grants) <= set(Role), (method, path)


def test_a_key_is_refused_once_revoked_or_expired() -> None:
    record = KeyRecord(
        key_id="0" * 16, secret_hash="h", principal=MEMBER, created_at=T0, expires_at=T0 + timedelta(days=1)
    )
    assert record.refusal(T0) is None and record.status(T0) == "active"
    assert record.refusal(T0 + timedelta(days=1)) is KeyRefusal.EXPIRED
    revoked = KeyRecord(**{**record.__dict__, "revoked_at": T0 + timedelta(hours=1)})
    assert (
        revoked.refusal(T0 + timedelta(hours=2)) is KeyRefusal.REVOKED
        and revoked.status(T0 + timedelta(hours=2)) == "revoked"
    )
    assert key_id_of("pb_0123456789abcdef_" + "A" * 43) == "0123456789abcdef"
    assert key_id_of("pb_" + "A" * 43) is None and key_id_of("") is None
