"""Points draws: created by an admin, entered with points, revealed after closing with a signature nobody can pick."""

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
# The reveal signs with the draw key: DrawFunction (functions.draws.app) serves this router alone.
reveal_router = APIGatewayRouter()
DrawPath = Annotated[str, Path(min_length=1, max_length=100, description="The draw's id in the program.")]


class DrawOut(Model):
    """A points draw: its terms, and once revealed its frozen tickets, the proof of its randomness and its winners.

    To verify a revealed draw: `entrants_root` is the Merkle root of `tickets`
    (`shared.rewards.draws.entrants_root`); `signature` verifies with `public_key` (RSASSA-PKCS1-v1_5
    SHA-256) over `signed_message`; `randomness` is sha256 of the signature; the winners are
    `pick_winners(randomness, tickets, winners)`. `pointbridge draw verify` does all of it
    (docs/security.md)."""

    id: str = Field(description="The draw's id in the program.")
    program: str = Field(description="The program.")
    prize: str = Field(description="What the winners get.")
    ticket_points: int = Field(description="Points per ticket.")
    max_tickets_per_member: int = Field(description="Tickets one member may hold at most.")
    winners: int = Field(description="How many winners are drawn.")
    closes_at: datetime = Field(description="Tickets are sold until then; the draw is revealed after.")
    revealed_at: datetime | None = Field(description="When the draw was revealed; null until then.")
    tickets: dict[str, int] = Field(description="Tickets per member, frozen at the reveal; empty until then.")
    winner_ids: list[str] = Field(
        description="The winners in the order drawn (`shared.rewards.draws.pick_winners(randomness, tickets, "
        "winners)`); empty until the reveal."
    )
    entrants_root: str = Field(
        description="Merkle root (sha256, hex) of the tickets frozen at the reveal; empty until then."
    )
    signed_message: str = Field(description="What the draw's key signed: the program, the draw and the root.")
    signature: str = Field(
        description="Base64 RSASSA-PKCS1-v1_5 SHA-256 signature over `signed_message` by the draw's KMS key."
    )
    signing_algorithm: str = Field(description="RSASSA_PKCS1_V1_5_SHA_256.")
    signing_key: str = Field(description="The KMS key's ARN (template.yaml DrawSigningKey).")
    public_key: str = Field(description="Base64 DER SubjectPublicKeyInfo of the key, as KMS GetPublicKey gives it.")
    randomness: str = Field(description="sha256 (hex) of the signature: what the winners are drawn with.")

    @classmethod
    def of(cls, d: draw.Draw) -> "DrawOut":
        revealed = d.revealed_at is not None
        return cls(
            **d.model_dump(include=set(draw.DrawIn.model_fields) | {"program", "revealed_at", "winner_ids"}),
            tickets=d.tickets,
            entrants_root=d.entrants_root,
            signed_message=draw.signed_message(d.program, d.id, d.entrants_root).decode() if revealed else "",
            signature=d.signature,
            signing_algorithm=draw.SIGNING_ALGORITHM,
            signing_key=d.signing_key,
            public_key=d.public_key,
            randomness=d.randomness,
        )


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

    Nothing random is drawn now: the randomness is a signature over the entrants frozen after the
    close, so nothing readable before then tells who will win.
    """
    context.authorize(router, program=program)
    services().programs.get(program)
    return DrawOut.of(draw.create(services().reward_items, program, body, services().now()))


@router.get("/programs/<program>/draws/<draw_id>")
def get_draw(program: ProgramPath, draw_id: DrawPath) -> DrawOut:
    """A points draw.

    Its terms; after the reveal also the tickets, their Merkle root, the signature that gives the
    randomness, the public key that verifies it, and the winners.
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


@reveal_router.post("/admin/programs/<program>/draws/<draw_id>/reveal", status_code=201)
def reveal_draw(program: ProgramPath, draw_id: DrawPath) -> DrawOut:
    """Reveal a draw.

    After it closed: freezes the tickets (and their Merkle root), signs (program, draw, root) with the
    draws' KMS key and draws the winners from the signature. Revealing again shows the same result.
    """
    context.authorize(reveal_router, program=program)
    d = draw.load(services().reward_items, program, draw_id)
    return DrawOut.of(draw.reveal(services().reward_items, services().draw_signer, d, services().now()))
