"""A member's statement: every ledger entry told as a line a member can read, in English or Chinese.

Each line says what happened (a title) and the facts that make it checkable (a detail: the order
and its amount, the shop or partner, how the points were computed, the reward, the earn that
expired), the change to the member's points and to the spendable part of them, the balances after
it and the config version whose rules applied. Lines are dated by the event (an order's time), not
by when the ledger wrote them. No internal id reaches a line: not the ledger's entry ids, not a
provisional member's id, not a lot.

A line is told from its entry and, for entries that settle another (an activation, an expiry, a
checkout's capture), from that other entry: the caller reads those in one batch per page
(`related_ids`), so a page costs two requests whatever the history behind it.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict

from shared.ledger.models import Account, Entry, EntryKind
from shared.model import Model

if TYPE_CHECKING:
    from collections.abc import Mapping

Language = Literal["en", "zh-CN"]
LANGUAGES: tuple[Language, ...] = ("en", "zh-CN")

# The balances after an entry, written by the ledger with the entry (entries written before it kept
# them have none, and their lines show no running balance rather than a guessed one).
BALANCE_AFTER = "balance_after"
PENDING_AFTER = "pending_after"
HELD_AFTER = "held_after"

# Members the platform made up for an identity nobody registered yet: their id means nothing to anyone.
_PROVISIONAL = "pv-"
# Entries whose line names the entry they settle; an activation's lot is named after the activation.
_SETTLING = frozenset({EntryKind.ACTIVATE, EntryKind.VOID, EntryKind.EXPIRY, EntryKind.REVERSAL})
_SETTLED = "settle:"
# What support did, on the entries it wrote (`shared.members.support`).
SUPPORT_ACTION = "support_action"
_TIER_OVERRIDE = "override by support "


class StatementLine(Model):
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


def line(entry: Entry, language: Language = "en", related: Mapping[str, Entry] | None = None) -> StatementLine:
    title, detail = _Describe(entry, language, related or {}).parts()
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


def related_ids(entries: list[Entry]) -> list[str]:
    """The entries a page's lines name (the earn an expiry or activation settles): read them in one batch."""
    wanted: list[str] = []
    for entry in entries:
        if entry.kind in _SETTLING and entry.related:
            wanted.append(entry.related)
            if entry.related.startswith(_SETTLED):  # a lot an activation made: the earn behind it
                wanted.append(entry.related.removeprefix(_SETTLED))
    return list(dict.fromkeys(wanted))


def balances_after(available: int, pending: int, held: int) -> dict[str, str]:
    """The details the ledger writes on each entry so a statement line can show the balances after it."""
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


def _decimal(text: object) -> Decimal | None:
    try:
        return Decimal(str(text))
    except InvalidOperation:
        return None


def _number(value: Decimal) -> str:
    """2, 1.5, 0.25: no trailing zeros, at most two places (the working is shown, not re-computed)."""
    rounded = value.quantize(Decimal("0.01")).normalize()
    return f"{rounded:f}"


