"""Program figures: the ledger's entries rolled up into per-program counters, by the program's local day.

The stream watcher hands every new entry to `record_entry`, which adds what the entry moved
(`entry_counters`) to three counter items in one transaction with a marker keyed by the entry id:
the day's (`F#<program>#<local date>#<shard>`), the month's (`F#<program>#<YYYY-MM>#<shard>`) and
the program-to-date one (`F#<program>#ALL#<shard>`). The marker makes a redelivered stream record
count nothing; the shard (a hash of the entry id) spreads a busy program's writes over several
items, since one item takes about 1,000 writes a second. `program_figures` reads a period of any
length back: whole calendar months from the month items and only the ragged edges from day items
(`PeriodPlan`), the previous period of the same length for comparison, the days after the period
(for the liability at its end), the program-to-date shards and the tier counts, all in
`BatchGetItem`s of 100 keys.

What is counted, from the postings alone (so the figures reconcile with the ledger's accounts):
each posting to a program-side account is a flow between the members and that account, named by
the account, its direction and, for partner and transfer postings, the entry's kind (the table in
docs/console.md). Member buckets (available, pending, held) are counted as signed net changes;
their program-to-date sum is the outstanding liability, and because every entry sums to zero it
equals what the program-side flows say (`Figures.unexplained` is always 0).

Tier mix: members' tier items are counted per tier name in the TIERS bucket by the tier move's own
transaction (`shared.members.store.tier_count_change`); members are accounts opened (an entry
with seq 1) less accounts merged away (the sending side of a merge); members without a tier item
are in the base tier.
"""

from __future__ import annotations

import random
import re
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from pydantic import ConfigDict, Field

from shared.errors import ContentionError, InvalidInputError
from shared.infra.counters import SHARDS, shard_of
from shared.ledger.contract import ConcurrentUpdateError
from shared.ledger.models import MEMBER_ACCOUNTS, Account, EntryKind
from shared.members.store import TIER_PREFIX, TIERS_BUCKET
from shared.model import Model
from shared.projections.store import ALL

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from shared.ledger.contract import Programs
    from shared.ledger.models import Entry, Posting
    from shared.program.config import ProgramConfig

# Writes to one program's counters spread over this many items per day, month and to date. 8 items
# at ~500 transactional writes/s each (the 1 KB counter item costs 2 WCU in a transaction) carry
# about 4,000 entries/s for one program; reading a day or a month costs 8 keys.
# Ten years: a period, its previous one and the months after it stay within ~30 BatchGetItems.
MAX_PERIOD_DAYS = 3660
# Up to a quarter the series has a point per day; longer periods have a point per month.
MAX_DAILY_SERIES_DAYS = 93
DEFAULT_PERIOD_DAYS = 30
TOP_REWARDS = 10
EARLIEST = date(1970, 1, 1)  # no ledger entry is older; keeps the previous period's dates valid
MAX_ATTEMPTS = 6
SHARE_PLACES = Decimal("0.0001")
CENT = Decimal("0.01")

