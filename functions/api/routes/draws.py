"""Points draws: created by an admin with a committed seed, entered with points, revealed after closing."""

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import EntryOut, Reference
from functions.services import services
from shared.model import Model
from shared.rewards import draws as draw

router = APIGatewayRouter()
DrawPath = Annotated[str, Path(min_length=1, max_length=100, description="The draw's id in the program.")]


class DrawOut(Model):
    """A points draw: its terms, its commitment, and once revealed its seed, tickets and winners."""

    id: str = Field(description="The draw's id in the program.")
    program: str = Field(description="The program.")
    prize: str = Field(description="What the winners get.")
    ticket_points: int = Field(description="Points per ticket.")
    max_tickets_per_member: int = Field(description="Tickets one member may hold at most.")
    winners: int = Field(description="How many winners are drawn.")
    closes_at: datetime = Field(description="Tickets are sold until then; the draw is revealed after.")
    commitment: str = Field(
        description="sha256 of the seed (hex), published before entries close: anyone can check the revealed seed "
        "against it."
    )
    seed: str | None = Field(description="The secret seed, revealed after the draw closed; null until then.")
    revealed_at: datetime | None = Field(description="When the draw was revealed; null until then.")
    tickets: dict[str, int] = Field(description="Tickets per member, frozen at the reveal; empty until then.")
    winner_ids: list[str] = Field(
        description="The winners in the order drawn (`shared.rewards.draws.pick_winners(seed, tickets, winners)`); "
        "empty until the reveal."
    )

    @classmethod
    def of(cls, d: draw.Draw) -> "DrawOut":
        shown = d if d.revealed_at else d.model_copy(update={"seed": None})
        return cls.model_validate(shown.model_dump())


class TicketsIn(Model):
    """Tickets to buy with points."""

    model_config = ConfigDict(extra="forbid")

    tickets: Annotated[int, Field(ge=1, le=1000)] = Field(1, description="How many tickets.")
    reference: Reference = Field(
        description="The caller's own id for this purchase: retrying with it never buys twice. Yours alone."
    )


@router.post("/admin/programs/<program>/draws", status_code=201)
def create_draw(program: ProgramPath, body: draw.DrawIn) -> DrawOut:
    """Create a points draw.

    Draws a random secret seed and publishes only its sha256 (`commitment`); the seed is revealed
    after the draw closes, so it cannot be chosen after seeing the entries.
    """
    context.authorize(router, program=program)
    services().programs.get(program)
    return DrawOut.of(draw.create(services().reward_items, program, body, services().now()))


@router.get("/programs/<program>/draws/<draw_id>")
def get_draw(program: ProgramPath, draw_id: DrawPath) -> DrawOut:
    """A points draw.

    Its terms and commitment; after the reveal also the seed, the tickets and the winners.
    """
    context.authorize(router, program=program)
    return DrawOut.of(draw.load(services().reward_items, program, draw_id))


@router.post("/programs/<program>/members/<member>/draws/<draw_id>/entries", status_code=201)
def enter_draw(program: ProgramPath, member: MemberPath, draw_id: DrawPath, body: TicketsIn) -> EntryOut:
    """Buy draw tickets.

    Spends `tickets` x the draw's ticket price; the spend and the member's ticket count commit in one
    transaction, capped per member.
    """
    who = context.authorize(router, program=program, member=member)
    reference = context.own_reference(who, member, body.reference)
    config = services().programs.get(program)
    context.require_spending(config, context.ledger_id(draw.source(draw_id), reference))
    d = draw.load(services().reward_items, program, draw_id)
    return EntryOut.of(draw.enter(services().ledger, d, member, body.tickets, reference, services().now()))


@router.post("/admin/programs/<program>/draws/<draw_id>/reveal", status_code=201)
def reveal_draw(program: ProgramPath, draw_id: DrawPath) -> DrawOut:
    """Reveal a draw.

    After it closed: publishes the seed, freezes the tickets and draws the winners. Revealing again
    shows the same result.
    """
    context.authorize(router, program=program)
    d = draw.load(services().reward_items, program, draw_id)
    return DrawOut.of(draw.reveal(services().reward_items, d, services().now()))
