"""The normalised event model: what every channel's adapter produces and the ingest function reads.

One model for all channels, so the rules and the ledger never see a Shopify or Square payload.
Money is Decimal in the event's currency; points are whole ints. Times are timezone-aware and are
the time of the purchase or action (event time), never the time of arrival.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

if TYPE_CHECKING:
    from datetime import datetime

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# Bounds that no real order reaches: beyond them an amount is a bug or an attack, not a purchase.
MAX_POINTS = 100_000_000
MAX_AMOUNT = Decimal("10000000")
Points = Annotated[int, Field(strict=True, gt=0, le=MAX_POINTS)]
Money = Annotated[Decimal, Field(ge=0, le=MAX_AMOUNT, max_digits=14, decimal_places=4)]
# A keyed hash of a card (`shared.events.identity.hash_card`): what the card-velocity check counts by.
CardHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Channel(StrEnum):
    ONLINE = "online"
    POS = "pos"
    PARTNER = "partner"
    APP = "app"


class IdentityKind(StrEnum):
    EMAIL = "email"  # keyed hash of the normalised address, never the address
    PHONE = "phone"  # keyed hash of the E.164 number, never the number
    CARD = "card"  # loyalty card number printed on the card
    PARTNER = "partner"  # a partner brand's own member id, scoped by partner
    MEMBER = "member"  # our own member id, when the channel already knows it
    # A channel's own customer id (Shopify, Square), scoped by the event's source: the fallback
    # when a payload has no e-mail, phone or card, linked to a member once they connect the shop.
    CUSTOMER = "customer"
    # "Whoever earned on this order": value is the order's external id, scope the source. For
    # refunds whose payload names no customer (Shopify refunds/create); ingest resolves it from
    # the original purchase.
    ORDER = "order"


class Identity(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: IdentityKind
    value: Text
    scope: str = ""  # the partner id for PARTNER identities; empty otherwise

    @property
    def key(self) -> str:
        return f"{self.kind}#{self.scope}#{self.value}" if self.scope else f"{self.kind}#{self.value}"


class LineItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    sku: Text
    quantity: Annotated[int, Field(strict=True, ge=1, le=100_000)]
    # Merchandise value of the whole line after its discounts, before tax.
    amount: Money
    category: str = ""
    new_product: bool = False


class FxConversion(BaseModel):
    """How an amount in another currency became the program's: kept so an audit can redo it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    original_currency: Currency
    original_amount: Money
    rate: Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=10)]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    program: Text
    channel: Channel
    source: Text  # the producer, e.g. "shopify:acme.myshopify.com"; with external_id, the idempotency key
    external_id: ExternalId
    identity: Identity
    occurred_at: AwareDatetime


class PurchaseEvent(_Event):
    """A paid order or till transaction: points follow from the eligible amount and the rules."""

    kind: Literal["purchase"] = "purchase"
    currency: Currency
    # Merchandise after discounts, without shipping and tax: what earns points.
    eligible_amount: Money
    lines: tuple[LineItem, ...] = ()
    shipping: Money = Decimal(0)
    tax: Money = Decimal(0)
    fx: FxConversion | None = None  # set when the channel's currency was converted
    # The card the sale was paid or identified with, hashed by the adapter (never the number): the
    # anomaly watch counts earns per card per hour. None when the channel does not say.
    card: CardHash | None = None


class RefundEvent(_Event):
    """A full or partial refund of an earlier purchase; claws back points in proportion."""

    kind: Literal["refund"] = "refund"
    order_external_id: ExternalId
    currency: Currency
    refunded_amount: Money
    lines: tuple[LineItem, ...] = ()
    fx: FxConversion | None = None


class PointsEvent(_Event):
    """Points already computed by the producer (partner feeds, manual grants)."""

    kind: Literal["points"] = "points"
    points: Points
    reason: Text = "partner points"


class BehaviourAction(StrEnum):
    SIGN_IN = "sign_in"
    REVIEW = "review"
    REFERRAL = "referral"
    BIRTHDAY = "birthday"
    MEMBER_DAY = "member_day"


class BehaviourEvent(_Event):
    """Something a member did in the app that the program rewards."""

    kind: Literal["behaviour"] = "behaviour"
    action: BehaviourAction
    subject: str = ""  # the reviewed product, the referred member, ...


NormalisedEvent = Annotated[PurchaseEvent | RefundEvent | PointsEvent | BehaviourEvent, Field(discriminator="kind")]


def event_time(event: PurchaseEvent | RefundEvent | PointsEvent | BehaviourEvent) -> datetime:
    return event.occurred_at
