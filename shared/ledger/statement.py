"""A member's statement: every ledger entry told as a line a member can read, in English or Chinese.

Each line says what happened (a title), the facts that make it checkable (a detail: the order and
its amount, the shop or partner, the rule's arithmetic, the reward, the other member of a gift), the
change to the member's points and to the spendable part of them, the balance after it and the
config version whose rules applied. Lines are dated by the event (an order's time), not by when the
ledger wrote them; a late order sits at its own date with the recording time beside it.

Only facts the entry carries are used: the statement of an entry never reads another item, so a
page costs one Query whatever the history behind it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.ledger.models import Account, Entry, EntryKind

Language = Literal["en", "zh-CN"]
LANGUAGES: tuple[Language, ...] = ("en", "zh-CN")

# The balance after an entry, written by the ledger with the entry (entries written before it kept
# balances have none, and their lines show no running balance rather than a guessed one).
BALANCE_AFTER = "balance_after"
PENDING_AFTER = "pending_after"
HELD_AFTER = "held_after"


class StatementLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    entry_id: str
    kind: EntryKind
    date: datetime
    recorded_at: datetime
    title: str
    detail: str
    points: int  # available + pending + held
    spendable: int  # available alone
    balance: int | None  # spendable points after this line
    pending: int | None  # points on their way after this line
    held: int | None  # points reserved after this line
    rule_version: int
    language: Language

    @property
    def sentence(self) -> str:
        colon = "：" if self.language == "zh-CN" else ": "
        return f"{self.title}{colon}{self.detail}" if self.detail else self.title


def line(entry: Entry, language: Language = "en") -> StatementLine:
    title, detail = _Describe(entry, _TEXT[language]).parts()
    return StatementLine(
        seq=entry.seq,
        entry_id=entry.entry_id,
        kind=entry.kind,
        date=entry.event_time,
        recorded_at=entry.recorded_at,
        title=title,
        detail=detail,
        points=sum(entry.delta(a) for a in (Account.AVAILABLE, Account.PENDING, Account.HELD)),
        spendable=entry.delta(Account.AVAILABLE),
        balance=_count(entry.details.get(BALANCE_AFTER)),
        pending=_count(entry.details.get(PENDING_AFTER)),
        held=_count(entry.details.get(HELD_AFTER)),
        rule_version=entry.config_version,
        language=language,
    )


def balances_after(available: int, pending: int, held: int) -> dict[str, str]:
    """The details the ledger writes on each entry so a statement line can show the balance after it."""
    return {BALANCE_AFTER: str(available), PENDING_AFTER: str(pending), HELD_AFTER: str(held)}


def choose_language(requested: str | None, accept_language: str | None) -> Language:
    """The statement's language: `lang` if given, else the best of Accept-Language, else English."""
    for tag in [requested] if requested else _ranked(accept_language or ""):
        found = _match(tag)
        if found is not None:
            return found
    return "en"


