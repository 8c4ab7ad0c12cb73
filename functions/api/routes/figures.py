"""Program figures for operators (admin only), and the console page that shows them.

The figures are the stream watcher's projection (`shared.figures`): counters per program and local
day, read back in BatchGetItems of 100 keys, (days + 2) x 8 keys per call. They trail the ledger by
the stream's delay (seconds). `/console` is a static page (no authorizer): it asks the operator
for an admin key and calls the guarded routes below with it, from the same origin.
"""

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path as FilePath
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import Field

from functions.api import context
from functions.api.console_page import console_page
from functions.api.routes.members import ProgramPath
from functions.api.routes.models import DecimalText
from functions.services import services
from shared.errors import NotFoundError
from shared.model import Model
from shared.projections.figures import Figures, SeriesPoint, Share, money_value, period_bounds, program_figures
from shared.rewards.catalogue import live_catalogue

router = APIGatewayRouter()
# The console's vendored files (the chart library and its licence): only those the manifest lists are served.
CONSOLE_ASSETS = FilePath(__file__).resolve().parents[1] / "console_assets"


class ShareOut(Model):
    """One part of a whole: a channel's points, or a tier's members."""

    name: str = Field(description="The channel or tier.")
    count: int = Field(description="Points earned for a channel; members for a tier.")
    share: DecimalText | None = Field(
        description="Its share of the whole, 4 places (decimal string); null when the whole is 0."
    )

    @classmethod
    def of(cls, share: Share) -> "ShareOut":
        return cls(name=share.name, count=share.count, share=share.share)


class RewardOut(Model):
    """A catalogue reward members redeemed."""

    reward: str = Field(description="The reward's catalogue id.")
    name: str = Field(description="Its name in the live catalogue; its id when the catalogue no longer has it.")
    points: int = Field(description="Points spent on it (gross: a reversed redemption is not taken off).")
    count: int = Field(description="How many were redeemed.")
    share: DecimalText | None = Field(
        description="Its share of the points spent on rewards, 4 places (decimal string)."
    )


class ValueOut(Model):
    """Points valued in money at the program's `point_value` (decimal strings, 2 places)."""

    issued: DecimalText = Field(description="`issued` x `point_value`.")
    partner_funded: DecimalText = Field(description="`partner_funded` x `point_value`.")
    redeemed: DecimalText = Field(description="`redeemed` x `point_value`.")
    expired: DecimalText = Field(description="`expired` x `point_value`.")
    liability: DecimalText = Field(description="The liability's change; to date, the outstanding liability's value.")

    @classmethod
    def at(cls, figures: Figures, point_value: Decimal | None) -> "ValueOut | None":
        if point_value is None:
            return None
        return cls(
            issued=money_value(figures.issued, point_value),
            partner_funded=money_value(figures.partner_funded, point_value),
            redeemed=money_value(figures.redeemed, point_value),
            expired=money_value(figures.expired, point_value),
            liability=money_value(figures.liability, point_value),
        )


