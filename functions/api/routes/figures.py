"""Program figures for operators (admin only), and the console page that shows them.

The figures are the stream watcher's projection (`shared.figures`): counters per program and local
day, read back in BatchGetItems of 100 keys, (days + 2) x 8 keys per call. They trail the ledger by
the stream's delay (seconds). `/console` is a static page (no authorizer): it asks the operator
for an admin key and calls the guarded routes below with it, from the same origin.
"""

import base64
import hashlib
from datetime import date
from functools import cache
from pathlib import Path as FilePath
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from functions.api import context
from functions.api.routes.members import ProgramPath
from functions.api.routes.models import DecimalText
from functions.services import services
from shared.projections.figures import DayFigures, Figures, Share, period_bounds, program_figures

router = APIGatewayRouter()
CONSOLE_PAGE = FilePath(__file__).resolve().parents[1] / "console.html"


class ShareOut(BaseModel):
    """One part of a whole: a channel's points, or a tier's members."""

    name: str = Field(description="The channel or tier.")
    count: int = Field(description="Points earned for a channel; members for a tier.")
    share: DecimalText | None = Field(
        description="Its share of the whole, 4 places (decimal string); null when the whole is 0."
    )

    @classmethod
    def of(cls, share: Share) -> "ShareOut":
        return cls(name=share.name, count=share.count, share=share.share)


class FlowsOut(BaseModel):
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
        "nothing was earned."
    )
    channels: list[ShareOut] = Field(description="Points earned per channel (gross), largest first.")

    @classmethod
    def fields_of(cls, figures: Figures) -> dict[str, object]:
        return {
            "issued": figures.issued,
            "earned": figures["earned"],
            "taken_back": figures["taken_back"],
            "partner_funded": figures.partner_funded,
            "redeemed": figures.redeemed,
            "redemptions_reversed": figures["redemptions_reversed"],
            "sent_to_partners": figures.sent_to_partners,
            "expired": figures.expired,
            "exchanged_in": figures["exchanged_in"],
            "exchanged_out": figures["exchanged_out"],
            "gifts_sent": figures["gifts_sent"],
            "gifts_received": figures["gifts_received"],
            "merged": figures["merged_out"],
            "available": figures["available"],
            "pending": figures["pending"],
            "held": figures["held"],
            "liability": figures.liability,
            "unexplained": figures.unexplained,
            "entries": figures["entries"],
            "accounts_opened": figures["accounts_opened"],
            "redemption_rate": figures.redemption_rate,
            "channels": [ShareOut.of(s) for s in figures.channels()],
        }

    @classmethod
    def of(cls, figures: Figures) -> "FlowsOut":
        return cls.model_validate(cls.fields_of(figures))


class DayOut(FlowsOut):
    """What moved on one local day of the program."""

    day: date = Field(description="The local date, in the program's time zone.")

    @classmethod
    def of_day(cls, day: DayFigures) -> "DayOut":
        return cls.model_validate({"day": day.day, **cls.fields_of(day.figures)})


class FiguresOut(BaseModel):
    """A program's figures for a period, each day of it, and to date, from the stream's projection."""

    program: str = Field(description="The program's id.")
    name: str = Field(description="The program's name.")
    timezone: str = Field(description="The program's IANA time zone: days are its local dates.")
    start: date = Field(description="The period's first local day.")
    end: date = Field(description="The period's last local day (inclusive).")
    period: FlowsOut = Field(description="What moved from `start` to `end`, inclusive.")
    days: list[DayOut] = Field(description="What moved each day of the period, in order.")
    to_date: FlowsOut = Field(
        description="What moved since the program's first entry; `to_date.liability` is the outstanding liability."
    )
    members: int = Field(description="Accounts opened less accounts merged away.")
    tiers: list[ShareOut] = Field(description="Members per tier, base tier first.")
    requests: int = Field(description="DynamoDB requests this reply took.")


class ProgramsOut(BaseModel):
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
        Query(description="The period's last local day, inclusive (ISO date); default today. At most 93 days."),
    ] = None,
) -> FiguresOut:
    """A program's figures.

    Issued, redeemed, expired, liability, redemption rate, tier and channel mix, for the period
    (default the last 30 local days), each day and to date. Projected from the ledger's stream, so
    seconds behind it. Definitions: docs/console.md.
    """
    context.authorize(router, program=program)
    config = services().programs.get(program)
    first, last = period_bounds(config, services().now(), start, end)
    s = services()
    found = program_figures(s.figure_items, config, first, last, requests=lambda: sum(s.table.stats.requests.values()))
    return FiguresOut(
        program=program,
        name=config.name,
        timezone=found.timezone,
        start=found.start,
        end=found.end,
        period=FlowsOut.of(found.period),
        days=[DayOut.of_day(day) for day in found.days],
        to_date=FlowsOut.of(found.to_date),
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
def _page() -> tuple[str, str]:
    html = CONSOLE_PAGE.read_text(encoding="utf-8")
    # The page's own inline script and style, and nothing else, may run (hashes in the policy).
    hashes = []
    for tag in ("script", "style"):
        body = html.split(f"<{tag}>", 1)[1].split(f"</{tag}>", 1)[0]
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes.append(f"{tag}-src 'sha256-{digest}'")
    policy = f"default-src 'none'; connect-src 'self'; {'; '.join(hashes)}; base-uri 'none'; form-action 'none'"
    return html, policy


@router.get("/console", include_in_schema=False)
def console() -> Response[str]:
    html, policy = _page()
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=html,
        headers={
            "Content-Security-Policy": policy + "; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )
