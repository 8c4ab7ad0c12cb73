"""The demo's months: a brand's members earning, spending, being reminded and losing points, week by week.

Demo Outfitters sells online (a Shopify shop), in three stores (tills S01-S03) and with an airline
partner, SkyAir, whose flights earn points. A few hundred members live through several simulated
months: they buy in every channel, fly, review products in the app, redeem rewards, are reminded
before their points expire and lose the ones they leave, move up tiers; one is flagged by the
anomaly watch. Their events go through the real ingest path (rules, tiers, caps) on the sandbox's
table, at the simulated time; the sandbox's own functions do the rest as in production: the
stream's watch (figures, flags, the outbound events), and the scheduled jobs (activation, expiry,
reminders, tier review), run at each simulated week's end.

Time runs from some months ago up to today, so everything it writes is in the past and the real
channels that come after it (the demo's Alice) carry on from there.

Then, today, the desk (`Desk`): what people do through the stack's HTTP API, each with the key an
operator mints for them (`POST /admin/keys`). The operator publishes SkyAir's miles program and the
exchange agreement; members swap points with SkyAir (an exchange into SkyAir miles, transfers out
that SkyAir confirms or rejects, SkyAir's own transfer in); SkyAir reads its settlement statement;
and support decides the flag the watch raised, with a reason. The API stamps these with the real
time, which is why they come after the simulated months rather than inside them.
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
    flag_raised: bool = False
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
                self._flag(program, monday, report)
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

    # The anomaly watch (support decides at the desk, today)

    def _flag(self, program: str, monday: datetime, report: StoryReport) -> None:
        from shared.events.model import Channel, Identity, IdentityKind
        from shared.events.model import PurchaseEvent as Purchase
        from shared.members.flags import is_flagged

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
        report.flag_raised = is_flagged(self.services.members, program, FLAGGED)
        self.say(f"   the anomaly watch flagged {FLAGGED}: four sales on one card in an hour ({report.flag_raised});")
        # Her next order, two days on: its points are held for support (who decides today, at the desk).
        self._order += 1
        self.services.ingest.handle(
            Purchase(
                program=program,
                channel=Channel.ONLINE,
                source=SHOP_SOURCE,
                external_id=str(self._order),
                reference=f"#{self._order}",
                identity=Identity(kind=IdentityKind.MEMBER, value=FLAGGED),
                occurred_at=at + timedelta(days=2),
                currency="USD",
                eligible_amount=Decimal("86.00"),
            )
        )
        report.events["online"] += 1
        self.say(f"   {FLAGGED}'s next order is held for support's decision (made today, at the desk)")


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


# Today, at the desk: what people do through the stack's HTTP API

SKYAIR_PROGRAM = "skyair"  # SkyAir's miles, a program on the same platform: points swap under an agreement
AGREEMENT = "demo-skyair"
# SkyAir takes Demo points at half a mile each, in steps of 10 from 100, less a 10-point fee.
AGREEMENT_TERMS = {"rate": "0.5", "minimum": 100, "increment": 10, "fee_points": 10, "daily_limit": 5000}
EXCHANGED, SENT, RETURNED, MILES_IN = 300, 200, 150, 400
FLAG_NOTE = "called the member: she bought gifts for her team, receipts checked"


class DeskError(RuntimeError):
    """A request the desk made was refused: the method, path, status and the API's problem."""


