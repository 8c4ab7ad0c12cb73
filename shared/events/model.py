"""The normalised event model: what every channel's adapter produces and the ingest function reads.

One model for all channels, so the rules and the ledger never see a Shopify or Square payload.
Money is Decimal in the event's currency; points are whole ints. Times are timezone-aware and are
the time of the purchase or action (event time), never the time of arrival.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, StringConstraints

from shared.model import Model

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# Bounds that no real order reaches: beyond them an amount is a bug or an attack, not a purchase.
MAX_POINTS = 100_000_000
MAX_AMOUNT = Decimal("10000000")
Points = Annotated[int, Field(strict=True, gt=0, le=MAX_POINTS)]
Money = Annotated[Decimal, Field(ge=0, le=MAX_AMOUNT, max_digits=14, decimal_places=4)]
# Times no purchase, transfer or draw has outside: beyond them a time is a bug or an attack, and near
# the ends of Python's calendar converting it to UTC or adding an expiry period would overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("a time between 1970 and 2199 (UTC)")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_in_range)]

# A keyed hash of a card (`shared.events.identity.hash_card`): what the card-velocity check counts by.
CardHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

# When an event can have happened. Outside this no event is real, and the calendar arithmetic the
# rules and the ledger do on it (local dates, expiry N months on) would overflow near years 1 and
# 9999: an event from year 9999 used to fail at ingest on every retry, and reach the DLQ with no reason.
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT = datetime(2100, 1, 1, tzinfo=UTC)


def _sensible_time(value: datetime) -> datetime:
    # Compared as aware datetimes (no conversion, so year 1 at +05:00 cannot overflow here).
    if not EARLIEST_EVENT <= value < LATEST_EVENT:
        raise ValueError(
            f"{value.isoformat()} is outside the range any event can have "
            f"({EARLIEST_EVENT.date().isoformat()} to {LATEST_EVENT.date().isoformat()})"
        )
    return value


EventTime = Annotated[AwareDatetime, AfterValidator(_sensible_time)]


class Channel(StrEnum):
    """Where an event came from."""

    ONLINE = "online"
    POS = "pos"
    PARTNER = "partner"
    APP = "app"


class IdentityKind(StrEnum):
    """What an identity's value is."""

    EMAIL = "email"  # keyed hash of the normalised address, never the address
    PHONE = "phone"  # keyed hash of the E.164 number, never the number
    CARD = "card"  # keyed hash of the normalised card number, never the number
    PARTNER = "partner"  # a partner brand's own member id, scoped by partner
    MEMBER = "member"  # our own member id, when the channel already knows it
    # A channel's own customer id (Shopify, Square), scoped by the event's source: the fallback
    # when a payload has no e-mail, phone or card, linked to a member once they connect the shop.
    CUSTOMER = "customer"
    # "Whoever earned on this order": value is the order's external id, scope the source. For
    # refunds whose payload names no customer (Shopify refunds/create); ingest resolves it from
    # the original purchase.
    ORDER = "order"


class Identity(Model):
    """Who an event is about, as the channel knows them."""

    model_config = ConfigDict(frozen=True)

    kind: Annotated[IdentityKind, Field(description="What `value` is.")]
    value: Annotated[Text, Field(description="The identity: a keyed hash for e-mails, phones and cards, else the id.")]
    scope: Annotated[
        str, Field(description="Whose id it is: the partner for `partner`, the source for `customer` and `order`.")
    ] = ""

    @property
    def key(self) -> str:
        return f"{self.kind}#{self.scope}#{self.value}" if self.scope else f"{self.kind}#{self.value}"


class LineItem(Model):
    """One line of an order."""

    model_config = ConfigDict(frozen=True)

    sku: Annotated[Text, Field(description="The product's SKU.")]
    quantity: Annotated[int, Field(strict=True, ge=1, le=100_000, description="How many.")]
    amount: Annotated[
        Money, Field(description="The whole line's merchandise value after its discounts, before tax (decimal).")
    ]
    category: Annotated[str, Field(description="The product's category, for category bonuses.")] = ""
    new_product: Annotated[bool, Field(description="Whether it is a new product, for new-product bonuses.")] = False


class FxConversion(Model):
    """How an amount in another currency became the program's: kept so an audit can redo it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    original_currency: Annotated[Currency, Field(description="The channel's currency (ISO 4217).")]
    original_amount: Annotated[Money, Field(description="The amount in that currency, before conversion (decimal).")]
    rate: Annotated[
        Decimal,
        Field(
            gt=0, max_digits=20, decimal_places=10, description="Program currency per unit of the original (decimal)."
        ),
    ]


class _Event(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    program: Annotated[Text, Field(description="The program the event earns in.")]
    channel: Annotated[Channel, Field(description="Where it came from.")]
    # With external_id, the idempotency key.
    source: Annotated[Text, Field(description='The producer, e.g. "shopify:acme.myshopify.com".')]
    external_id: Annotated[
        ExternalId, Field(description="The producer's own id for the event; with `source`, it posts once.")
    ]
    identity: Annotated[Identity, Field(description="Who the event is about.")]
    occurred_at: Annotated[
        EventTime, Field(description="When it happened (with an offset, 2000 to 2099), not when it arrived.")
    ]


class PurchaseEvent(_Event):
    """A paid order or till transaction: points follow from the eligible amount and the rules."""

    kind: Annotated[Literal["purchase"], Field(description="Always `purchase`.")] = "purchase"
    currency: Annotated[Currency, Field(description="The program's currency (ISO 4217) the amounts are in.")]
    reference: Annotated[
        str,
        Field(
            max_length=64,
            description="The order number the customer sees (Shopify's `name` such as `#1042`, Square's receipt "
            "number), for the member's statement; empty when the channel has none.",
        ),
    ] = ""
    eligible_amount: Annotated[
        Money, Field(description="Merchandise after discounts, without shipping and tax: what earns (decimal).")
    ]
    lines: Annotated[tuple[LineItem, ...], Field(description="The order's lines, for product rules.")] = ()
    shipping: Annotated[Money, Field(description="Shipping charged (earns only if the program says so).")] = Decimal(0)
    tax: Annotated[Money, Field(description="Tax charged (earns only if the program says so).")] = Decimal(0)
    fx: Annotated[
        FxConversion | None, Field(description="Set when the channel's currency was converted to the program's.")
    ] = None
    card: Annotated[
        CardHash | None,
        Field(
            description="The card the sale was paid or identified with, as a keyed hash (never the number): the "
            "anomaly watch counts earns per card per hour. Absent when the channel does not say."
        ),
    ] = None


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