def _money(amount: str, currency: str) -> str:
    value = _decimal(amount)
    if value is None:
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
    "earn.other": "Points added",
    "activate": "Points now spendable",
    "void": "Points on their way were cancelled",
    "settles": "{what}",
    "what.purchase": "from your order {order} of {day}",
    "what.partner": "from {note} with {partner} on {day}",
    "what.partner.plain": "from {partner} on {day}",
    "what.other": "from {title} on {day}",
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
    "clawback.working": "{points} points earned x {refunded} / {paid} refunded",
    "merge.in": "Your other account was joined to this one",
    "merge.in.named": "Account {other} was joined to this one",
    "merge.out": "This account was joined to your main account",
    "merge.out.named": "This account was joined to account {other}",
    "merge.detail": "its points, pending points and reservations moved with it",
    "gift.out": "Gift sent",
    "gift.out.named": "Gift sent to {other}",
    "gift.in": "Gift received",
    "gift.in.named": "Gift received from {other}",
    "gift.held": "held until {day}",
    "exchange.out": "Points exchanged to {other}",
    "exchange.in": "Points exchanged in from {other}",
    "exchange.detail": "{gross} points at rate {rate}, fee {fee}: {credited} credited",
    "other": "Points moved",
    "support.credit": "Points added by customer service",
    "support.debit": "Points deducted by customer service",
    "support.reversal": "Reversed by customer service",
    "reverses.spend": "the reward redeemed on {day} is undone, its points are back",
    "reverses.capture": "the checkout of {day} is undone, its points are back",
    "reverses.earn": "the points {what} are taken back",
    "gift.returned.out": "Gift returned by customer service",
    "gift.returned.in": "Gift points returned to you by customer service",
    "tier.moved": "Tier changed from {old} to {new}",
    "tier.override": "Tier set to {new} by customer service",
    "working": "how: {steps} = {points}",
    "step.base": "{points} base ({rate} per {currency})",
    "step.base.flat": "{points} base",
    "step.tier": "{points} {name} tier x{factor}",
    "step.tier.plain": "{points} {name} tier",
    "step.promo": "{points} promotion {name}",
    "step.bonus": "{points} bonus {name}",
    "step.behaviour": "{points} {name}",
    "step.rounding": "{points} rounding",
    "step.cap": "{points} {name}",
    "in_store": "store {store}",
    "reminder": "{points} points expire on {day} unless you spend them",
    "reminder.earn": "{points} {what}",
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
    "earn.other": "积分入账",
    "activate": "积分已可使用",
    "void": "待入账积分已取消",
    "settles": "来自{what}",
    "what.purchase": " {day} 的订单 {order}",
    "what.partner": " {day} 在 {partner} 的 {note}",
    "what.partner.plain": " {day} 来自 {partner} 的积分",
    "what.other": " {day} 的{title}",
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
    "clawback.working": "获得 {points} 积分 x 退款 {refunded} / 实付 {paid}",
    "merge.in": "您的另一个账户已并入本账户",
    "merge.in.named": "账户 {other} 已并入本账户",
    "merge.out": "本账户已并入您的主账户",
    "merge.out.named": "本账户已并入账户 {other}",
    "merge.detail": "其积分、待入账积分及预留积分已一并转入",
    "gift.out": "赠送积分",
    "gift.out.named": "赠送给 {other}",
    "gift.in": "收到赠送积分",
    "gift.in.named": "收到 {other} 的赠送",
    "gift.held": "暂存至 {day}",
    "exchange.out": "积分兑换至 {other}",
    "exchange.in": "从 {other} 兑换转入",
    "exchange.detail": "{gross} 积分，汇率 {rate}，手续费 {fee}，到账 {credited}",
    "other": "积分变动",
    "support.credit": "客服补偿积分",
    "support.debit": "客服扣减积分",
    "support.reversal": "客服撤销",
    "reverses.spend": "{day} 的兑换已撤销，积分已退回",
    "reverses.capture": "{day} 的结账已撤销，积分已退回",
    "reverses.earn": "{what}的积分已扣回",
    "gift.returned.out": "客服已退回您收到的赠送积分",
    "gift.returned.in": "客服已将您赠送的积分退回给您",
    "tier.moved": "会员等级由 {old} 调整为 {new}",
    "tier.override": "客服将会员等级调整为 {new}",
    "working": "计算：{steps} = {points}",
    "step.base": "基础 {points}（每 {currency} {rate}）",
    "step.base.flat": "基础 {points}",
    "step.tier": "{name} 等级 x{factor} {points}",
    "step.tier.plain": "{name} 等级 {points}",
    "step.promo": "促销 {name} {points}",
    "step.bonus": "奖励 {name} {points}",
    "step.behaviour": "{name} {points}",
    "step.rounding": "取整 {points}",
    "step.cap": "{name} {points}",
    "in_store": "门店 {store}",
    "reminder": "您有 {points} 积分将于 {day} 到期，请及时使用",
    "reminder.earn": "{points} 积分{what}",
}