class StackApi:
    """Plain HTTP to the stack's API, one key per call, as each person's own client would send it."""

    def __init__(self, base_url: str, timeout: float) -> None:
        import requests

        self._session = requests.Session()
        self._base = base_url
        self._timeout = timeout

    def call(self, method: str, path: str, key: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        reply = self._session.request(
            method,
            f"{self._base}{path}",
            json=body,
            params=query,
            headers={"x-api-key": key},
            timeout=self._timeout,
        )
        if reply.status_code >= 400:
            raise DeskError(f"{method} {path} -> {reply.status_code}: {reply.text[:300]}")
        return reply.json()


@dataclass
class DeskReport:
    """What happened at the desk, as the API answered it (the demo's test checks it against the ledger)."""

    exchange: dict[str, Any] = field(default_factory=dict)  # the quote and its execution
    exchanged_by: str = ""
    miles: dict[str, Any] = field(default_factory=dict)  # the exchanger's balance in SkyAir's program
    transfers_out: dict[str, dict[str, Any]] = field(default_factory=dict)  # member -> the held entry
    confirmed: dict[str, Any] = field(default_factory=dict)
    rejected: dict[str, Any] = field(default_factory=dict)
    transfer_in: dict[str, Any] = field(default_factory=dict)
    settlement_before: dict[str, Any] = field(default_factory=dict)
    settlement: dict[str, Any] = field(default_factory=dict)
    flags_before: list[dict[str, Any]] = field(default_factory=list)
    decision: dict[str, Any] = field(default_factory=dict)
    flags_after: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Desk:
    """Today's people at the stack's API: the operator, members, SkyAir, and support."""

    sb: Sandbox
    api: StackApi
    operator_key: str
    program: str = "demo"
    say: Callable[[str], None] = print
    report: DeskReport = field(default_factory=DeskReport)

    def mint(self, **principal: Any) -> str:
        """A key for someone, as the operator mints it."""
        return str(self.api.call("POST", "/admin/keys", self.operator_key, principal)["key"])

    def run(self, candidates: list[tuple[str, int]], today: datetime) -> DeskReport:
        """`candidates`: (member, available points) of the story's members, most points first (not the flagged one)."""
        needs = (EXCHANGED, SENT, RETURNED, 0)  # the exchanger, the two senders, and SkyAir's flyer
        if len(candidates) < len(needs) or any(have < need for (_, have), need in zip(candidates, needs, strict=False)):
            # A small story (`--members`, a test's) may leave too few balances to swap: the desk's other work goes on.
            self.say(f"   (no swaps with SkyAir: too few members with points for them: {candidates[:4]})")
            self._decide_flag()
            return self.report
        self._partner_terms()
        skyair = self.mint(kind="partner", id=PARTNER, programs=[self.program, SKYAIR_PROGRAM], agreements=[AGREEMENT])
        # The days around today: the desk's own movements (the story's flights are on their simulated days).
        window = {"start": f"{today - timedelta(days=1):%Y-%m-%d}", "end": f"{today + timedelta(days=1):%Y-%m-%d}"}
        settlement = f"/partners/{PARTNER}/programs/{self.program}/settlement"
        self.sb.wait_for_idle(timeout=600)  # the watcher has written every settlement line so far
        self.report.settlement_before = self.api.call("GET", settlement, skyair, query=window)
        exchanger, sender, returned, flyer = (member for member, _ in candidates[: len(needs)])
        self._exchange(exchanger)
        self._transfers_out(skyair, sender, returned)
        self._transfer_in(skyair, flyer, today)
        self.sb.wait_for_idle(timeout=600)
        self.report.settlement = told = self.api.call("GET", settlement, skyair, query=window)
        self.say(
            f"   GET {settlement} (SkyAir's key): sent {told['sent']} (fees {told['fees']}), "
            f"received {told['received']}, net {told['net']} over {told['entries']} entries today"
        )
        self._decide_flag()
        return self.report

    def _partner_terms(self) -> None:
        skyair = {"program": SKYAIR_PROGRAM, "version": 1, "name": "SkyAir Miles", "currency": "USD"}
        self.api.call("PUT", f"/admin/programs/{SKYAIR_PROGRAM}", self.operator_key, skyair)
        terms = {"id": AGREEMENT, "version": 1, "from_program": self.program, "to_program": SKYAIR_PROGRAM}
        self.api.call("PUT", f"/admin/agreements/{AGREEMENT}", self.operator_key, {**terms, **AGREEMENT_TERMS})
        self.say(
            f"   the operator publishes SkyAir's miles program and the agreement {AGREEMENT} "
            f"({AGREEMENT_TERMS['rate']} mile a point, fee {AGREEMENT_TERMS['fee_points']})"
        )

    def _member(self, member: str) -> str:
        return self.mint(kind="member", id=member, programs=[self.program, SKYAIR_PROGRAM])

    def _exchange(self, member: str) -> None:
        key = self._member(member)
        quote = self.api.call("POST", f"/agreements/{AGREEMENT}/quotes", key, {"member": member, "points": EXCHANGED})
        done = self.api.call("POST", f"/quotes/{quote['quote_id']}/execute", key)
        self.report.exchange, self.report.exchanged_by = {"quote": quote, **done}, member
        self.report.miles = self.api.call("GET", f"/programs/{SKYAIR_PROGRAM}/members/{member}/balance", key)
        self.say(
            f"   {member} exchanges {quote['gross']} points (fee {quote['fee']}) into {quote['credited']} "
            f"SkyAir miles: POST /agreements/{AGREEMENT}/quotes, POST /quotes/.../execute"
        )

    def _transfers_out(self, skyair: str, sender: str, returned: str) -> None:
        base = f"/partners/{PARTNER}/programs/{self.program}/members"
        for member, points in ((sender, SENT), (returned, RETURNED)):
            body = {"partner": PARTNER, "transfer_id": f"sky-{member}", "points": points}
            path = f"/programs/{self.program}/members/{member}/transfers-out"
            self.report.transfers_out[member] = self.api.call("POST", path, self._member(member), body)
        self.say(f"   {sender} and {returned} send {SENT} and {RETURNED} points to SkyAir: held until SkyAir answers")
        self.report.confirmed = self.api.call("POST", f"{base}/{sender}/transfers-out/sky-{sender}/confirm", skyair)
        self.report.rejected = self.api.call("POST", f"{base}/{returned}/transfers-out/sky-{returned}/reject", skyair)
        self.say(f"   SkyAir confirms {sender}'s transfer and rejects {returned}'s (no such flyer): points back")

    def _transfer_in(self, skyair: str, member: str, today: datetime) -> None:
        flyer = f"SKY-{member.upper()}"
        path = f"/programs/{self.program}/members/{member}/identities"
        self.api.call("POST", path, skyair, {"kind": "partner", "value": flyer})
        body = {
            "transfer_id": f"miles-{member}",
            "points": MILES_IN,
            "reason": "SkyAir miles converted to points",
            "occurred_at": today.isoformat(),
        }
        path = f"/partners/{PARTNER}/programs/{self.program}/members/{member}/transfers-in"
        self.report.transfer_in = self.api.call("POST", path, skyair, body)
        self.say(f"   SkyAir links {member}'s frequent flyer id {flyer} and transfers {MILES_IN} points in from miles")

    def _decide_flag(self) -> None:
        support = self.mint(kind="admin", id=SUPPORT_AGENT, role="support")
        flags = f"/admin/programs/{self.program}/flags"
        self.report.flags_before = self.api.call("GET", flags, support)["flags"]
        for flag in self.report.flags_before:
            self.say(f"   GET {flags}: {flag['member']} ({flag['check']}) since {flag['since'][:10]}: {flag['reason']}")
        if not any(flag["member"] == FLAGGED for flag in self.report.flags_before):
            self.say(f"   (no decision to make: the story was too short for {FLAGGED}'s flag)")
            return
        body = {"decision": "release", "note": FLAG_NOTE}
        self.report.decision = told = self.api.call("POST", f"{flags}/{FLAGGED}/decision", support, body)
        self.report.flags_after = self.api.call("GET", flags, support)["flags"]
        self.say(
            f"   {told['operator']} decides {FLAGGED}'s flag: {told['decision']} ({FLAG_NOTE}); "
            f"{len(told['released'])} held earns released, {len(told['still_pending'])} wait for their return window"
        )


def swap_candidates(services: Services, program: str, members: int) -> list[tuple[str, int]]:
    """The story's members with an account, and their available points, most first (not the flagged one)."""
    from shared.errors import PointbridgeError

    found: list[tuple[int, str]] = []
    for n in range(1, members + 1):
        member = f"m{n:03d}"
        if member == FLAGGED:
            continue
        try:
            available = services.ledger.account(program, member).available
        except PointbridgeError:
            continue  # never came
        found.append((available, member))
    return [(member, available) for available, member in sorted(found, reverse=True)]