class FlowsOut(Model):
    """What moved over some days (or to date), in points. Definitions: docs/console.md."""

    issued: int = Field(description="Net points out of the program's issuance account: `earned - taken_back`.")
    earned: int = Field(description="Points members earned from the program (pending ones included).")
    taken_back: int = Field(description="Points taken back: voids, refund claw-backs, reversed earns.")
    partner_funded: int = Field(description="Net points members earned that a partner pays for (not in `issued`).")
    redeemed: int = Field(description="Net points redeemed: spends and captured holds, less reversals.")
    redemptions_reversed: int = Field(description="Redemptions reversed.")
    sent_to_partners: int = Field(description="Net points members transferred out to partner brands.")
    expired: int = Field(description="Net points expired.")
    exchanged_in: int = Field(description="Points members received by exchange from other programs.")
    exchanged_out: int = Field(description="Points members exchanged into other programs (fees included).")
    gifts_sent: int = Field(description="Points members gave as gifts.")
    gifts_received: int = Field(description="Points members received as gifts.")
    merged: int = Field(description="Points moved from merged (provisional) accounts to their survivors.")
    available: int = Field(description="The change of members' available points (to date: what they hold).")
    pending: int = Field(description="The change of members' pending points (to date: what they hold).")
    held: int = Field(description="The change of members' held points (to date: what they hold).")
    liability: int = Field(description="`available + pending + held`; to date, the outstanding liability.")
    unexplained: int = Field(
        description="Liability the flows above do not explain: always 0 for a sound ledger (else see the audit)."
    )
    entries: int = Field(description="Ledger entries written.")
    accounts_opened: int = Field(description="Member accounts opened.")
    redemption_rate: DecimalText | None = Field(
        description="`redeemed / (issued + partner_funded)` over the same days, 4 places (decimal string); null when "
        "nothing was earned. A flow ratio: a period's redemptions include points earned before it, so it can "
        "exceed 1."
    )
    breakage_rate: DecimalText | None = Field(
        description="`expired / (issued + partner_funded)` over the same days, 4 places (decimal string); null when "
        "nothing was earned. A flow ratio, like the redemption rate."
    )
    channels: list[ShareOut] = Field(description="Points earned per channel (gross), largest first.")
    rewards: list[RewardOut] = Field(
        description="The top catalogue rewards by points spent (at most 10), largest first."
    )
    value: ValueOut | None = Field(description="The main flows in money at `point_value`; null when it is not set.")

    @classmethod
    def of(cls, figures: Figures, point_value: Decimal | None, names: Mapping[str, str]) -> "FlowsOut":
        return cls(
            issued=figures.issued,
            earned=figures["earned"],
            taken_back=figures["taken_back"],
            partner_funded=figures.partner_funded,
            redeemed=figures.redeemed,
            redemptions_reversed=figures["redemptions_reversed"],
            sent_to_partners=figures.sent_to_partners,
            expired=figures.expired,
            exchanged_in=figures["exchanged_in"],
            exchanged_out=figures["exchanged_out"],
            gifts_sent=figures["gifts_sent"],
            gifts_received=figures["gifts_received"],
            merged=figures["merged_out"],
            available=figures["available"],
            pending=figures["pending"],
            held=figures["held"],
            liability=figures.liability,
            unexplained=figures.unexplained,
            entries=figures["entries"],
            accounts_opened=figures["accounts_opened"],
            redemption_rate=figures.redemption_rate,
            breakage_rate=figures.breakage_rate,
            channels=[ShareOut.of(s) for s in figures.channels()],
            rewards=[
                RewardOut(
                    reward=r.reward, name=names.get(r.reward, r.reward), points=r.points, count=r.count, share=r.share
                )
                for r in figures.rewards()
            ],  # fmt: skip
            value=ValueOut.at(figures, point_value),
        )


class StepOut(Model):
    """One step of the series: a day, or a calendar month clipped to the period."""

    start: date = Field(description="The step's first local day.")
    end: date = Field(description="The step's last local day (inclusive).")
    issued: int = Field(description="Net points issued over the step (as in the period's figures).")
    partner_funded: int = Field(description="Net partner-funded points over the step.")
    redeemed: int = Field(description="Net points redeemed over the step.")
    expired: int = Field(description="Net points expired over the step.")
    sent_to_partners: int = Field(description="Net points sent to partner brands over the step.")
    exchanged_in: int = Field(description="Points received by exchange over the step.")
    exchanged_out: int = Field(description="Points exchanged out over the step.")
    entries: int = Field(description="Ledger entries written over the step.")
    liability_change: int = Field(description="The change of what members hold over the step.")
    liability_at_end: int = Field(description="The outstanding liability at the end of the step's last day.")
    liability_value_at_end: DecimalText | None = Field(
        description="Its money value at `point_value`; null when not set."
    )

    @classmethod
    def of(cls, step: SeriesPoint, point_value: Decimal | None) -> "StepOut":
        figures = step.figures
        return cls(
            start=step.start,
            end=step.end,
            issued=figures.issued,
            partner_funded=figures.partner_funded,
            redeemed=figures.redeemed,
            expired=figures.expired,
            sent_to_partners=figures.sent_to_partners,
            exchanged_in=figures["exchanged_in"],
            exchanged_out=figures["exchanged_out"],
            entries=figures["entries"],
            liability_change=figures.liability,
            liability_at_end=step.liability_at_end,
            liability_value_at_end=None if point_value is None else money_value(step.liability_at_end, point_value),
        )


