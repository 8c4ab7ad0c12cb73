"""Shopify webhooks (REST/JSON format): orders/paid earns, refunds/create claws back.

Verification follows Shopify's scheme: X-Shopify-Hmac-Sha256 is base64(HMAC-SHA256(app secret,
raw body)). The body is verified before it is parsed, so nothing unauthenticated reaches json.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from integrations.common import (
    array,
    as_bytes,
    build,
    check_amount,
    check_sent_within,
    header,
    obj,
    opt_obj,
    opt_text,
    parse_json_object,
    parse_money,
    parse_time,
    text,
    verify_signature,
)
from integrations.currency import Converter, CurrencyPolicy
from integrations.errors import (
    AmountOutOfRangeError,
    MalformedPayloadError,
    MissingIdentityError,
    UnknownSourceError,
    UnsupportedEventError,
)
from shared.events.identity import InvalidIdentityError, hash_email
from shared.events.model import Channel, Identity, IdentityKind, LineItem, PurchaseEvent, RefundEvent, Text

if TYPE_CHECKING:
    from collections.abc import Mapping

    from integrations.report import Event

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
SHOP_HEADER = "X-Shopify-Shop-Domain"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"
# The longest time over which Shopify documents delivering one webhook (see ShopifyConfig.replay_window).
SHOPIFY_RETRY_HORIZON = timedelta(hours=48)


class ShopifyConfig(BaseModel):
    """One shop feeding one program."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    program: Text
    shop_domain: Text  # e.g. "acme.myshopify.com"; the X-Shopify-Shop-Domain it must match
    webhook_secret: SecretStr  # the app's client secret (or the store's webhook signing key)
    identity_key: SecretStr  # keys the e-mail hash; the same key for every channel of a program
    currency: CurrencyPolicy
    # Which of Shopify's two money sets earns: the shop's currency or what the buyer saw.
    currency_basis: Literal["shop", "presentment"] = "shop"
    include_shipping: bool = False
    include_tax: bool = False
    gift_cards_earn: bool = False  # buying a gift card is not spending; redeeming it is
    accept_test_orders: bool = False
    # How old a delivery's X-Shopify-Triggered-At may be: Shopify retries a failed delivery with the
    # original payload and header, 8 times over 4 hours (shopify.dev changelog "Updates to webhook
    # retry mechanism", 2024-09-10), says deliveries can be up to a day late ("Best practices for
    # webhooks"), and retried for 48 hours under its earlier schedule. The order id keys the event,
    # so a retry after a success posts nothing twice: the window can be the whole horizon.
    replay_window: timedelta = Field(default=SHOPIFY_RETRY_HORIZON, gt=timedelta(0))
    future_skew: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(0))

    @property
    def source(self) -> str:
        return f"shopify:{self.shop_domain.lower()}"


def parse_shopify_webhook(
    body: bytes | str, headers: Mapping[str, str], config: ShopifyConfig, *, now: datetime
) -> list[Event]:
    """Verify and normalise one delivery. An empty list means "valid, but nothing earns"."""
    raw = as_bytes(body)
    verify_signature(
        config.webhook_secret.get_secret_value().encode("utf-8"),
        raw,
        header(headers, HMAC_HEADER),
        HMAC_HEADER,
    )
    shop = (header(headers, SHOP_HEADER) or "").strip().lower()
    if shop != config.shop_domain.lower():
        raise UnknownSourceError(
            f"webhook is from shop {shop or '(none)'!r}, this source is {config.shop_domain!r}", shop=shop
        )
    triggered = header(headers, TRIGGERED_AT_HEADER)
    if triggered is None:
        raise MalformedPayloadError(f"{TRIGGERED_AT_HEADER} header is missing")
    at = parse_time(triggered, TRIGGERED_AT_HEADER)
    check_sent_within(at, now, config.replay_window, config.future_skew, "webhook triggered at")
    topic = (header(headers, TOPIC_HEADER) or "").strip()
    payload = parse_json_object(raw)
    if topic == "orders/paid":
        return _purchase(payload, config)
    if topic == "refunds/create":
        return _refund(payload, config)
    raise UnsupportedEventError(f"Shopify topic {topic or '(none)'!r} does not earn or refund", topic=topic)