# Gross flows between members and program-side accounts, all >= 0 (see docs/console.md).
FLOWS = (
    "earned",  # issuance -> members: earns and pending earns
    "taken_back",  # members -> issuance: voids, claw-backs, reversed earns
    "partner_earned",  # partner -> members: earns a partner pays for (partner feeds, transfers in)
    "partner_taken_back",  # members -> partner: those voided, clawed back or reversed
    "redeemed",  # members -> redemption: spends and captured holds
    "redemptions_reversed",  # redemption -> members: reversed spends and captures
    "to_partners",  # members -> partner: points spent at or transferred out to a partner brand
    "to_partners_reversed",  # partner -> members: those reversed
    "expired",  # members -> breakage
    "expiry_reversed",  # breakage -> members (no operation posts it today; kept so every posting counts)
    "exchanged_out",  # members -> partner program: the sending side of an exchange, fee included
    "exchanged_in",  # partner program -> members: the receiving side of an exchange
    "gifts_sent",  # members -> transfer: gifts sent
    "gifts_received",  # transfer -> members: gifts received (held until released, or available)
    "merged_out",  # members -> transfer: a merged account emptied
    "merged_in",  # transfer -> members: the survivor's side of a merge
    "goodwill_given",  # goodwill -> members: support's credits (and reversed support debits)
    "goodwill_taken",  # members -> goodwill: support's debits (and reversed support credits)
)
BUCKETS = ("available", "pending", "held", "debt")  # signed net changes of the member buckets (debt <= 0)
COUNTS = ("entries", "accounts_opened", "accounts_merged")
# Refunds after spending (`ProgramConfig.refunds.shortfall`), in points, from the claw-backs' details:
# written off by the program, or owed by members; and what later earns repaid of those debts.
SHORTFALLS = ("shortfall_written_off", "shortfall_owed", "debt_repaid")
CHANNEL_PREFIX = "channel:"
REWARD_POINTS_PREFIX = "reward:"  # points spent on a catalogue reward (the spend's `reward` detail)
REWARD_COUNT_PREFIX = "reward_count:"  # how many of it (the spend's `quantity` detail, default 1)
FUNDING_KINDS = frozenset({EntryKind.EARN, EntryKind.EARN_PENDING, EntryKind.VOID, EntryKind.CLAWBACK})
EARN_KINDS = frozenset({EntryKind.EARN, EntryKind.EARN_PENDING})
EXCHANGE_KINDS = frozenset({EntryKind.TRANSFER_OUT, EntryKind.TRANSFER_IN})
_CHANNEL_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
_REWARD_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # the catalogue's id pattern


class FigureStore(Protocol):
    """What the projection needs from storage (implemented by `shared.store.FigureItems`).

    `add_entry` writes the marker and the counter items of each bucket (the day, the month) and of
    the program to date in one transaction: False when the marker was there (counted before),
    `ConcurrentUpdateError` when another transaction held an item. `add_entries` does the same for
    several entries of one program and buckets at once (their counters summed, a marker each): False
    when any of the markers was there, and then nothing was written.
    """

    def add_entry(
        self, program: str, entry_id: str, buckets: Sequence[str], shard: int, counters: Mapping[str, int]
    ) -> bool: ...

    def add_entries(
        self, program: str, entry_ids: Sequence[str], buckets: Sequence[str], shard: int, counters: Mapping[str, int]
    ) -> bool: ...

    def read_buckets(self, program: str, buckets: Sequence[str], shards: int) -> dict[str, dict[str, int]]: ...


# --- What one entry adds ---------------------------------------------------------------------


def _flow(entry: Entry, posting: Posting) -> str:
    """The flow a program-side posting belongs to; `out` is points leaving the members."""
    out = posting.amount > 0
    account = posting.account
    if account is Account.ISSUANCE:
        return "taken_back" if out else "earned"
    if account is Account.REDEMPTION:
        return "redeemed" if out else "redemptions_reversed"
    if account is Account.BREAKAGE:
        return "expired" if out else "expiry_reversed"
    if account is Account.GOODWILL:
        return "goodwill_taken" if out else "goodwill_given"
    if account is Account.TRANSFER:
        if entry.kind is EntryKind.TRANSFER:
            return "merged_out" if out else "merged_in"
        return "gifts_sent" if out else "gifts_received"
    # Partner postings: an exchange between programs, a partner-funded earn (or its undoing), or
    # points sent to a partner brand (or their reversal). A reversal's direction tells which it undoes.
    if entry.kind in EXCHANGE_KINDS:
        return "exchanged_out" if out else "exchanged_in"
    if entry.kind in FUNDING_KINDS or (entry.kind is EntryKind.REVERSAL and out):
        return "partner_taken_back" if out else "partner_earned"
    return "to_partners" if out else "to_partners_reversed"


def channel_of(entry: Entry) -> str:
    """The channel an earn came through: the adapter's `channel` detail, else partner or api."""
    named = entry.details.get("channel", "")
    if _CHANNEL_NAME.match(named):
        return named
    return "partner" if any(p.account is Account.PARTNER for p in entry.postings) else "api"