_TEXT: dict[Language, dict[str, str]] = {"en": _EN, "zh-CN": _ZH}
_SEPARATOR: dict[Language, str] = {"en": "; ", "zh-CN": "；"}
# Words of the rules engine's own labels, for the Chinese working (operators name promotions themselves).
_ZH_LABELS = {
    "per-event cap": "单笔上限",
    "daily cap": "每日上限",
    "sign in": "签到",
    "review": "评价",
    "birthday": "生日",
    "member day": "会员日",
    "referral": "推荐",
}
# Reasons the ledger or a route fills in by default: the line's title already says them.
_SAID_BY_TITLE = frozenset(
    {"checkout", "checkout captured", "checkout hold released", "checkout hold lapsed", "points redeemed"}
)


class _Describe:
    """The title and detail of one entry, from its kind, its source and the facts in its details."""

    def __init__(self, entry: Entry, language: Language, related: Mapping[str, Entry]) -> None:
        self.entry = entry
        self.details = entry.details
        self.language = language
        self.text = _TEXT[language]
        self.related = related

    def say(self, key: str, **facts: object) -> str:
        return self.text[key].format(**facts)

    def join(self, *parts: str) -> str:
        return _SEPARATOR[self.language].join(part for part in parts if part)

    def day(self, stamp: datetime | str) -> str:
        if isinstance(stamp, datetime):
            return stamp.date().isoformat()
        try:
            return datetime.fromisoformat(stamp).date().isoformat()
        except ValueError:
            return stamp

    def own(self, reason: str) -> str:
        """The caller's reason, unless it only repeats what the title says."""
        return "" if reason in _SAID_BY_TITLE else reason

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

    # Earning

    def earn(self) -> tuple[str, str]:
        entry, details = self.entry, self.details
        title, facts = self.earned()
        waiting = ""
        if entry.kind is EntryKind.EARN_PENDING:
            if "held" in details:
                waiting = self.say("pending.held")
            elif "pending_until" in details:
                waiting = self.say("pending.until", day=self.day(details["pending_until"]))
        return title, self.join(facts, self.working(), waiting)

    def earned(self) -> tuple[str, str]:
        entry, details = self.entry, self.details
        source, channel = entry.source, details.get("channel", "")
        if details.get(SUPPORT_ACTION) == "adjustment":
            return self.say("support.credit"), entry.reason
        if source.startswith("partner-in:"):
            return self.say("partner_in", partner=_after(source, "partner-in:")), entry.reason
        if "basis_amount" in details:
            title = self.text.get(f"purchase.{channel}", self.text["purchase.online"])
            return title, self.say(
                "purchase.detail",
                order=details.get("order_ref") or details.get("event_id", entry.external_id),
                place=self.place(source),
                amount=_money(details["basis_amount"], details.get("currency", "")),
            )
        if channel == "partner":
            note = self.note()
            return self.say("partner_points", partner=_after(source, "partner:")), note
        behaviour = self.behaviour()
        if f"behaviour.{behaviour}" in self.text:
            return self.say(f"behaviour.{behaviour}"), ""
        return self.say("earn.other"), entry.reason

    def note(self) -> str:
        note = self.entry.reason.removesuffix(" (held for review)")
        return "" if note == "partner points" else note

    def working(self) -> str:
        """How the points were computed, from the rules' recorded steps, in the line's language."""
        try:
            steps: list[dict[str, Any]] = json.loads(self.details.get("breakdown", "[]"))
        except ValueError:
            return ""
        points = self.entry.delta(Account.AVAILABLE) + self.entry.delta(Account.PENDING)
        if not steps or (len(steps) == 1 and steps[0].get("kind") in ("producer", "behaviour")):
            return ""  # "1200 = 1200 flight PEK-SHA" says nothing the line does not
        told = [self.step(step) for step in steps]
        text = " + ".join(told).replace("+ -", "- ")
        return self.say("working", steps=text, points=points)

    def step(self, step: dict[str, Any]) -> str:
        kind, label = str(step.get("kind", "")), str(step.get("label", ""))
        points = _decimal(step.get("points")) or Decimal(0)
        shown = _number(points)
        factor = _decimal(step.get("factor")) if step.get("factor") is not None else None
        name = self.label(label)
        if kind == "base":
            amount = _decimal(self.details.get("basis_amount", ""))
            if amount:
                rate = _number(points / amount)
                return self.say("step.base", points=shown, rate=rate, currency=self.details.get("currency", ""))
            return self.say("step.base.flat", points=shown)
        if kind == "tier":
            tier = label.removesuffix(" tier")
            if factor is not None:
                return self.say("step.tier", points=shown, name=tier, factor=_number(factor))
            return self.say("step.tier.plain", points=shown, name=tier)
        if kind in ("promo", "bonus", "behaviour", "rounding", "cap"):
            return self.say(f"step.{kind}", points=shown, name=name)
        return f"{shown} {name}"

    def label(self, label: str) -> str:
        return _ZH_LABELS.get(label, label) if self.language == "zh-CN" else label

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

    # What another entry was, for the lines that settle it

    def what(self, entry_id: str) -> str:
        entry = self.related.get(entry_id)
        if entry is not None and entry.kind is EntryKind.ACTIVATE:
            entry = self.related.get(entry.related, entry)
        if entry is None or entry.kind not in (EntryKind.EARN, EntryKind.EARN_PENDING):
            return ""
        day = self.day(entry.event_time)
        if "basis_amount" in entry.details:
            return self.say(
                "what.purchase",
                order=entry.details.get("order_ref") or entry.details.get("event_id", entry.external_id),
                day=day,
            )
        other = _Describe(entry, self.language, {})
        if entry.details.get("channel") == "partner":
            partner = _after(entry.source, "partner:")
            note = other.note()
            if note:
                return self.say("what.partner", note=note, partner=partner, day=day)
            return self.say("what.partner.plain", partner=partner, day=day)
        title, _ = other.earned()
        return self.say("what.other", title=title, day=day)

    def settles(self) -> str:
        what = self.what(self.entry.related)
        return self.say("settles", what=what) if what else ""

    def activate(self) -> tuple[str, str]:
        return self.say("activate"), self.settles()

    def void(self) -> tuple[str, str]:
        return self.say("void"), self.join(self.settles(), self.entry.reason)

    # Spending

    def spend(self) -> tuple[str, str]:
        details = self.details
        if details.get(SUPPORT_ACTION) == "adjustment":
            return self.say("support.debit"), self.entry.reason
        if self.entry.source == "donation":
            return self.say("donation"), details.get("cause", self.entry.reason)
        if "draw" in details:
            return self.say("draw"), self.say("draw.detail", tickets=details.get("tickets", "1"), draw=details["draw"])
        if "reward" in details:
            cash = details.get("cash", "0")
            facts = {"quantity": details.get("quantity", "1"), "reward": details["reward"]}
            has_cash = cash not in ("", "0", "0.00")
            told = self.say("spend.cash", cash=cash, **facts) if has_cash else self.say("spend.reward", **facts)
            return self.say("spend"), told
        return self.say("spend"), self.own(self.entry.reason)

    def hold(self) -> tuple[str, str]:
        source = self.entry.source
        if source.startswith("partner-out:"):
            return self.say("hold.partner", partner=_after(source, "partner-out:")), ""
        return self.say("hold.checkout"), self.join(self.entry.external_id, self.own(self.entry.reason))

    def settle(self) -> tuple[str, str]:
        related, captured = self.entry.related, self.entry.kind is EntryKind.CAPTURE
        reason = self.own(self.entry.reason)
        if related.startswith("partner-out:"):
            partner = related.split(":")[1]
            key = "capture.partner" if captured else "release.partner"
            return self.say(key, partner=partner), "" if reason.startswith("transfer ") else reason
        if related.startswith("gift:") and not captured:
            return self.say("release.gift"), ""
        title = self.say("capture.checkout" if captured else "release.checkout")
        lapsed = self.say("lapsed") if self.entry.reason == "checkout hold lapsed" else ""
        return title, self.join(related.partition(":")[2], lapsed or reason)

    def reversal(self) -> tuple[str, str]:
        if self.details.get("cause_kind") != "operator":
            return self.say("reversal"), self.join(self.entry.reason, self.settles())
        return self.say("support.reversal"), self.join(self.entry.reason, self.reversed())

    def reversed(self) -> str:
        """What a support reversal undid, in the member's words."""
        undone = self.related.get(self.entry.related)
        if undone is None:
            return ""
        if undone.kind in (EntryKind.SPEND, EntryKind.CAPTURE):
            key = "reverses.spend" if undone.kind is EntryKind.SPEND else "reverses.capture"
            return self.say(key, day=self.day(undone.event_time))
        what = self.what(undone.entry_id)
        return self.say("reverses.earn", what=what.strip()) if what else ""

    def expiry(self) -> tuple[str, str]:
        day = self.day(self.entry.event_time)
        ended = self.entry.reason.startswith("program ended")
        told = self.say("expiry.ended" if ended else "expiry.detail", day=day)
        return self.say("expiry"), self.join(self.settles(), told)

    def clawback(self) -> tuple[str, str]:
        details = self.details
        order = details.get("order", "")
        amount = _money(details.get("refunded_amount", "0"), details.get("currency", ""))
        shown = details.get("order_ref") or order.rsplit(":", 1)[-1]
        facts = self.say("clawback.detail", amount=amount, order=shown) if order else ""
        return self.say("clawback"), self.join(facts, self.refund_working())

    def refund_working(self) -> str:
        # "-94 = 470 earned on <order> x refunded 94.00 of 470.00 (...)": the numbers, in the line's words.
        explanation = self.details.get("explanation", "")
        try:
            earned = explanation.split(" = ", 1)[1].split(" earned", 1)[0]
            refunded, paid = explanation.split(" x refunded ", 1)[1].split(" (", 1)[0].split(" of ")
        except (IndexError, ValueError):
            return ""
        return self.say("clawback.working", points=earned, refunded=_money(refunded, ""), paid=_money(paid, ""))

    # Moving between members

    def member(self, key: str, member: str, **facts: object) -> str:
        if not member or member.startswith(_PROVISIONAL):
            return self.say(key, **facts)
        return self.say(f"{key}.named", other=member, **facts)

    def merge(self) -> tuple[str, str]:
        if "from_member" in self.details:
            return self.member("merge.in", self.details["from_member"]), self.say("merge.detail")
        return self.member("merge.out", self.details.get("to_member", "")), self.say("merge.detail")

    def transfer(self) -> tuple[str, str]:
        entry, details = self.entry, self.details
        outgoing = entry.kind is EntryKind.TRANSFER_OUT
        if entry.source == "gift-reversal":
            return self.say("gift.returned.out" if outgoing else "gift.returned.in"), entry.reason
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
        title = self.member("gift.out" if outgoing else "gift.in", other.split("/", 1)[-1])
        message = entry.reason.partition(": ")[2]
        held = ""
        if not outgoing and entry.delta(Account.HELD) > 0 and "held_until" in details:
            held = self.say("gift.held", day=self.day(details["held_until"]))
        return title, self.join(message, held)


