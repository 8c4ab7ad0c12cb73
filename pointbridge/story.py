"""The demo's months: a brand's members earning, spending, being reminded and losing points, week by week.

Demo Outfitters sells online (a Shopify shop), in three stores (tills S01-S03) and with an airline
partner, SkyAir, whose flights earn points. A few hundred members live through several simulated
months: they buy in every channel, fly, review products in the app, redeem rewards, are reminded
before their points expire and lose the ones they leave, move up tiers; one is flagged by the
anomaly watch and a support agent decides. Their events go through the real ingest path (rules,
tiers, caps) on the sandbox's table, at the simulated time; the sandbox's own functions do the
rest as in production: the stream's watch (figures, flags, the outbound events), and the scheduled
jobs (activation, expiry, reminders, tier review), run at each simulated week's end.

Time runs from some months ago up to today, so everything it writes is in the past and the real
channels that come after it (the demo's Alice) carry on from there.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from functions.services import Services
    from pointbridge.sandbox import Sandbox
    from shared.program.config import ProgramConfig

SHOP_SOURCE = "shopify:demo-outfitters.myshopify.com"
STORES = ("S01", "S02", "S03")
PARTNER = "skyair"
ROUTES = ("JFK-SFO", "JFK-LAX", "BOS-ORD", "SFO-SEA", "JFK-MIA", "ORD-DEN")
REWARDS = (("tote-bag", 150), ("water-bottle", 300), ("camp-chair", 800))
# The member the anomaly watch catches: four sales on one card within an hour (the program allows three).
FLAGGED = "m007"
SUPPORT_AGENT = "support-lee"
JOBS = ("ActivationFunction", "ExpiryFunction", "ReminderFunction", "TierFunction")
FLAG_WEEK = 6


def _regular(n: int) -> bool:
    """One member in twenty shops most weeks: they redeem and climb the tiers (m002, m022, ...)."""
    return n % 20 == 1


def _due_jobs(week: int, weeks: int) -> list[str]:
    if week == weeks - 1:
        return list(JOBS)
    due = ["ReminderFunction"] if week % 2 == 1 else []
    if week % 4 == 3:
        due[:0] = ["ActivationFunction", "ExpiryFunction"]
    return due


class SimulatedClock:
    """The time the story's writes are stamped with; moved forward week by week."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class StoryReport:
    members: int
    weeks: int
    started: datetime
    ended: datetime
    events: Counter[str] = field(default_factory=Counter)
    redemptions: int = 0
    flagged: str = FLAGGED
    decision: str = ""
    job_runs: int = 0


def story_config(base: ProgramConfig) -> ProgramConfig:
    """The demo seed's program, tuned so a few months show every part: points expire after two
    months (reminded two weeks before), tiers a shopper reaches in a season, three sales an hour per card."""
    from shared.program.config import ProgramConfig

    document = base.model_dump(mode="json")
    document["expiry"] = {"kind": "rolling", "months": 2}
    document["reminder_days"] = 14
    thresholds = {"silver": "100", "gold": "300", "diamond": "800"}
    for tier in document["tiers"]:
        tier["threshold"] = thresholds.get(tier["name"], tier["threshold"])
    document["anomaly"] = {**document.get("anomaly", {}), "max_earns_per_card_per_hour": 3}
    return ProgramConfig.model_validate(document)


def _card(number: str) -> str:
    # The keyed hash a till's adapter sends for a card: here keyed by the story (no real card behind it).
    return hashlib.sha256(f"demo-story:{number}".encode()).hexdigest()