class _Money:
    """Reads one side (shop or presentment) of Shopify's money sets, checking the currency."""

    def __init__(self, basis: Literal["shop", "presentment"], currency: str) -> None:
        self.key = "shop_money" if basis == "shop" else "presentment_money"
        self.basis = basis
        self.currency = currency

    def read(self, data: Mapping[str, Any], set_key: str, plain_key: str | None, where: str) -> Decimal:
        money_set = opt_obj(data, set_key, where)
        if money_set is not None:
            side = obj(money_set, self.key, f"{where}.{set_key}")
            code = side.get("currency_code")
            if code is not None and code != self.currency:
                raise MalformedPayloadError(f"{where}.{set_key}.{self.key} is in {code}, the order in {self.currency}")
            return parse_money(side.get("amount"), f"{where}.{set_key}.{self.key}.amount")
        # The plain fields are in the shop's currency only.
        if plain_key is not None and self.basis == "shop" and data.get(plain_key) is not None:
            return parse_money(data.get(plain_key), f"{where}.{plain_key}")
        raise MalformedPayloadError(f"{where}.{set_key} is missing")


def _order_currency(order: Mapping[str, Any], basis: str) -> str:
    key = "currency" if basis == "shop" else "presentment_currency"
    code = order.get(key) or (order.get("currency") if basis == "presentment" else None)
    if not isinstance(code, str) or not code:
        raise MalformedPayloadError(f"order.{key} is missing")
    return code


def _sku(line: Mapping[str, Any], where: str) -> str:
    for key, prefix in (("sku", ""), ("variant_id", "variant:"), ("product_id", "product:"), ("id", "line:")):
        value = opt_text(line, key, where)
        if value:
            return f"{prefix}{value}"
    raise MalformedPayloadError(f"{where} has no sku, variant, product or line id")


def _quantity(line: Mapping[str, Any], where: str) -> int:
    qty = line.get("quantity")
    if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
        raise MalformedPayloadError(f"{where}.quantity must be a positive integer")
    return qty


def _identity(order: Mapping[str, Any], config: ShopifyConfig) -> Identity:
    customer = opt_obj(order, "customer", "order") or {}
    key = config.identity_key.get_secret_value().encode("utf-8")
    for candidate in (order.get("email"), order.get("contact_email"), customer.get("email")):
        if isinstance(candidate, str) and candidate.strip():
            try:
                return Identity(kind=IdentityKind.EMAIL, value=hash_email(key, candidate))
            except InvalidIdentityError:
                continue  # a junk address should not hide a usable customer id
    customer_id = opt_text(customer, "id", "order.customer")
    if customer_id:
        return Identity(kind=IdentityKind.CUSTOMER, value=customer_id, scope=config.source)
    raise MissingIdentityError("order has no customer e-mail and no customer id")


def _purchase(order: Mapping[str, Any], config: ShopifyConfig) -> list[Event]:
    if order.get("test") is True and not config.accept_test_orders:
        return []
    order_id = text(order, "id", "order")
    currency = _order_currency(order, config.currency_basis)
    money = _Money(config.currency_basis, currency)
    convert = config.currency.converter(currency)
    taxes_included = order.get("taxes_included") is True

    lines: list[LineItem] = []
    merchandise = Decimal(0)
    for index, line in enumerate(array(order, "line_items", "order")):
        where = f"order.line_items[{index}]"
        if not isinstance(line, dict):
            raise MalformedPayloadError(f"{where} must be an object")
        if line.get("gift_card") is True and not config.gift_cards_earn:
            continue
        qty = _quantity(line, where)
        gross = money.read(line, "price_set", "price", where) * qty
        discounts = sum(
            (
                money.read(_as_obj(alloc, where), "amount_set", "amount", f"{where}.discount_allocations")
                for alloc in array(line, "discount_allocations", where)
            ),
            Decimal(0),
        )
        included_tax = Decimal(0)
        if taxes_included:
            # Prices already hold the tax then; merchandise value is what is left without it.
            included_tax = sum(
                (
                    money.read(_as_obj(tax, where), "price_set", "price", f"{where}.tax_lines")
                    for tax in array(line, "tax_lines", where)
                ),
                Decimal(0),
            )
        net = gross - discounts - included_tax
        if net < 0:
            raise AmountOutOfRangeError(f"{where} discounts exceed its price")
        merchandise += net
        lines.append(
            build(
                LineItem,
                sku=_sku(line, where),
                quantity=qty,
                amount=check_amount(convert(net), f"{where} amount"),
                category=str(line.get("product_type") or ""),
            )
        )

    shipping = _optional_money(money, order, "total_shipping_price_set", None)
    tax = _optional_money(money, order, "total_tax_set", "total_tax")
    eligible = merchandise
    if config.include_shipping:
        eligible += shipping
    if config.include_tax:
        eligible += tax
    occurred = order.get("processed_at") or order.get("created_at")
    return [
        build(
            PurchaseEvent,
            program=config.program,
            channel=Channel.ONLINE,
            source=config.source,
            external_id=order_id,
            reference=str(order.get("name") or order.get("order_number") or "")[:64],
            identity=_identity(order, config),
            occurred_at=parse_time(occurred, "order.processed_at"),
            currency=config.currency.program_currency,
            eligible_amount=check_amount(convert(eligible), "eligible amount"),
            lines=tuple(lines),
            shipping=check_amount(convert(shipping), "shipping"),
            tax=check_amount(convert(tax), "tax"),
            fx=convert.record(check_amount(eligible, "eligible amount")),
        )
    ]


