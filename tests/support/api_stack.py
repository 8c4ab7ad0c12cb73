"""Seed a running sandbox for the API's e2e tests and benchmark: programs, an agreement, funds, keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from shared.access.keys import Principal, PrincipalKind, issue_key
from shared.exchange.agreements import Agreement, publish_agreement
from shared.ledger.commands import Earn
from shared.program.config import ProgramConfig
from shared.rewards.catalogue import Catalogue, Reward, RewardKind, publish_catalogue
from tests.support.services import sandbox_services

if TYPE_CHECKING:
    from functions.services import Services
    from pointbridge.sandbox import Sandbox


@dataclass
class Seeded:
    services: Services
    admin: str
    member_keys: dict[str, str]


def seed(sb: Sandbox, members: int = 1, points: int = 1_000_000) -> Seeded:
    services = sandbox_services(sb)
    for program in ("demo", "air"):
        services.programs.publish(ProgramConfig(program=program, name=program.title()))
    publish_catalogue(
        services.documents,
        Catalogue(
            program="demo",
            version=1,
            rewards=(Reward(id="mug", name="Mug", kind=RewardKind.PHYSICAL, points=100, stock=5),),
        ),
    )
    publish_agreement(
        services.documents,
        Agreement(id="demo-air", version=1, from_program="demo", to_program="air", rate=Decimal("0.5")),
    )
    ledger = services.ledger
    keys: dict[str, str] = {}
    for n in range(members):
        member = f"m{n}"
        ledger.earn(
            Earn(
                program="demo",
                member=member,
                points=points,
                source="seed",
                external_id=member,
                reason="seed",
                event_time=datetime.now(UTC),
            )
        )
        keys[member] = issue_key(
            services.access_items, Principal(kind=PrincipalKind.MEMBER, id=member, programs=("demo", "air"))
        )
    admin = issue_key(services.access_items, Principal(kind=PrincipalKind.ADMIN, id="ops"))
    return Seeded(services=services, admin=admin, member_keys=keys)
