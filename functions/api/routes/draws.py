"""Points draws: created by an admin with a committed seed, entered with points, revealed after closing."""

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field

from functions.api import context
from functions.api.routes.exchange import IdPath
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import EntryOut
from functions.services import services
from shared.ledger.commands import Key
from shared.rewards import draws as draw

router = APIGatewayRouter()


class DrawOut(BaseModel):
    id: str
    program: str
    prize: str
    ticket_points: int
    max_tickets_per_member: int
    winners: int
    closes_at: datetime
    commitment: str  # sha256 of the seed, published before entries close
    seed: str | None  # revealed after the draw closed
    revealed_at: datetime | None
    tickets: dict[str, int]
    winner_ids: list[str]

    @classmethod
    def of(cls, d: draw.Draw) -> "DrawOut":
        shown = d if d.revealed_at else d.model_copy(update={"seed": None})
        return cls.model_validate(shown.model_dump())


class TicketsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tickets: Annotated[int, Field(ge=1, le=1000)] = 1
    reference: Key


@router.post("/admin/programs/<program>/draws", status_code=201)
def create_draw(program: ProgramPath, body: draw.DrawIn) -> DrawOut:
    context.principal(router.current_event).require_admin()
    services().programs.get(program)
    return DrawOut.of(draw.create(services().reward_items, program, body, services().now()))


@router.get("/programs/<program>/draws/<draw_id>")
def get_draw(program: ProgramPath, draw_id: IdPath) -> DrawOut:
    context.principal(router.current_event).require_program(program)
    return DrawOut.of(draw.load(services().reward_items, program, draw_id))


@router.post("/programs/<program>/members/<member>/draws/<draw_id>/entries", status_code=201)
def enter_draw(program: ProgramPath, member: MemberPath, draw_id: IdPath, body: TicketsIn) -> EntryOut:
    context.principal(router.current_event).require_member(program, member)
    config = services().programs.get(program)
    context.require_spending(config, context.ledger_id(draw.source(draw_id), body.reference))
    d = draw.load(services().reward_items, program, draw_id)
    return EntryOut.of(draw.enter(services().ledger, d, member, body.tickets, body.reference, services().now()))


@router.post("/admin/programs/<program>/draws/<draw_id>/reveal", status_code=201)
def reveal_draw(program: ProgramPath, draw_id: IdPath) -> DrawOut:
    context.principal(router.current_event).require_admin()
    d = draw.load(services().reward_items, program, draw_id)
    return DrawOut.of(draw.reveal(services().reward_items, d, services().now()))