def tier_line(from_tier: str, to_tier: str, reason: str, language: Language = "en") -> str:
    """A tier move in the member's words: the move, and support's reason when support set it."""
    text = _TEXT[language]
    if reason.startswith(_TIER_OVERRIDE):
        said = reason.partition(": ")[2]
        colon = "：" if language == "zh-CN" else ": "
        return text["tier.override"].format(new=to_tier) + (f"{colon}{said}" if said else "")
    return text["tier.moved"].format(old=from_tier, new=to_tier)


# Reminders: the same words as the statement's lines, for points that have not expired yet.


def earn_named(entry_id: str, language: Language, related: Mapping[str, Entry]) -> str:
    """Where points came from, as an expiry's line names the earn ("from your order #1042 of 2026-01-02")."""
    entry = related.get(entry_id)
    if entry is None:
        return ""
    describe = _Describe(entry, language, related)
    what = describe.what(entry_id)
    return describe.say("settles", what=what) if what else ""


def expiring_notice(points: int, day: str, earns: list[tuple[int, str]], language: Language) -> str:
    """A reminder as one sentence: how many points expire when, and from which earns (points, their name)."""
    text, separator = _TEXT[language], _SEPARATOR[language]
    head = text["reminder"].format(points=points, day=day)
    told = [text["reminder.earn"].format(points=n, what=named) for n, named in earns if named]
    colon = "：" if language == "zh-CN" else ": "
    return head + colon + separator.join(told) if told else head