def entry_counters(entry: Entry) -> dict[str, int]:
    """What one entry adds to its program's counters; zero counters are left out."""
    counters: dict[str, int] = {"entries": 1}

    def add(name: str, amount: int) -> None:
        if amount:
            counters[name] = counters.get(name, 0) + amount

    for posting in entry.postings:
        if posting.account in MEMBER_ACCOUNTS:
            add(str(posting.account), posting.amount)
        else:
            add(_flow(entry, posting), abs(posting.amount))
    if entry.seq == 1:
        add("accounts_opened", 1)
    if entry.kind is EntryKind.TRANSFER and "to_member" in entry.details:
        add("accounts_merged", 1)  # the sending side of a merge (its transfer posting may net to 0 with a debt)
    if entry.kind is EntryKind.CLAWBACK:
        policy = "shortfall_owed" if entry.details.get("shortfall_policy") == "recover" else "shortfall_written_off"
        add(policy, _whole(entry.details.get("shortfall", "0")))
    add("debt_repaid", _whole(entry.details.get("debt_repaid", "0")))
    goodwill = any(p.account is Account.GOODWILL for p in entry.postings)
    if entry.kind in EARN_KINDS and not goodwill:  # support's credits are no channel's earning
        earned = entry.delta(Account.AVAILABLE) + entry.delta(Account.PENDING) + entry.delta(Account.DEBT)
        add(CHANNEL_PREFIX + channel_of(entry), earned)
    reward = entry.details.get("reward", "")
    if entry.kind is EntryKind.SPEND and _REWARD_ID.match(reward):
        quantity = entry.details.get("quantity", "1")
        add(REWARD_POINTS_PREFIX + reward, entry.delta(Account.REDEMPTION))
        add(REWARD_COUNT_PREFIX + reward, int(quantity) if quantity.isdigit() else 1)
    return counters


def _whole(text: str) -> int:
    return int(text) if text.isdigit() else 0


def local_day(entry: Entry, config: ProgramConfig) -> date:
    """The day an entry counts on: the program's local date when the ledger recorded it."""
    return entry.recorded_at.astimezone(config.tz).date()


def month_bucket(day: date) -> str:
    """The month item's bucket: `YYYY-MM` (day buckets are `YYYY-MM-DD`)."""
    return f"{day.year:04d}-{day.month:02d}"


def record_entry(
    store: FigureStore, programs: Programs, entry: Entry, sleep: Callable[[float], None] = time.sleep
) -> bool:
    """Add one entry to its program's figures, once; False when it was already counted (a redelivery).

    A transaction on a busy counter can be refused because another is in flight on the same item:
    retried here a few times with jitter, then `contention`, and the stream delivers the record again.
    """
    config = programs.get(entry.program)
    day = local_day(entry, config)
    buckets = (day.isoformat(), month_bucket(day))
    counters = entry_counters(entry)
    for attempt in range(MAX_ATTEMPTS):
        try:
            return store.add_entry(entry.program, entry.entry_id, buckets, shard_of(entry.entry_id), counters)
        except ConcurrentUpdateError:
            sleep(random.uniform(0, 0.05 * 2**attempt))
    raise ContentionError(f"the figures of {entry.program} stayed busy; the stream will deliver {entry.entry_id} again")


# Markers per transaction when a stream batch is counted at once: DynamoDB's 100 actions, less the
# three counter items (the day, the month, the program to date).
MARKERS_PER_TRANSACTION = 97


