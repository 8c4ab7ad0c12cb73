"""Program figures from the table's stream: a realistic run fed through the watch handler reconciles with the ledger.

The story: online and till purchases (pending for the return window) and a partner's points; an
order refunded in full inside its window (void); activation once the window closes; a refund
clawing back half an order; a redemption; a checkout hold captured in part; a gift; an exchange
to another program; a lot that expires by the expiry job; an upgrade to gold; a till card linked
to the online member (a merge). Every stream record is then delivered, and delivered again.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from shared.events.model import Channel, Identity, IdentityKind, PurchaseEvent
from shared.infra.counters import SHARDS
from shared.jobs.walk import JobInput
from shared.ledger.audit import audit
from shared.ledger.commands import Authorise, Capture, Earn, Send, Spend
from shared.ledger.models import Account
from shared.members.records import TierChange, TierRecord
from shared.program.config import ProgramConfig, Tier
from shared.projections.figures import (
    ProgramFigures,
    buckets_of,
    local_day,
    program_figures,
    record_entries,
    record_entry,
)
from tests.integration.ingest_support import CARD, EMAIL, NOW, Clock, partner_points, purchase, refund
from tests.support.stream import deliver, entry_records

if TYPE_CHECKING:
    from functions.services import Services

TZ = "America/New_York"
LATER = NOW + timedelta(days=15)  # the return window (14 days) has closed


class Run:
    """The story's services (installed: the watch handler records the stream on them), the clock at NOW."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.ledger_store
        self.clock = Clock()
        services.clock = self.clock
        self.programs = services.programs
        tiers = (Tier(name="member", rank=0), Tier(name="gold", rank=1, threshold=Decimal(150)))
        self.programs.publish(
            ProgramConfig(program="demo", name="Demo", timezone=TZ, return_window_days=14, tiers=tiers)
        )
        self.programs.publish(ProgramConfig(program="air", name="Air"))
        self.ledger = services.ledger
        self.jobs = services.job_items
        self.tiers = services.tiers
        self.ingest = services.ingest

    def stream_records(self) -> list[dict[str, Any]]:
        return entry_records(self.services.table)

    def deliver(self, records: list[dict[str, Any]]) -> None:
        deliver(records)

    def figures(self, start: date, end: date, today: date | None = None) -> ProgramFigures:
        count = lambda: sum(self.services.table.stats.requests.values())  # noqa: E731
        config = self.programs.get("demo")
        today = today or self.clock.now.astimezone(config.tz).date()
        return program_figures(self.services.figure_items, config, start, end, today, requests=count)


@pytest.fixture
def run(services: Services) -> Run:
    return Run(services)


def till_purchase(order: str, amount: str) -> PurchaseEvent:
    return PurchaseEvent(
        program="demo",
        channel=Channel.POS,
        source="till:store-1",
        external_id=order,
        identity=CARD,
        occurred_at=NOW - timedelta(hours=3),
        currency="USD",
        eligible_amount=Decimal(amount),
    )


def play(run: Run) -> tuple[str, str]:
    """The story of the module docstring; returns the online member and the till member."""
    ingest, ledger = run.ingest, run.ledger
    online = ingest.handle(purchase("o-1", "200")).member
    ingest.handle(purchase("o-2", "40"))
    till = ingest.handle(till_purchase("t-1", "60")).member
    ingest.handle(partner_points("pp-1", 300, identity=Identity(kind=IdentityKind.MEMBER, value=online)))
    ingest.handle(refund("r-2", "o-2", "40"))  # o-2 refunded in full in its window: voided
    run.clock.now = LATER
    ingest.activate_due("demo", LATER)
    ingest.handle(refund("r-1", "o-1", "100"))  # half of o-1: half its points clawed back
    ledger.spend(Spend(program="demo", member=online, points=120, source="web", external_id="s-1", reason="reward"))
    lapse = LATER + timedelta(hours=1)
    hold = Authorise(program="demo", member=online, points=80, source="pos", external_id="h-1", reason="c",
                     lapses_at=lapse)  # fmt: skip
    ledger.authorise(hold)
    ledger.capture(Capture(program="demo", member=online, hold_id="pos:h-1", points=50))
    ledger.authorise(hold.model_copy(update={"points": 10, "external_id": "h-2"}))  # left open: held
    ingest.handle(purchase("o-3", "25", at=LATER))  # inside its return window: pending
    ledger.send(
        Send(program="demo", member=online, to_program="demo", to_member=till, points=20, credited=20,
             source="gift", external_id="g-1", reason="gift", keep_expiry=True)
    )  # fmt: skip
    ledger.send(
        Send(program="demo", member=online, to_program="air", to_member=online, points=40, credited=20,
             source="exchange", external_id="x-1", reason="exchange", counter=Account.PARTNER)
    )  # fmt: skip
    soon = LATER + timedelta(days=2)
    ledger.earn(
        Earn(program="demo", member=till, points=35, source="promo", external_id="e-1", reason="bonus",
             event_time=LATER, expires_at=soon)
    )  # fmt: skip
    run.clock.now = soon + timedelta(hours=1)
    run.services.expiry_job.run(JobInput(now=run.clock.now))
    ingest.link("demo", EMAIL, CARD)  # the till's provisional member folds into the online member
    return online, till


