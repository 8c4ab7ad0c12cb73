"""Event factories and a wired-up Ingest for the channel tests, so each test names only its story."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.earning.ingest import Ingest
from shared.errors import UnknownProgramError
from shared.events.model import (
    BehaviourAction,
    BehaviourEvent,
    Channel,
    Identity,
    IdentityKind,
    PointsEvent,
    PurchaseEvent,
    RefundEvent,
)
from shared.ledger.models import Account
from shared.program.config import ProgramConfig

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.store import DynamoLedgerStore

NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
EMAIL = Identity(kind=IdentityKind.EMAIL, value="a" * 64)
CARD = Identity(kind=IdentityKind.CARD, value="40000001")
PARTNER = Identity(kind=IdentityKind.PARTNER, value="pm-77", scope="airline")


def program(**changes: Any) -> ProgramConfig:
    return ProgramConfig(program="demo", name="Demo", **changes)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def wire(services: Services, config: ProgramConfig, clock: Clock | None = None, *, tiers: bool = False) -> Ingest:
    """Ingest on the test's services, with `config` published (unless it is already) and the clock at NOW.

    Without `tiers`, no upgrade is made on earning (the tier tests ask for it).
    """
    try:
        services.programs.get(config.program)
    except UnknownProgramError:
        services.programs.publish(config)
    services.clock = clock or Clock()
    ingest = services.ingest
    return (
        ingest
        if tiers
        else Ingest(
            services.ledger,
            services.ledger_store,
            services.members,
            services.earning_items,
            services.programs,
            clock=services.now,
        )
    )


def purchase(
    order: str,
    amount: str,
    identity: Identity = EMAIL,
    source: str = "shopify:acme.myshopify.com",
    at: datetime = NOW - timedelta(hours=1),
) -> PurchaseEvent:
    return PurchaseEvent(
        program="demo",
        channel=Channel.ONLINE,
        source=source,
        external_id=order,
        identity=identity,
        occurred_at=at,
        currency="USD",
        eligible_amount=Decimal(amount),
    )


def refund(refund_id: str, order: str, amount: str, source: str = "shopify:acme.myshopify.com") -> RefundEvent:
    return RefundEvent(
        program="demo",
        channel=Channel.ONLINE,
        source=source,
        external_id=refund_id,
        identity=Identity(kind=IdentityKind.ORDER, value=order, scope=source),
        occurred_at=NOW - timedelta(minutes=5),
        order_external_id=order,
        currency="USD",
        refunded_amount=Decimal(amount),
    )


def partner_points(external_id: str, points: int, identity: Identity = PARTNER) -> PointsEvent:
    return PointsEvent(
        program="demo",
        channel=Channel.PARTNER,
        source="partner:airline",
        external_id=external_id,
        identity=identity,
        occurred_at=NOW - timedelta(hours=2),
        points=points,
    )


def sign_in(event_id: str, member: str, at: datetime) -> BehaviourEvent:
    return BehaviourEvent(
        program="demo",
        channel=Channel.APP,
        source="app:app",
        external_id=event_id,
        identity=Identity(kind=IdentityKind.MEMBER, value=member),
        occurred_at=at,
        action=BehaviourAction.SIGN_IN,
    )


def behaviour(
    action: BehaviourAction, event_id: str, member: str, at: datetime = NOW - timedelta(minutes=5), subject: str = ""
) -> BehaviourEvent:
    return BehaviourEvent(
        program="demo",
        channel=Channel.APP,
        source="app:app",
        external_id=event_id,
        identity=Identity(kind=IdentityKind.MEMBER, value=member),
        occurred_at=at,
        action=action,
        subject=subject,
    )


def available(store: DynamoLedgerStore, member: str) -> int:
    state = store.get_account("demo", member)
    return state.available if state else 0


def balances(store: DynamoLedgerStore) -> dict[str, tuple[int, int]]:
    _, accounts, _, _ = store.ledger_records()
    return {a.member: (a.available, a.pending) for a in accounts if a.available or a.pending}


def points_of(entry_delta: Any) -> int:
    return int(entry_delta.delta(Account.AVAILABLE))


def audited(store: DynamoLedgerStore) -> None:
    """The whole audit must pass: the arithmetic, open pending earns included, and every class of loss."""
    from shared.jobs.audit import audit_table

    report = audit_table(store.table)
    assert report.ok, report.problems


def account(store: DynamoLedgerStore, member: str) -> tuple[int, int]:
    """(available, pending) of a member in demo."""
    state = store.get_account("demo", member)
    return (state.available, state.pending) if state else (0, 0)