def record_entries(
    store: FigureStore, programs: Programs, entries: Sequence[Entry], sleep: Callable[[float], None] = time.sleep
) -> set[str]:
    """Add a stream batch's entries to their programs' figures, a transaction per program and day
    instead of one per entry; the ids of the entries counted.

    Entries are grouped by program and local day and their counters summed onto one shard (the
    first entry's: which shard holds a count does not matter to the reader, who sums them all).
    A group any of whose entries was counted before (a redelivered record) or whose counters stayed
    busy is not counted here at all: its ids are left out, for `record_entry` to count one by one.
    """
    groups: dict[tuple[str, tuple[str, ...]], list[Entry]] = {}
    configs: dict[str, ProgramConfig] = {}
    for entry in entries:
        if entry.program not in configs:
            configs[entry.program] = programs.get(entry.program)
        day = local_day(entry, configs[entry.program])
        groups.setdefault((entry.program, (day.isoformat(), month_bucket(day))), []).append(entry)
    counted: set[str] = set()
    for (program, buckets), group in groups.items():
        for first in range(0, len(group), MARKERS_PER_TRANSACTION):
            chunk = group[first : first + MARKERS_PER_TRANSACTION]
            ids = [e.entry_id for e in chunk]
            if len(set(ids)) != len(ids):
                continue  # one entry twice in a batch: one transaction cannot write its marker twice
            summed: dict[str, int] = {}
            for entry in chunk:
                for name, amount in entry_counters(entry).items():
                    summed[name] = summed.get(name, 0) + amount
            counters = {name: amount for name, amount in summed.items() if amount}
            for attempt in range(MAX_ATTEMPTS):
                try:
                    if store.add_entries(program, ids, buckets, shard_of(ids[0]), counters):
                        counted.update(ids)
                    break
                except ConcurrentUpdateError:
                    sleep(random.uniform(0, 0.05 * 2**attempt))
    return counted


# --- Reading them back -----------------------------------------------------------------------


def _share(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) / Decimal(whole)).quantize(SHARE_PLACES) if whole > 0 else None


class Share(Model):
    model_config = ConfigDict(frozen=True)

    name: str
    count: int  # points for a channel, members for a tier
    share: Decimal | None  # of the whole, 4 places; None when the whole is 0


class RewardShare(Model):
    model_config = ConfigDict(frozen=True)

    reward: str  # the catalogue id
    points: int  # points spent on it (gross of reversals)
    count: int  # how many were redeemed
    share: Decimal | None  # of the points spent on all rewards, 4 places


