"""Every multi-step operation, as a story whose every step boundary gets a crash.

`tests.support.crash.crash_points` runs a story once to count the writes its operation commits,
then once per write with the process stopped right after it, and the next delivery or run on a
restarted stack; the outcome must equal the crash-free run's, and (here) the audit must be clean.
A story names its operation; `STORIES` is the enumeration the proof walks, all of it every time.
tests/integration/test_crash_points.py takes its stories from here too (one setup of each), with
its own outcome and its expectations of each operation's writes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from shared.events.model import BehaviourAction
from shared.jobs.audit import audit_table
from shared.jobs.walk import JobInput
from shared.ledger.commands import Authorise, Capture, Earn, Send
from shared.ledger.models import Account
from shared.program.config import Tier
from tests.integration.ingest_support import CARD, EMAIL, NOW, Clock, behaviour, program, purchase, refund
from tests.support.crash import Story

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from functions.services import Services

WINDOW = program(return_window_days=30, behaviour={"referral": 200})
OTHER = program().model_copy(update={"program": "other", "name": "Other"})
ORDER = "shopify:acme.myshopify.com:1001"


def outcome(services: Services) -> tuple[object, ...]:
    """Balances, entries (id, kind, member, what they moved), holds, refunds still waiting, the audit."""
    entries, accounts, *_ = services.ledger_store.audit_records()
    return (
        sorted((a.program, a.member, a.available, a.pending, a.held, a.debt, a.merged_into) for a in accounts),
        sorted(
            (
                e.program,
                e.entry_id,
                e.kind.value,
                e.member,
                tuple(sorted((p.account.value, p.amount) for p in e.postings)),
            )
            for e in entries
        ),
        services.earning_items.waiting_refunds("demo", ORDER),
        audit_table(services.table).problems,
    )


def _earn(services: Services, member: str, points: int, ref: str, when: datetime = NOW) -> None:
    cmd = Earn(
        program="demo", member=member, points=points, source="shop", external_id=ref, reason="x", event_time=when
    )
    services.ledger.earn(cmd, at=when)


def activation_with_parked_refunds(clock: Clock) -> Story:
    def setup(services: Services) -> None:
        clock.now = NOW
        services.programs.publish(WINDOW)
        services.ingest.handle(purchase("1001", "100"))
        services.ingest.handle(refund("r-1", "1001", "30"))
        services.ingest.handle(refund("r-2", "1001", "10"))

    def activate(services: Services) -> object:
        clock.now = NOW + timedelta(days=31)
        return services.ingest.activate_due("demo")

    return Story(setup, activate, activate, outcome)


def refund_voids_order_and_referral(clock: Clock) -> Story:
    def setup(services: Services) -> None:
        clock.now = NOW
        services.programs.publish(WINDOW)
        services.members.claim(EMAIL.key, "m-new", provisional=False)
        services.ingest.handle(behaviour(BehaviourAction.REFERRAL, "ref-1", "m-ref", subject="m-new"))
        services.ingest.handle(purchase("1001", "100"))

    def refund_in_full(services: Services) -> object:
        clock.now = NOW
        return services.ingest.handle(refund("r-1", "1001", "100"))

    def next_delivery_and_run(services: Services) -> object:
        refund_in_full(services)
        clock.now = NOW + timedelta(days=31)
        return services.ingest.activate_due("demo")

    return Story(setup, refund_in_full, next_delivery_and_run, outcome)


def link_merges_provisional_member(clock: Clock, till_sales: Sequence[str] = ("64",)) -> Story:
    """A member known by email links a card that has till sales of its own (receipts R9, R10...)."""

    def setup(services: Services) -> None:
        clock.now = NOW
        services.programs.publish(WINDOW)
        services.members.claim(EMAIL.key, "m-1", provisional=False)
        services.ingest.handle(purchase("1001", "40", identity=EMAIL))
        for receipt, amount in enumerate(till_sales, start=9):
            services.ingest.handle(purchase(f"T1:R{receipt}", amount, identity=CARD, source="till:store-1"))

    def link(services: Services) -> object:
        return services.ingest.link("demo", CARD, EMAIL)

    def merged(services: Services) -> tuple[object, ...]:
        return (*outcome(services), services.ingest.resolve(CARD, "demo"))

    return Story(setup, link, link, merged)


def support_merge(clock: Clock) -> Story:
    def setup(services: Services) -> None:
        clock.now = NOW
        services.programs.publish(program())
        _earn(services, "ann", 70, "o-1")
        _earn(services, "bob", 30, "o-2")

    def merge(services: Services) -> object:
        return services.ingest.merge("demo", "bob", "ann", "same person, ticket 42")

    return Story(setup, merge, merge, outcome)


def exchange_between_programs(clock: Clock) -> Story:
    def setup(services: Services) -> None:
        clock.now = NOW
        services.programs.publish(program())
        services.programs.publish(OTHER)
        _earn(services, "ann", 100, "o-1")

    def exchange(services: Services) -> object:
        cmd = Send(
            program="demo",
            member="ann",
            to_program="other",
            to_member="ann",
            points=60,
            credited=30,
            source="exchange",
            external_id="q-1",
            reason="exchanged with other",
            counter=Account.PARTNER,
        )
        return services.ledger.send(cmd)

    return Story(setup, exchange, exchange, outcome)


def transfer_confirm(clock: Clock) -> Story:
    def setup(services: Services) -> None:
        clock.now = NOW
        services.programs.publish(program())
        _earn(services, "ann", 100, "o-1")
        hold = Authorise(
            program="demo",
            member="ann",
            points=60,
            source="partner-out:acme",
            external_id="t-1",
            reason="transfer to acme",
            lapses_at=NOW + timedelta(days=1),
            to_partner=True,
        )
        services.ledger.authorise(hold)

    def confirm(services: Services) -> object:
        cmd = Capture(
            program="demo",
            member="ann",
            hold_id="partner-out:acme:t-1",
            reason="transfer to acme confirmed",
            counter=Account.PARTNER,
            counter_owner="acme",
        )
        return services.ledger.capture(cmd).entry_id

    return Story(setup, confirm, confirm, outcome)


def hold_capture_in_part(clock: Clock) -> Story:
    def setup(services: Services) -> None:
        clock.now = NOW
        services.programs.publish(program())
        _earn(services, "ann", 100, "o-1")
        hold = Authorise(
            program="demo",
            member="ann",
            points=50,
            source="checkout",
            external_id="c-1",
            reason="checkout",
            lapses_at=NOW + timedelta(hours=1),
        )
        services.ledger.authorise(hold)

    def capture(services: Services) -> object:
        cmd = Capture(program="demo", member="ann", hold_id="checkout:c-1", points=35)
        return services.ledger.capture(cmd).entry_id

    return Story(setup, capture, capture, outcome)


def expiry_job(clock: Clock) -> Story:
    def setup(services: Services) -> None:
        clock.now = NOW - timedelta(days=5)
        services.programs.publish(program())
        clock.now = NOW
        for n, member in enumerate(("ann", "bob", "cy")):
            cmd = Earn(
                program="demo",
                member=member,
                points=10 + n,
                source="shop",
                external_id=f"o-{n}",
                reason="purchase",
                event_time=NOW - timedelta(days=4),
                expires_at=NOW - timedelta(days=n + 1),
            )
            services.ledger.earn(cmd, at=NOW - timedelta(days=4))

    def run(services: Services) -> object:
        return services.expiry_job.run(JobInput(now=NOW))

    return Story(setup, run, run, outcome)


def held_gift_released(clock: Clock) -> Story:
    def setup(services: Services) -> None:
        clock.now = NOW - timedelta(days=5)
        services.programs.publish(program())
        _earn(services, "ann", 100, "o-1", NOW - timedelta(days=4))
        clock.now = NOW - timedelta(days=3)
        gift = Send(
            program="demo",
            member="ann",
            to_program="demo",
            to_member="bob",
            points=40,
            credited=40,
            source="gift",
            external_id="g-1",
            reason="gift from ann to bob",
            counter=Account.TRANSFER,
            keep_expiry=True,
            hold_until=NOW - timedelta(days=1),
        )
        services.ledger.send(gift)
        clock.now = NOW

    def run(services: Services) -> object:
        return services.hold_lapse_job.run(JobInput(now=NOW, program="demo"))

    return Story(setup, run, run, outcome)


def late_earn_re_rating_later_ones(clock: Clock) -> Story:
    # Found by the soak: a redelivery of the late earn must finish the re-rating a stop cut short.
    tiers = (
        Tier(name="member", rank=0),
        Tier(name="silver", rank=1, threshold=Decimal(500), multiplier=Decimal("1.2")),
    )

    def setup(services: Services) -> None:
        clock.now = NOW - timedelta(days=10)
        services.programs.publish(program(tiers=tiers))
        clock.now = NOW
        services.ingest.handle(purchase("2002", "100", at=NOW - timedelta(days=1)))

    def deliver_late(services: Services) -> object:
        return services.ingest.handle(purchase("2001", "600", at=NOW - timedelta(days=3)))

    return Story(setup, deliver_late, deliver_late, outcome)


STORIES: dict[str, Callable[[Clock], Story]] = {
    "activation with parked refunds": activation_with_parked_refunds,
    "a refund voiding its order and the referral": refund_voids_order_and_referral,
    "link (merge of a provisional member)": link_merges_provisional_member,
    "support merge": support_merge,
    "exchange between programs": exchange_between_programs,
    "partner transfer confirm": transfer_confirm,
    "hold capture in part": hold_capture_in_part,
    "expiry job": expiry_job,
    "held gift released": held_gift_released,
    "a late earn re-rating a later one": late_earn_re_rating_later_ones,
}