def _ranked(header: str) -> list[str]:
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if tag and weight > 0:
            ranked.append((-weight, position, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


def _match(tag: str) -> Language | None:
    lowered = tag.lower()
    if lowered == "en" or lowered.startswith("en-"):
        return "en"
    # Simplified Chinese: zh, zh-CN, zh-SG, zh-Hans(-*); Traditional (zh-TW, zh-HK, zh-Hant) is not offered.
    if lowered in ("zh", "zh-cn", "zh-sg") or lowered.startswith("zh-hans"):
        return "zh-CN"
    return None


def _count(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _money(amount: str, currency: str) -> str:
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return f"{amount} {currency}".strip()
    return f"{value:,.2f} {currency}".strip()


def _after(text: str, prefix: str) -> str:
    return text.split(":", 1)[1] if text.startswith(prefix) else text


# One catalogue per language. Keys name situations, not kinds: one kind reads differently by its source.
_EN = {
    "purchase.online": "Points for your online order",
    "purchase.pos": "Points for your purchase in store",
    "purchase.partner": "Points for your purchase with a partner",
    "purchase.app": "Points for your purchase in the app",
    "purchase.detail": "order {order} at {place}, {amount}",
    "pending.until": "spendable from {day}",
    "pending.held": "held for review before they can be spent",
    "partner_points": "Points from {partner}",
    "partner_in": "Points transferred in from {partner}",
    "behaviour.sign_in": "Points for signing in",
    "behaviour.review": "Points for your review",
    "behaviour.birthday": "Birthday points",
    "behaviour.member_day": "Member day points",
    "behaviour.referral": "Points for a friend you referred",
    "adjustment": "Points added by customer service",
    "activate": "Points now spendable",
    "activate.detail": "from {what}",
    "void": "Points on their way were cancelled",
    "spend": "Reward redeemed",
    "spend.reward": "{quantity} x {reward}",
    "spend.cash": "{quantity} x {reward}, with {cash} paid in cash",
    "donation": "Points donated",
    "draw": "Draw entry",
    "draw.detail": "{tickets} ticket(s) in draw {draw}",
    "hold.checkout": "Points reserved at checkout",
    "hold.partner": "Points reserved for a transfer to {partner}",
    "capture.checkout": "Checkout completed: reserved points spent",
    "capture.partner": "Transfer to {partner} completed",
    "release.checkout": "Checkout reservation released: points back",
    "release.partner": "Transfer to {partner} not completed: points back",
    "release.gift": "Held gift released: points now spendable",
    "lapsed": "the checkout was not completed in time",
    "reversal": "Correction",
    "expiry": "Points expired",
    "expiry.detail": "they reached their expiry date on {day}",
    "expiry.ended": "the program ended on {day}",
    "clawback": "Points taken back for a refund",
    "clawback.detail": "refund of {amount} on order {order}",
    "merge.in": "Account {other} merged into this one",
    "merge.out": "This account was merged into {other}",
    "merge.detail": "its points and pending points moved with it",
    "gift.out": "Gift sent to {other}",
    "gift.in": "Gift received from {other}",
    "gift.held": "held until {day}",
    "exchange.out": "Points exchanged to {other}",
    "exchange.in": "Points exchanged in from {other}",
    "exchange.detail": "{gross} points at rate {rate}, fee {fee}: {credited} credited",
    "other": "Points moved",
    "earn.other": "Points added",
    "rule": "rule: {rule}",
    "in_store": "store {store}",
}

_ZH = {
    "purchase.online": "网上订单积分",
    "purchase.pos": "门店消费积分",
    "purchase.partner": "合作伙伴消费积分",
    "purchase.app": "应用内消费积分",
    "purchase.detail": "订单 {order}，{place}，金额 {amount}",
    "pending.until": "{day} 起可用",
    "pending.held": "审核通过后方可使用",
    "partner_points": "来自 {partner} 的积分",
    "partner_in": "从 {partner} 转入的积分",
    "behaviour.sign_in": "签到积分",
    "behaviour.review": "评价积分",
    "behaviour.birthday": "生日积分",
    "behaviour.member_day": "会员日积分",
    "behaviour.referral": "推荐好友积分",
    "adjustment": "客服补发积分",
    "activate": "积分已可使用",
    "activate.detail": "来自 {what}",
    "void": "待入账积分已取消",
    "spend": "兑换礼品",
    "spend.reward": "{reward} x {quantity}",
    "spend.cash": "{reward} x {quantity}，另付现金 {cash}",
    "donation": "积分捐赠",
    "draw": "参加抽奖",
    "draw.detail": "抽奖 {draw}，{tickets} 张券",
    "hold.checkout": "结账预留积分",
    "hold.partner": "转出至 {partner} 的预留积分",
    "capture.checkout": "结账完成，预留积分已扣除",
    "capture.partner": "转出至 {partner} 已完成",
    "release.checkout": "结账预留已取消，积分已退回",
    "release.partner": "转出至 {partner} 未完成，积分已退回",
    "release.gift": "暂存的赠送积分已可使用",
    "lapsed": "结账未在时限内完成",
    "reversal": "更正",
    "expiry": "积分过期",
    "expiry.detail": "已于 {day} 到期",
    "expiry.ended": "积分计划已于 {day} 结束",
    "clawback": "因退款扣回积分",
    "clawback.detail": "订单 {order} 退款 {amount}",
    "merge.in": "账户 {other} 已合并到本账户",
    "merge.out": "本账户已合并到 {other}",
    "merge.detail": "其积分及待入账积分已一并转入",
    "gift.out": "赠送给 {other}",
    "gift.in": "收到 {other} 的赠送",
    "gift.held": "暂存至 {day}",
    "exchange.out": "积分兑换至 {other}",
    "exchange.in": "从 {other} 兑换转入",
    "exchange.detail": "{gross} 积分，汇率 {rate}，手续费 {fee}，到账 {credited}",
    "other": "积分变动",
    "earn.other": "积分入账",
    "rule": "规则：{rule}",
    "in_store": "门店 {store}",
}

_TEXT: dict[Language, dict[str, str]] = {"en": _EN, "zh-CN": _ZH}
# Reasons the ledger or a route fills in by default: the line's title already says them.
_SAID_BY_TITLE = frozenset(
    {"checkout", "checkout captured", "checkout hold released", "checkout hold lapsed", "points redeemed"}
)
_SEPARATOR: dict[str, str] = {"en": "; ", "zh-CN": "；"}


class _Describe:
    """The title and detail of one entry, from its kind, its source and the facts in its details."""

    def __init__(self, entry: Entry, text: dict[str, str]) -> None:
        self.entry = entry
        self.details = entry.details
        self.text = text
        self.separator = _SEPARATOR["zh-CN" if text is _ZH else "en"]

    def say(self, key: str, **facts: object) -> str:
        return self.text[key].format(**facts)

    def join(self, *parts: str) -> str:
        return self.separator.join(part for part in parts if part)

    def day(self, stamp: datetime | str) -> str:
        if isinstance(stamp, datetime):
            return stamp.date().isoformat()
        try:
            return datetime.fromisoformat(stamp).date().isoformat()
        except ValueError:
            return stamp

    def parts(self) -> tuple[str, str]:
        kind = self.entry.kind
        if kind in (EntryKind.EARN, EntryKind.EARN_PENDING):
            return self.earn()
        handler = {
            EntryKind.ACTIVATE: self.activate,
            EntryKind.VOID: self.void,
            EntryKind.SPEND: self.spend,
            EntryKind.HOLD: self.hold,
            EntryKind.CAPTURE: self.settle,
            EntryKind.RELEASE: self.settle,
            EntryKind.REVERSAL: self.reversal,
            EntryKind.EXPIRY: self.expiry,
            EntryKind.CLAWBACK: self.clawback,
            EntryKind.TRANSFER: self.merge,
            EntryKind.TRANSFER_OUT: self.transfer,
            EntryKind.TRANSFER_IN: self.transfer,
        }.get(kind)
        return handler() if handler is not None else (self.say("other"), self.entry.reason)

    def earn(self) -> tuple[str, str]:
        entry, details = self.entry, self.details
        source = entry.source
        rule = details.get("explanation", "")
        channel = details.get("channel", "")
        if source.startswith("partner-in:"):
            title, facts = self.say("partner_in", partner=_after(source, "partner-in:")), entry.reason
        elif source.startswith("adjustment") or source.startswith("support"):
            title, facts = self.say("adjustment"), entry.reason
        elif "basis_amount" in details:
            title = self.text.get(f"purchase.{channel}", self.text["purchase.online"])
            facts = self.say(
                "purchase.detail",
                order=details.get("event_id", entry.external_id),
                place=self.place(source),
                amount=_money(details["basis_amount"], details.get("currency", "")),
            )
        elif channel == "partner":
            title = self.say("partner_points", partner=_after(source, "partner:"))
            note = details.get("note", "") or entry.reason.removesuffix(" (held for review)")
            facts = "" if note == "partner points" else note
            points = entry.delta(Account.AVAILABLE) + entry.delta(Account.PENDING)
            if rule == f"{points} = {points} {entry.reason}":
                rule = ""  # "1200 = 1200 flight PEK-SHA" says nothing the line does not
        elif f"behaviour.{self.behaviour()}" in self.text:
            title, facts = self.say(f"behaviour.{self.behaviour()}"), ""
        else:
            title, facts = self.say("earn.other"), entry.reason
        waiting = ""
        if entry.kind is EntryKind.EARN_PENDING:
            if "held" in details:
                waiting = self.say("pending.held")
            elif "pending_until" in details:
                waiting = self.say("pending.until", day=self.day(details["pending_until"]))
        return title, self.join(facts, self.say("rule", rule=rule) if rule else "", waiting)

    def behaviour(self) -> str:
        reason = self.entry.reason.removesuffix(" (held for review)")
        if reason.startswith("referral"):
            return "referral"
        return reason.replace(" ", "_")

    def place(self, source: str) -> str:
        channel, _, name = source.partition(":")
        if channel == "till":
            return self.say("in_store", store=name)
        return name or channel

    def activate(self) -> tuple[str, str]:
        return self.say("activate"), self.say("activate.detail", what=self.entry.related)

    def void(self) -> tuple[str, str]:
        return self.say("void"), self.entry.reason

    def spend(self) -> tuple[str, str]:
        details = self.details
        if self.entry.source == "donation":
            return self.say("donation"), details.get("cause", self.entry.reason)
        if "draw" in details:
            return self.say("draw"), self.say("draw.detail", tickets=details.get("tickets", "1"), draw=details["draw"])
        if "reward" in details:
            cash = details.get("cash", "0")
            facts = {"quantity": details.get("quantity", "1"), "reward": details["reward"]}
            has_cash = cash not in ("", "0", "0.00")
            return self.say("spend"), self.say("spend.cash", cash=cash, **facts) if has_cash else self.say(
                "spend.reward", **facts
            )
        return self.say("spend"), self.entry.reason

    def hold(self) -> tuple[str, str]:
        source = self.entry.source
        if source.startswith("partner-out:"):
            return self.say("hold.partner", partner=_after(source, "partner-out:")), self.entry.reason
        return self.say("hold.checkout"), self.join(self.entry.external_id, self.own(self.entry.reason))

    def own(self, reason: str) -> str:
        """The caller's reason, unless it only repeats what the title says."""
        return "" if reason in _SAID_BY_TITLE else reason

    def settle(self) -> tuple[str, str]:
        related, captured = self.entry.related, self.entry.kind is EntryKind.CAPTURE
        reason = self.own(self.entry.reason)
        if related.startswith("partner-out:"):
            partner = related.split(":")[1]
            return self.say("capture.partner" if captured else "release.partner", partner=partner), reason
        if related.startswith("gift:") and not captured:
            return self.say("release.gift"), reason
        title = self.say("capture.checkout" if captured else "release.checkout")
        lapsed = self.say("lapsed") if self.entry.reason == "checkout hold lapsed" else ""
        return title, self.join(related.partition(":")[2], lapsed or reason)

    def reversal(self) -> tuple[str, str]:
        return self.say("reversal"), self.entry.reason

    def expiry(self) -> tuple[str, str]:
        day = self.day(self.entry.event_time)
        if self.entry.reason.startswith("program ended"):
            return self.say("expiry"), self.say("expiry.ended", day=day)
        return self.say("expiry"), self.say("expiry.detail", day=day)

    def clawback(self) -> tuple[str, str]:
        details = self.details
        order = details.get("order", "")
        amount = _money(details.get("refunded_amount", "0"), details.get("currency", ""))
        facts = self.say("clawback.detail", amount=amount, order=order.rsplit(":", 1)[-1]) if order else ""
        # The rule's arithmetic without the ledger's id of the order, which the facts already name.
        rule = details.get("explanation", "").replace(f" on {order}", "") if order else details.get("explanation", "")
        return self.say("clawback"), self.join(facts, self.say("rule", rule=rule) if rule else "")

    def merge(self) -> tuple[str, str]:
        if "from_member" in self.details:
            return self.say("merge.in", other=self.details["from_member"]), self.say("merge.detail")
        return self.say("merge.out", other=self.details.get("to_member", "")), self.say("merge.detail")

    def transfer(self) -> tuple[str, str]:
        entry, details = self.entry, self.details
        outgoing = entry.kind is EntryKind.TRANSFER_OUT
        other = (details.get("to") if outgoing else details.get("from")) or ""
        if entry.source == "exchange":
            program = other.split("/", 1)[0]
            facts = self.say(
                "exchange.detail",
                gross=details.get("gross", ""),
                rate=details.get("rate", ""),
                fee=details.get("fee", ""),
                credited=details.get("credited", ""),
            )
            return self.say("exchange.out" if outgoing else "exchange.in", other=program), facts
        member = other.split("/", 1)[-1]
        title = self.say("gift.out" if outgoing else "gift.in", other=member)
        message = entry.reason.partition(": ")[2]
        held = ""
        if not outgoing and entry.delta(Account.HELD) > 0 and "held_until" in details:
            held = self.say("gift.held", day=self.day(details["held_until"]))
        return title, self.join(message, held)
