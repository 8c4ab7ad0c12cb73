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
from pydantic import BaseModel

from functions.api import context
from functions.api.routes.members import ProgramPath
from functions.api.routes.models import DecimalText
from functions.services import services
from shared.projections.figures import DayFigures, Figures, Share, period_bounds, program_figures

router = APIGatewayRouter()
CONSOLE_PAGE = FilePath(__file__).resolve().parents[1] / "console.html"


class ShareOut(BaseModel):
    name: str
    count: int  # points for a channel, members for a tier
    share: DecimalText | None  # of the whole, 4 places; null when the whole is 0

    @classmethod
    def of(cls, share: Share) -> "ShareOut":
        return cls(name=share.name, count=share.count, share=share.share)


class FlowsOut(BaseModel):
    """What moved over some days (or to date). Definitions: docs/console.md."""

    issued: int  # net out of the issuance account: earned - taken_back
    earned: int
    taken_back: int  # voids, refund claw-backs, reversed earns
    partner_funded: int  # net points members earned that a partner pays for
    redeemed: int  # net into the redemption account: spends and captured holds, less reversals
    redemptions_reversed: int
    sent_to_partners: int  # net points transferred out to partner brands
    expired: int  # net into breakage
    exchanged_in: int
    exchanged_out: int
    gifts_sent: int
    gifts_received: int
    merged: int  # points moved from merged accounts to their survivors
    available: int  # change of members' available points
    pending: int  # change of members' pending points
    held: int  # change of members' held points
    liability: int  # available + pending + held
    unexplained: int  # liability not explained by the flows above: always 0 for a sound ledger
    entries: int
    accounts_opened: int
    redemption_rate: DecimalText | None  # redeemed / (issued + partner_funded); null when nothing was earned
    channels: list[ShareOut]  # points earned per channel (gross), largest first

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
    day: date

    @classmethod
    def of_day(cls, day: DayFigures) -> "DayOut":
        return cls.model_validate({"day": day.day, **cls.fields_of(day.figures)})


class FiguresOut(BaseModel):
    program: str
    name: str
    timezone: str  # days are local dates of this zone
    start: date
    end: date
    period: FlowsOut  # start..end, inclusive
    days: list[DayOut]  # every day of the period
    to_date: FlowsOut  # since the program's first entry; to_date.liability is the outstanding liability
    members: int  # accounts opened less accounts merged away
    tiers: list[ShareOut]  # members per tier, base tier first
    requests: int  # DynamoDB requests this reply took


class ProgramsOut(BaseModel):
    programs: list[str]


@router.get("/admin/programs/<program>/figures")
def figures(
    program: ProgramPath,
    start: Annotated[date | None, Query()] = None,
    end: Annotated[date | None, Query()] = None,
) -> FiguresOut:
    """Issued, redeemed, expired, liability, redemption rate, tier and channel mix; default the last 30 days."""
    context.principal(router.current_event).require_admin()
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
    """The live programs' ids (one Query), for the console's program picker."""
    context.principal(router.current_event).require_admin()
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
