"""A program with members for support's desk: ann (e-mail linked, a redemption, a partner credit, a gift
to bob), bob and cy; used by the desk's API, console and CLI tests."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from shared.events.identity import hash_email
from shared.ledger.commands import Earn, Spend
from shared.ledger.models import Account
from shared.program.config import ProgramConfig, Tier
from shared.rewards.catalogue import GiftPolicy
from shared.rewards.gifts import send_gift
from tests.support.channels import identity_key
from tests.support.http_api import HttpApi

if TYPE_CHECKING:
    from collections.abc import Iterator

    from functions.services import Services

PROGRAM = "desk"
EMAIL = "Ann.Lee@Example.com"
TIERS = (Tier(name="member", rank=0), Tier(name="gold", rank=1, threshold=Decimal(5000)))
REDEMPTION, PARTNER_CREDIT, GIFT = "redemption:r-1", "partner:skyair:f-1", "gift:g-1"


def seed_desk(services: Services, identity_key: str) -> None:
    services.programs.publish(ProgramConfig(program=PROGRAM, name="Desk", tiers=TIERS))
    ledger, now = services.ledger, datetime.now(UTC)
    for member in ("ann", "bob", "cy"):
        ledger.earn(
            Earn(
                program=PROGRAM,
                member=member,
                points=1000,
                source="seed",
                external_id=member,
                reason="welcome points",
                event_time=now,
            )
        )
    services.members.claim("email#" + hash_email(identity_key.encode(), EMAIL), "ann", provisional=False)
    ledger.spend(
        Spend(
            program=PROGRAM,
            member="ann",
            points=300,
            source="redemption",
            external_id="r-1",
            reason="points redeemed",
            details={"reward": "mug", "quantity": "1"},
        )
    )
    ledger.earn(
        Earn(
            program=PROGRAM,
            member="ann",
            points=120,
            source="partner:skyair",
            external_id="f-1",
            reason="flight PEK-SHA",
            event_time=now,
            counter=Account.PARTNER,
            counter_owner="skyair",
            details={"channel": "partner"},
        )
    )
    send_gift(ledger, GiftPolicy(), PROGRAM, "ann", "bob", 100, "g-1", now, "happy birthday")


@contextmanager
def desk_api() -> Iterator[HttpApi]:
    """A sandbox with two API workers and the desk's members, for a module of desk tests."""
    from pointbridge.sandbox import Sandbox

    with Sandbox(template=Path(__file__).resolve().parents[2] / "template.yaml", schedules=False, pool_size=2) as sb:
        http = HttpApi(sb)
        seed_desk(http.services, identity_key(sb))
        yield http