@dataclass
class Story:
    sb: Sandbox
    services: Services
    clock: SimulatedClock
    members: int
    weeks: int
    say: Callable[[str], None] = print
    rng: random.Random = field(default_factory=lambda: random.Random(2026))
    _order: int = 1000

    def member_ids(self) -> list[str]:
        return [f"m{n:03d}" for n in range(1, self.members + 1)]

    def run(self, program: str) -> StoryReport:
        start = self.clock.now
        report = StoryReport(self.members, self.weeks, start, start + timedelta(weeks=self.weeks))
        for week in range(self.weeks):
            monday = start + timedelta(weeks=week)
            self._week(program, week, monday, report)
            if week == FLAG_WEEK:
                self._flag_and_decide(program, monday, report)
            # The schedules, thinned to what a week needs: reminders every fortnight (they look 14 days
            # ahead), activation and expiry every four weeks, the tier review at the end (moves up
            # happen on earning; down only after a 12-month period).
            sunday = monday + timedelta(days=6, hours=23)
            for job in _due_jobs(week, self.weeks):
                self.sb.run_function(job, now=sunday)
                report.job_runs += 1
            if week % 4 == 3 or week == self.weeks - 1:
                self.say(f"   week {week + 1:>2} ({monday.date()}): {sum(report.events.values())} events so far")
        return report

    # One week of the members' lives

    def _week(self, program: str, week: int, monday: datetime, report: StoryReport) -> None:
        from shared.events.model import BehaviourAction, BehaviourEvent, Channel, Identity, IdentityKind, PointsEvent
        from shared.events.model import PurchaseEvent as Purchase

        events: list[Any] = []
        for n, member in enumerate(self.member_ids()):
            # One member in five stops coming after the first month: their points expire.
            if n % 5 == 4 and week > 3:
                continue
            who = Identity(kind=IdentityKind.MEMBER, value=member)
            at = monday + timedelta(days=self.rng.randrange(6), hours=self.rng.randrange(9, 20))
            roll = self.rng.random()
            if _regular(n):
                roll *= 0.08  # a regular comes most weeks
            common = {"program": program, "identity": who, "occurred_at": at}
            if roll < 0.02:
                self._order += 1
                amount = Decimal(self.rng.randrange(2000, 18000)) / 100
                events.append(
                    Purchase(
                        channel=Channel.ONLINE,
                        source=SHOP_SOURCE,
                        external_id=str(self._order),
                        reference=f"#{self._order}",
                        currency="USD",
                        eligible_amount=amount,
                        **common,
                    )
                )
            elif roll < 0.036:
                store = STORES[n % len(STORES)]
                receipt = f"R{week:02d}{n:04d}"
                amount = Decimal(self.rng.randrange(1500, 9000)) / 100
                events.append(
                    Purchase(
                        channel=Channel.POS,
                        source=f"till:{store}",
                        external_id=receipt,
                        reference=receipt,
                        currency="USD",
                        eligible_amount=amount,
                        **common,
                    )
                )
            elif roll < 0.043:
                route = ROUTES[self.rng.randrange(len(ROUTES))]
                events.append(
                    PointsEvent(
                        channel=Channel.PARTNER,
                        source=f"partner:{PARTNER}",
                        external_id=f"flight-{week}-{n}",
                        points=self.rng.randrange(200, 900, 50),
                        reason=f"flight {route}",
                        **common,
                    )
                )
            elif roll < 0.05:
                events.append(
                    BehaviourEvent(
                        channel=Channel.APP,
                        source="app",
                        external_id=f"review-{week}-{n}",
                        action=BehaviourAction.REVIEW,
                        subject="TENT-2P",
                        **common,
                    )
                )
        self.clock.now = monday + timedelta(days=6, hours=22)
        with ThreadPoolExecutor(max_workers=6) as pool:
            for event in pool.map(self._ingest, events):
                report.events[event] += 1
        self._redeem(program, week, report)

    def _ingest(self, event: Any) -> str:
        self.services.ingest.handle(event)
        return str(event.channel)

    def _redeem(self, program: str, week: int, report: StoryReport) -> None:
        from shared.errors import PointbridgeError
        from shared.ledger.commands import Spend

        for n, member in enumerate(self.member_ids()):
            if self.rng.random() > (0.3 if _regular(n) else 0.1) or member == FLAGGED:
                continue
            try:
                available = self.services.ledger.account(program, member).available
            except PointbridgeError:
                continue  # no account yet
            affordable = [(reward, points) for reward, points in REWARDS if points <= available]
            if not affordable:
                continue
            reward, points = affordable[-1]
            cmd = Spend(
                program=program,
                member=member,
                points=points,
                source="redemption",
                external_id=f"story-{week}-{n}",
                reason=f"redeemed 1 x {reward}",
                details={"reward": reward, "quantity": "1", "cash": "0"},
            )
            self.services.ledger.spend(cmd, at=self.clock.now)
            report.redemptions += 1

    # The anomaly watch, and support deciding

    def _flag_and_decide(self, program: str, monday: datetime, report: StoryReport) -> None:
        from shared.events.model import Channel, Identity, IdentityKind
        from shared.events.model import PurchaseEvent as Purchase
        from shared.members.flags import decide_flag, is_flagged

        card = _card("6001 4444 0007")
        at = monday + timedelta(days=2, hours=15)
        for visit in range(4):
            self.services.ingest.handle(
                Purchase(
                    program=program,
                    channel=Channel.POS,
                    source="till:S02",
                    external_id=f"R-FLAG-{visit}",
                    reference=f"R-FLAG-{visit}",
                    identity=Identity(kind=IdentityKind.MEMBER, value=FLAGGED),
                    occurred_at=at + timedelta(minutes=9 * visit),
                    currency="USD",
                    eligible_amount=Decimal("49.00"),
                    card=card,
                )
            )
            report.events["pos"] += 1
        self.sb.wait_for_idle(timeout=600)
        flagged = is_flagged(self.services.members, program, FLAGGED)
        self.say(f"   the anomaly watch flagged {FLAGGED}: four sales on one card in an hour ({flagged})")
        note = "called the member: she bought gifts for her team, receipts checked"
        decide_flag(self.services.members, program, FLAGGED, "release", SUPPORT_AGENT, note, self.clock.now)
        report.decision = f"{SUPPORT_AGENT} released the held points: {note}"
        self.say(f"   support decided: {report.decision}")


def run_story(sb: Sandbox, services: Services, clock: SimulatedClock, members: int, weeks: int) -> StoryReport:
    from pointbridge.demo import PROGRAM_SEED
    from shared.program.config import load_program

    config = story_config(load_program(PROGRAM_SEED))
    services.programs.publish(config)
    story = Story(sb, services, clock, members, weeks)
    return story.run(config.program)


def story_start(weeks: int, now: datetime | None = None) -> datetime:
    """Monday `weeks` weeks before the current week's, 09:00 UTC: the story ends before today."""
    today = (now or datetime.now(UTC)).replace(hour=9, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(weeks=weeks + 1)
