"""Events and configs for the rules tests, so each test names only what it is about."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shared.events.model import (
    BehaviourAction,
    BehaviourEvent,
    Channel,
    Identity,
    IdentityKind,
    LineItem,
    PointsEvent,
    PurchaseEvent,
)
from shared.program.config import ProgramConfig, load_program, parse_program

SEED = Path(__file__).resolve().parents[2] / "seeds" / "demo-program.json"
NEW_YORK = ZoneInfo("America/New_York")
MEMBER = Identity(kind=IdentityKind.CARD, value="4000-0001")
# An ordinary day, outside the demo's holiday window.
ORDINARY = datetime(2026, 6, 10, 12, 0, tzinfo=NEW_YORK)


def demo() -> ProgramConfig:
    return load_program(SEED)


def demo_with(**changes: Any) -> ProgramConfig:
    """The demo config with some top-level fields replaced, validated like any config."""
    data = demo().model_dump(mode="json")
    data.update(changes)
    return parse_program(data)


def purchase(
    amount: str | Decimal = "60",
    at: datetime = ORDINARY,
    lines: tuple[LineItem, ...] = (),
    channel: Channel = Channel.ONLINE,
    shipping: str = "0",
    tax: str = "0",
    external_id: str = "order-1",
) -> PurchaseEvent:
    return PurchaseEvent(
        program="demo",
        channel=channel,
        source="shopify:demo.myshopify.com",
        external_id=external_id,
        identity=MEMBER,
        occurred_at=at,
        currency="USD",
        eligible_amount=Decimal(amount),
        lines=lines,
        shipping=Decimal(shipping),
        tax=Decimal(tax),
    )


def line(sku: str, amount: str, quantity: int = 1, category: str = "", new_product: bool = False) -> LineItem:
    return LineItem(sku=sku, quantity=quantity, amount=Decimal(amount), category=category, new_product=new_product)


def behaviour(action: BehaviourAction, at: datetime = ORDINARY) -> BehaviourEvent:
    return BehaviourEvent(
        program="demo",
        channel=Channel.APP,
        source="app",
        external_id=f"{action}-{at.isoformat()}",
        identity=MEMBER,
        occurred_at=at,
        action=action,
    )


def partner_points(points: int, at: datetime = ORDINARY) -> PointsEvent:
    return PointsEvent(
        program="demo",
        channel=Channel.PARTNER,
        source="partner:airline",
        external_id="feed-1",
        identity=MEMBER,
        occurred_at=at,
        points=points,
        reason="airline miles",
    )