class FiguresOut(Model):
    """A program's figures for a period (as a series), the previous period and to date, from the stream's projection."""

    program: str = Field(description="The program's id.")
    name: str = Field(description="The program's name.")
    timezone: str = Field(description="The program's IANA time zone: days are its local dates.")
    currency: str = Field(description="The program's currency, for the money values.")
    point_value: DecimalText | None = Field(
        description="What one point costs the program in `currency` (program config); null when not set."
    )
    start: date = Field(description="The period's first local day.")
    end: date = Field(description="The period's last local day (inclusive).")
    days: int = Field(description="The period's length in days.")
    interval: Literal["day", "month"] = Field(
        description="The series' step: a day for periods up to 93 days, a calendar month (clipped) beyond."
    )
    series: list[StepOut] = Field(
        description="What moved each step of the period, in order, and the liability after it."
    )
    period: FlowsOut = Field(description="What moved from `start` to `end`, inclusive.")
    opening_liability: int = Field(description="The outstanding liability when the period began.")
    closing_liability: int = Field(description="The outstanding liability at the end of the period's last day.")
    closing_liability_value: DecimalText | None = Field(description="Its money value; null without a point value.")
    previous_start: date = Field(description="The previous period's first day: the same length, just before.")
    previous_end: date = Field(description="The previous period's last day (the day before `start`).")
    previous: FlowsOut = Field(description="What moved in the previous period, for comparison.")
    to_date: FlowsOut = Field(
        description="What moved since the program's first entry; `to_date.liability` is the outstanding liability."
    )
    members: int = Field(description="Accounts opened less accounts merged away.")
    tiers: list[ShareOut] = Field(description="Members per tier, base tier first.")
    requests: int = Field(description="DynamoDB requests this reply took.")


class ProgramsOut(Model):
    """The live programs."""

    programs: list[str] = Field(description="Their ids, sorted.")


@router.get("/admin/programs/<program>/figures")
def figures(
    program: ProgramPath,
    start: Annotated[
        date | None, Query(description="The period's first local day (ISO date); default 29 days before `end`.")
    ] = None,
    end: Annotated[
        date | None,
        Query(description="The period's last local day, inclusive (ISO date); default today. At most ten years."),
    ] = None,
) -> FiguresOut:
    """A program's figures.

    Issued, redeemed, expired and the outstanding liability (points and money at the program's
    point value) as a series over the period (per day up to 93 days, per month beyond), redemption
    and breakage rates, tier, channel and reward mix, for the period (default the last 30 local
    days), the previous period of the same length and to date. Projected from the ledger's
    stream, so seconds behind it. Definitions: docs/console.md.
    """
    context.authorize(router, program=program)
    config = services().programs.get(program)
    first, last = period_bounds(config, services().now(), start, end)
    s = services()
    today = s.now().astimezone(config.tz).date()
    count = lambda: sum(s.table.stats.requests.values())  # noqa: E731
    found = program_figures(s.figure_items, config, first, last, today, requests=count)
    names = {reward.id: reward.name for reward in live_catalogue(s.documents, program).rewards}
    pv = config.point_value
    return FiguresOut(
        program=program,
        name=config.name,
        timezone=found.timezone,
        currency=config.currency,
        point_value=pv,
        start=found.start,
        end=found.end,
        days=(found.end - found.start).days + 1,
        interval="month" if found.interval == "month" else "day",
        series=[StepOut.of(step, pv) for step in found.series],
        period=FlowsOut.of(found.period, pv, names),
        opening_liability=found.opening_liability,
        closing_liability=found.closing_liability,
        closing_liability_value=None if pv is None else money_value(found.closing_liability, pv),
        previous_start=found.previous_start,
        previous_end=found.previous_end,
        previous=FlowsOut.of(found.previous, pv, names),
        to_date=FlowsOut.of(found.to_date, pv, names),
        members=found.members,
        tiers=[ShareOut.of(s) for s in found.tiers],
        requests=found.requests,
    )


@router.get("/admin/programs")
def programs() -> ProgramsOut:
    """The live programs.

    Their ids (one Query), for the console's program picker.
    """
    context.authorize(router)
    return ProgramsOut(programs=sorted(services().programs.live_programs()))


@cache
def _assets() -> dict[str, str]:
    """Each vendored file the console may load, and its content type (console_assets/manifest.json)."""
    manifest = json.loads((CONSOLE_ASSETS / "manifest.json").read_text(encoding="utf-8"))
    return {name: str(entry["content_type"]) for name, entry in manifest.items()}


@router.get("/console", include_in_schema=False)
def console() -> Response[str]:
    return console_page("console.html", same_origin_scripts=True)


@router.get("/console/assets/<asset>", include_in_schema=False)
def console_asset(asset: str) -> Response[str]:
    """A vendored file of the console (console_assets/README.md), as published upstream."""
    content_type = _assets().get(asset)
    if content_type is None:
        raise NotFoundError(f"the console has no asset {asset!r}")
    return Response(
        status_code=200,
        content_type=content_type,
        body=(CONSOLE_ASSETS / asset).read_text(encoding="utf-8"),
        headers={
            "X-Content-Type-Options": "nosniff",
            # The page asks for a pinned version by name and checks its hash: a day's caching is safe.
            "Cache-Control": "public, max-age=86400",
        },
    )