class Figures(Model):
    """The counters of one day, a period or the program to date, and what follows from them."""

    model_config = ConfigDict(frozen=True)

    counters: dict[str, int] = Field(default_factory=dict)

    def __getitem__(self, name: str) -> int:
        return self.counters.get(name, 0)

    def plus(self, other: Figures) -> Figures:
        summed = dict(self.counters)
        for name, value in other.counters.items():
            summed[name] = summed.get(name, 0) + value
        return Figures(counters=summed)

    @classmethod
    def total(cls, parts: Sequence[Figures]) -> Figures:
        summed = Figures()
        for part in parts:
            summed = summed.plus(part)
        return summed

    @property
    def issued(self) -> int:
        """Net points out of the issuance account: earned (pending included) less taken back."""
        return self["earned"] - self["taken_back"]

    @property
    def partner_funded(self) -> int:
        return self["partner_earned"] - self["partner_taken_back"]

    @property
    def earned_by_members(self) -> int:
        """Every point members earned, whoever funds it: the rates' denominator."""
        return self.issued + self.partner_funded

    @property
    def redeemed(self) -> int:
        return self["redeemed"] - self["redemptions_reversed"]

    @property
    def sent_to_partners(self) -> int:
        return self["to_partners"] - self["to_partners_reversed"]

    @property
    def expired(self) -> int:
        return self["expired"] - self["expiry_reversed"]

    @property
    def gifts_net(self) -> int:
        """Gifts received less sent: 0 once both sides of every gift are counted."""
        return self["gifts_received"] - self["gifts_sent"]

    @property
    def merges_net(self) -> int:
        return self["merged_in"] - self["merged_out"]

    @property
    def goodwill(self) -> int:
        """Points support gave members (less what it took back), from the program's goodwill account."""
        return self["goodwill_given"] - self["goodwill_taken"]

    @property
    def shortfall_written_off(self) -> int:
        """Points refunds should have taken back but members had spent, borne by the program (`write_off`)."""
        return self["shortfall_written_off"]

    @property
    def shortfall_owed(self) -> int:
        """Those points put on the members' debt instead (`recover`); `debt_repaid` is what earns repaid."""
        return self["shortfall_owed"]

    @property
    def owed(self) -> int:
        """What members owe (to date: the outstanding debt), a positive number; for a period, its change."""
        return -self["debt"]

    @property
    def liability(self) -> int:
        """Points members hold (available + pending + held), less what they owe; for a period, its change."""
        return self["available"] + self["pending"] + self["held"] + self["debt"]

    @property
    def explained(self) -> int:
        """The liability as the program-side flows say it: what came in less what went out."""
        came_in = (
            self.issued + self.partner_funded + self["exchanged_in"] + self.gifts_net + self.merges_net + self.goodwill
        )
        went_out = self.redeemed + self.sent_to_partners + self.expired + self["exchanged_out"]
        return came_in - went_out

    @property
    def unexplained(self) -> int:
        """Liability not explained by the flows: 0 unless an entry did not sum to zero."""
        return self.liability - self.explained

    @property
    def redemption_rate(self) -> Decimal | None:
        """Points redeemed per point earned (issued + partner-funded), over the same days.

        A flow ratio: a period's redemptions include points earned before it, so it can pass 1.
        """
        return _share(self.redeemed, self.earned_by_members)

    @property
    def breakage_rate(self) -> Decimal | None:
        """Points expired per point earned (issued + partner-funded), over the same days (a flow ratio too)."""
        return _share(self.expired, self.earned_by_members)

    def channels(self) -> list[Share]:
        """Points earned per channel (gross of later take-backs), largest first."""
        by_channel = {
            name.removeprefix(CHANNEL_PREFIX): value
            for name, value in self.counters.items()
            if name.startswith(CHANNEL_PREFIX) and value
        }
        whole = sum(by_channel.values())
        ordered = sorted(by_channel.items(), key=lambda kv: (-kv[1], kv[0]))
        return [Share(name=name, count=points, share=_share(points, whole)) for name, points in ordered]

    def rewards(self, top: int = TOP_REWARDS) -> list[RewardShare]:
        """The catalogue rewards members spent most points on (gross of reversals), at most `top`."""
        by_reward = {
            name.removeprefix(REWARD_POINTS_PREFIX): value
            for name, value in self.counters.items()
            if name.startswith(REWARD_POINTS_PREFIX) and value
        }
        whole = sum(by_reward.values())
        ordered = sorted(by_reward.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        return [
            RewardShare(
                reward=reward,
                points=points,
                count=self[REWARD_COUNT_PREFIX + reward],
                share=_share(points, whole),
            )
            for reward, points in ordered
        ]


class SeriesPoint(Model):
    """One step of the series: a day, or a calendar month clipped to the period."""

    model_config = ConfigDict(frozen=True)

    start: date
    end: date
    figures: Figures
    liability_at_end: int  # what members held at the end of `end`


class ProgramFigures(Model):
    model_config = ConfigDict(frozen=True)

    program: str
    timezone: str
    start: date
    end: date
    interval: str  # "day" or "month": the series' step
    series: tuple[SeriesPoint, ...]  # every step of the period, in order
    period: Figures
    opening_liability: int  # what members held when the period began
    previous_start: date
    previous_end: date
    previous: Figures  # the period of the same length just before
    to_date: Figures
    members: int
    tiers: tuple[Share, ...]  # in the program's tier order, base first
    requests: int  # DynamoDB requests the read took

    @property
    def closing_liability(self) -> int:
        return self.opening_liability + self.period.liability


def period_bounds(config: ProgramConfig, now: datetime, start: date | None, end: date | None) -> tuple[date, date]:
    """The period asked, defaulting to the last 30 local days up to today; at most ten years, never backwards."""
    end = end or now.astimezone(config.tz).date()
    start = start or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if end < start:
        raise InvalidInputError("the period ends before it starts", start=start.isoformat(), end=end.isoformat())
    if start < EARLIEST:
        raise InvalidInputError(f"a period starts on {EARLIEST.isoformat()} or later", start=start.isoformat())
    length = (end - start).days + 1
    if length > MAX_PERIOD_DAYS:
        raise InvalidInputError(
            f"a period covers at most {MAX_PERIOD_DAYS} days (ten years), not {length}", days=length
        )
    return start, end


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def months_of(start: date, end: date) -> list[tuple[date, date]]:
    """The calendar months `start`..`end` touches, each clipped to it."""
    parts: list[tuple[date, date]] = []
    first = start
    while first <= end:
        following = _next_month(first)
        parts.append((first, min(end, following - timedelta(days=1))))
        first = following
    return parts


def buckets_of(start: date, end: date) -> list[str]:
    """The buckets whose counters sum to `start`..`end`: a month item for each whole month, day items for the rest."""
    found: list[str] = []
    for first, last in months_of(start, end):
        if first.day == 1 and _next_month(first) - timedelta(days=1) == last:
            found.append(month_bucket(first))
        else:
            found.extend((first + timedelta(days=d)).isoformat() for d in range((last - first).days + 1))
    return found


def series_steps(start: date, end: date) -> tuple[str, list[tuple[date, date]]]:
    """The series' interval and steps: days up to a quarter, calendar months (clipped) beyond."""
    if (end - start).days + 1 <= MAX_DAILY_SERIES_DAYS:
        return "day", [(start + timedelta(days=d),) * 2 for d in range((end - start).days + 1)]
    return "month", months_of(start, end)


def tier_mix(config: ProgramConfig, members: int, tier_counts: Mapping[str, int]) -> list[Share]:
    """Members per tier of the live config. Tier items name their tier; everyone else is in the base.

    A tier item whose tier the config no longer has counts in the base tier, as the ledger treats it.
    """
    base, *higher = config.tiers
    counted = [(tier.name, max(tier_counts.get(TIER_PREFIX + tier.name, 0), 0)) for tier in higher]
    in_base = max(members - sum(count for _, count in counted), 0)
    ladder = [(base.name, in_base), *counted]
    return [Share(name=name, count=count, share=_share(count, members)) for name, count in ladder]


def program_figures(
    store: FigureStore,
    config: ProgramConfig,
    start: date,
    end: date,
    today: date,
    requests: Callable[[], int] = lambda: 0,
) -> ProgramFigures:
    """The figures of `start`..`end` (local dates, inclusive): the series, the total, the previous period, to date.

    One read of every bucket needed: the period's steps, the previous period, the days after the
    period up to `today` (the liability at the period's end is the to-date liability less what
    moved since), to date and the tiers. The items are read without a snapshot, so while entries are
    being counted the parts may disagree by those entries.
    """
    before = requests()
    interval, steps = series_steps(start, end)
    length = (end - start).days + 1
    previous_start, previous_end = start - timedelta(days=length), start - timedelta(days=1)
    step_buckets = [buckets_of(first, last) for first, last in steps]
    previous_buckets = buckets_of(previous_start, previous_end)
    after_buckets = buckets_of(end + timedelta(days=1), today) if today > end else []
    wanted = dict.fromkeys(
        [*(b for bs in step_buckets for b in bs), *previous_buckets, *after_buckets, ALL, TIERS_BUCKET]
    )
    found = store.read_buckets(config.program, list(wanted), SHARDS)

    def summed(buckets: Sequence[str]) -> Figures:
        return Figures.total([Figures(counters=found.get(bucket, {})) for bucket in buckets])

    step_figures = [summed(buckets) for buckets in step_buckets]
    to_date = Figures(counters=found.get(ALL, {}))
    liability = to_date.liability - summed(after_buckets).liability
    closing: list[int] = []
    for figures in reversed(step_figures):
        closing.append(liability)
        liability -= figures.liability
    closing.reverse()
    series = tuple(
        SeriesPoint(start=first, end=last, figures=figures, liability_at_end=at_end)
        for (first, last), figures, at_end in zip(steps, step_figures, closing, strict=True)
    )
    members = max(to_date["accounts_opened"] - to_date["accounts_merged"], 0)
    return ProgramFigures(
        program=config.program,
        timezone=config.timezone,
        start=start,
        end=end,
        interval=interval,
        series=series,
        period=Figures.total(step_figures),
        opening_liability=liability,
        previous_start=previous_start,
        previous_end=previous_end,
        previous=summed(previous_buckets),
        to_date=to_date,
        members=members,
        tiers=tuple(tier_mix(config, members, found.get(TIERS_BUCKET, {}))),
        requests=requests() - before,
    )


def money_value(points: int, point_value: Decimal) -> Decimal:
    """Points in money at the program's point value, to the cent (half-even, as accounts round)."""
    return (Decimal(points) * point_value).quantize(CENT)
