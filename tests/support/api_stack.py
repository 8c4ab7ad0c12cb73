"""Seed a running sandbox for the API's e2e tests and benchmark: programs, an agreement, funds, keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from shared.access.keys import Principal, PrincipalKind, issue_key
from shared.exchange.agreements import Agreement, publish_agreement
from shared.ledger.commands import Earn
from shared.ledger.ledger import Ledger
from shared.ledger.store import ApiItems, DynamoStore, ProgramRepository
from shared.program.config import ProgramConfig
from shared.rewards.catalogue import Catalogue, Reward, RewardKind, publish_catalogue

if TYPE_CHECKING:
    from pointbridge.sandbox import Sandbox


@dataclass
class Seeded:
    store: DynamoStore
    admin: str
    member_keys: dict[str, str]


def seed(sb: Sandbox, members: int = 1, points: int = 1_000_000) -> Seeded:
    store = DynamoStore(sb.resource("PointsTable"), sb.client("dynamodb"))
    programs = ProgramRepository(store)
    for program in ("demo", "air"):
        programs.publish(ProgramConfig(program=program, name=program.title()))
    items = ApiItems(store)
    publish_catalogue(
        items,
        Catalogue(
            program="demo",
            version=1,
            rewards=(Reward(id="mug", name="Mug", kind=RewardKind.PHYSICAL, points=100, stock=5),),
        ),
    )
    publish_agreement(
        items, Agreement(id="demo-air", version=1, from_program="demo", to_program="air", rate=Decimal("0.5"))
    )
    ledger = Ledger(store, programs)
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
        keys[member] = issue_key(store, Principal(kind=PrincipalKind.MEMBER, id=member, programs=("demo", "air")))
    admin = issue_key(store, Principal(kind=PrincipalKind.ADMIN, id="ops"))
    return Seeded(store=store, admin=admin, member_keys=keys)