def test_figures_reconcile_with_the_ledger_and_redelivery_changes_nothing(run: Run) -> None:
    # Given the story played on the ledger, and every stream record it produced delivered once
    play(run)
    records = run.stream_records()
    run.deliver(records)
    start, end = NOW.date() - timedelta(days=1), run.clock.now.date() + timedelta(days=1)
    figures = run.figures(start, end)

    # When every record is delivered again (as a stream may), in two batches
    run.deliver(records[: len(records) // 2])
    run.deliver(records)
    again = run.figures(start, end)

    # Then the figures did not move
    assert again.to_date == figures.to_date
    assert again.series == figures.series and again.previous == figures.previous
    # And the outstanding liability is what members hold, bucket by bucket
    entries, accounts, lots, holds, pending = run.store.audit_records()
    report = audit(entries, accounts, lots, holds, pending)
    assert report.ok, report.problems
    demo = [a for a in accounts if a.program == "demo"]
    to_date = figures.to_date
    assert to_date["available"] == sum(a.available for a in demo)
    assert to_date["pending"] == sum(a.pending for a in demo)
    assert to_date["held"] == sum(a.held for a in demo)
    assert to_date.liability == sum(a.available + a.pending + a.held for a in demo)
    assert (to_date["pending"], to_date["held"]) == (25, 10)
    # And issued - redeemed - expired - ... is the same number, as the ledger's program-side accounts say
    assert to_date.unexplained == 0
    totals = report.totals["demo"]
    partner_net = sum(v for k, v in totals.items() if k.startswith("partner:"))
    assert to_date.issued == -totals["issuance"]
    assert to_date.redeemed == totals["redemption"]
    assert to_date.expired == totals["breakage"] == 35
    assert (
        partner_net
        == -to_date.partner_funded + to_date.sent_to_partners + to_date["exchanged_out"] - to_date["exchanged_in"]
    )
    assert (
        totals.get("transfer", 0)
        == to_date["gifts_sent"] - to_date["gifts_received"] + to_date["merged_out"] - to_date["merged_in"]
    )
    assert (
        to_date.issued + to_date.partner_funded - to_date.redeemed - to_date.expired - to_date["exchanged_out"]
        == to_date.liability
    )
    # And each figure is the story's own number
    assert (to_date["earned"], to_date["taken_back"]) == (200 + 40 + 60 + 35 + 25, 40 + 100)
    assert (to_date.partner_funded, to_date.redeemed, to_date["exchanged_out"]) == (300, 120 + 50, 40)
    assert (to_date["gifts_sent"], to_date["gifts_received"]) == (20, 20)
    assert to_date["accounts_merged"] == 1 and figures.members == 1
    assert {s.name: s.count for s in to_date.channels()} == {"online": 265, "pos": 60, "partner": 300, "api": 35}
    assert [(t.name, t.count) for t in figures.tiers] == [("member", 0), ("gold", 1)]
    assert to_date.redemption_rate == (Decimal(170) / Decimal(220 + 300)).quantize(Decimal("0.0001"))
    # And the days add up to the period, which here is the program's whole life
    assert sum(d.figures.liability for d in figures.series) == figures.period.liability == to_date.liability
    assert {k: v for k, v in figures.period.counters.items() if v} == {k: v for k, v in to_date.counters.items() if v}
    assert figures.opening_liability == 0 and figures.series[-1].liability_at_end == to_date.liability
    # And the read cost is proportional to the buckets asked: the period's days, the previous
    # period's (whole months as one bucket each), to date and tiers: SHARDS keys each, 100 a request
    buckets = len(figures.series) + len(buckets_of(figures.previous_start, figures.previous_end)) + 2
    assert figures.requests == -(-buckets * SHARDS // 100)


def test_any_period_reads_months_whole_and_its_edges_by_day(run: Run) -> None:
    # Given earns recorded on four days across three months, and a spend, all delivered twice
    days = [datetime(2026, 1, 20, 15, tzinfo=UTC), datetime(2026, 2, 10, 15, tzinfo=UTC),
            datetime(2026, 2, 28, 15, tzinfo=UTC), datetime(2026, 3, 5, 15, tzinfo=UTC)]  # fmt: skip
    for n, at in enumerate(days):
        cmd = Earn(program="demo", member="ann", points=100 * (n + 1), source="shop", external_id=f"o-{n}",
                   reason="o", event_time=at)  # fmt: skip
        run.ledger.earn(cmd, at=at)
    run.ledger.spend(
        Spend(program="demo", member="ann", points=250, source="web", external_id="s-1", reason="reward",
              details={"reward": "mug", "quantity": "1"}),
        at=days[-1] + timedelta(hours=1),
    )  # fmt: skip
    records = run.stream_records()
    run.deliver(records)
    run.deliver(records)
    today = date(2026, 3, 20)
    # When a period of 18 January to 3 March is read (45 days: a step per day, February read whole)
    by_day = run.figures(date(2026, 1, 18), date(2026, 3, 3), today)
    # And a period of 1 December to 4 March (94 days: a step per month; December and January, February whole)
    by_month = run.figures(date(2025, 12, 1), date(2026, 3, 4), today)
    # Then both count each earn once, by day or by month item
    assert by_day.interval == "day" and by_day.period.issued == 100 + 200 + 300
    assert by_month.interval == "month" and by_month.period.issued == 100 + 200 + 300
    assert [(p.start.isoformat(), p.figures.issued) for p in by_month.series] == [
        ("2025-12-01", 0), ("2026-01-01", 100), ("2026-02-01", 500), ("2026-03-01", 0),
    ]  # fmt: skip
    # And the liability after each step is what members held then; the days after the period are read for it
    assert [p.liability_at_end for p in by_month.series] == [0, 100, 600, 600]
    assert by_month.opening_liability == 0 and by_month.closing_liability == 600
    assert by_month.to_date.liability == 600 + 400 - 250
    # And the previous period (the same 94 days, just before) is there for comparison
    later = run.figures(date(2026, 3, 5), date(2026, 3, 20), today)
    assert (later.previous_start, later.previous_end) == (date(2026, 2, 17), date(2026, 3, 4))
    assert later.previous.issued == 300 and later.period.issued == 400 and later.opening_liability == 600
    assert later.period.redeemed == 250 and later.period.redemption_rate == Decimal("0.625")
    assert [(r.reward, r.points, r.count) for r in later.period.rewards()] == [("mug", 250, 1)]
    # And a ten-year period is read mostly from month items
    decade = run.figures(date(2016, 3, 21), date(2026, 3, 20), today)
    assert decade.interval == "month" and len(decade.series) == 121 and decade.period.issued == 1000
    assert decade.requests == -(
        -301 * SHARDS // 100
    )  # 301 buckets x SHARDS keys: the period, the previous ten years, to date, tiers


def test_days_are_the_programs_local_dates(run: Run) -> None:
    # Given an earn recorded at 02:00 UTC on 11 June: 22:00 on 10 June in New York
    at = datetime(2026, 6, 11, 2, 0, tzinfo=UTC)
    cmd = Earn(program="demo", member="ann", points=7, source="shop", external_id="late", reason="o", event_time=at)
    run.ledger.earn(cmd, at=at)
    # When the stream delivers it
    run.deliver(run.stream_records())
    # Then it counts on the local date 10 June, not the UTC date
    figures = run.figures(date(2026, 6, 10), date(2026, 6, 11))
    assert [(d.start.isoformat(), d.figures.issued) for d in figures.series] == [("2026-06-10", 7), ("2026-06-11", 0)]
    assert figures.members == 1 and [(t.name, t.count) for t in figures.tiers] == [("member", 1), ("gold", 0)]


def test_tier_counts_move_with_the_tier_items(run: Run) -> None:
    # Given two members with accounts, one upgraded to gold, then reviewed down after its period
    for member in ("ann", "bob"):
        cmd = Earn(program="demo", member=member, points=10, source="s", external_id=member, reason="o", event_time=NOW)
        run.ledger.earn(cmd, at=NOW)
    run.deliver(run.stream_records())
    config = run.programs.get("demo")
    state = TierRecord(
        tier="gold", since="2026-06-10T16:00:00Z", period_ends="2027-06-10T16:00:00Z", due_at="2027-06-10T16:00:00Z"
    )
    record = TierChange(
        at="2026-06-10T16:00:00Z",
        from_tier="member",
        to_tier="gold",
        reason="test",
        points=10,
        spend="0",
        config_version=1,
    )
    members = run.services.members
    assert members.move_tier("demo", "ann", state, record, None)
    mix = run.figures(NOW.date(), NOW.date()).tiers
    assert [(t.name, t.count, t.share) for t in mix] == [("member", 1, Decimal("0.5")), ("gold", 1, Decimal("0.5"))]
    # When the review moves ann back to the base tier (the tier item stays, naming the base tier)
    down = replace(state, tier=config.tiers[0].name, rev=1)
    assert members.move_tier("demo", "ann", down, replace(record, at="2027-06-20T00:00:00Z", to_tier="member"), "gold")
    # Then gold is empty again and both members are in the base tier
    assert [(t.name, t.count) for t in run.figures(NOW.date(), NOW.date()).tiers] == [("member", 2), ("gold", 0)]


def test_a_stream_batch_is_counted_in_a_transaction_per_program_and_day(run: Run) -> None:
    # Given the story's entries, over several days and two programs
    play(run)
    entries = run.store.audit_records()[0]
    days = {(e.program, local_day(e, run.programs.get(e.program))) for e in entries}
    assert len(days) > 1
    start, end = NOW.date() - timedelta(days=1), run.clock.now.date() + timedelta(days=1)
    items, table = run.services.figure_items, run.services.table

    # When they are counted as one batch
    table.stats.reset()
    counted = record_entries(items, run.programs, entries)

    # Then every entry is counted, with one transaction per program and day
    assert counted == {e.entry_id for e in entries}
    assert table.stats.requests["TransactWriteItems"] == len(days)
    assert table.stats.requests["GetItem"] <= 2  # each program's configuration, once
    figures = run.figures(start, end)
    assert (figures.to_date["earned"], figures.to_date.partner_funded) == (200 + 40 + 60 + 35 + 25, 300)

    # And counting them again, as a batch or one by one, counts nothing and changes nothing
    assert record_entries(items, run.programs, entries) == set()
    assert record_entries(items, run.programs, [entries[0], entries[0]]) == set()
    assert not any(record_entry(items, run.programs, e, sleep=lambda _: None) for e in entries)
    again = run.figures(start, end)
    assert again.to_date == figures.to_date and again.series == figures.series


def test_a_batch_holding_an_entry_counted_before_counts_the_rest_once(run: Run) -> None:
    # Given the story's stream records, the first three already delivered one batch each
    play(run)
    records = run.stream_records()
    for record in records[:3]:
        run.deliver([record])

    # When the whole stream is delivered as one batch (its group with those entries falls back to
    # counting one by one), and then again
    run.deliver(records)
    start, end = NOW.date() - timedelta(days=1), run.clock.now.date() + timedelta(days=1)
    figures = run.figures(start, end)
    run.deliver(records)

    # Then each entry counted once: the story's own numbers, unchanged by the redelivery
    to_date = figures.to_date
    assert (to_date["earned"], to_date["taken_back"]) == (200 + 40 + 60 + 35 + 25, 40 + 100)
    assert (to_date.partner_funded, to_date.redeemed, to_date["exchanged_out"]) == (300, 120 + 50, 40)
    assert to_date.unexplained == 0
    assert run.figures(start, end).to_date == to_date