def _optional_money(money: _Money, order: Mapping[str, Any], set_key: str, plain_key: str | None) -> Decimal:
    """Shipping and tax are absent on some orders (digital goods, tax-exempt buyers): that is zero."""
    if order.get(set_key) is None and (plain_key is None or order.get(plain_key) is None):
        return Decimal(0)
    return money.read(order, set_key, plain_key, "order")


def _as_obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayloadError(f"{where} holds an entry that is not an object")
    return value


def _refund_currency(items: list[Any], basis: str) -> str:
    side = "shop_money" if basis == "shop" else "presentment_money"
    for item in items:
        money_set = item.get("subtotal_set") if isinstance(item, dict) else None
        money = money_set.get(side) if isinstance(money_set, dict) else None
        code = money.get("currency_code") if isinstance(money, dict) else None
        if isinstance(code, str) and code:
            return code
    raise MalformedPayloadError("refund_line_items carry no subtotal_set currency")


def _refund(refund: Mapping[str, Any], config: ShopifyConfig) -> list[Event]:
    refund_id = text(refund, "id", "refund")
    order_id = text(refund, "order_id", "refund")
    items = array(refund, "refund_line_items", "refund")
    if not items:
        # Amount-only refunds name no merchandise, so there is nothing to claw back in proportion.
        return []
    currency = _refund_currency(items, config.currency_basis)
    money = _Money(config.currency_basis, currency)
    convert: Converter = config.currency.converter(currency)
    lines: list[LineItem] = []
    total = Decimal(0)
    for index, item in enumerate(items):
        where = f"refund.refund_line_items[{index}]"
        item = _as_obj(item, where)
        line = opt_obj(item, "line_item", where) or {}
        if line.get("gift_card") is True and not config.gift_cards_earn:
            continue
        subtotal = money.read(item, "subtotal_set", "subtotal", where)
        total += subtotal
        lines.append(
            build(
                LineItem,
                sku=_sku(line, f"{where}.line_item") if line else f"line:{text(item, 'line_item_id', where)}",
                quantity=_quantity(item, where),
                amount=check_amount(convert(subtotal), f"{where} subtotal"),
                category=str(line.get("product_type") or ""),
            )
        )
    if not lines:
        return []
    source = config.source
    return [
        build(
            RefundEvent,
            program=config.program,
            channel=Channel.ONLINE,
            source=source,
            external_id=refund_id,
            identity=Identity(kind=IdentityKind.ORDER, value=order_id, scope=source),
            occurred_at=parse_time(refund.get("processed_at") or refund.get("created_at"), "refund.created_at"),
            order_external_id=order_id,
            currency=config.currency.program_currency,
            refunded_amount=check_amount(convert(total), "refunded amount"),
            lines=tuple(lines),
            fx=convert.record(check_amount(total, "refunded amount")),
        )
    ]
