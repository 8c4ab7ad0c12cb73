"""Gifts between members of a program."""

from typing import Annotated

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, StringConstraints

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import EntryOut
from functions.services import services
from shared.ledger.commands import Key, Points
from shared.rewards.catalogue import live_catalogue
from shared.rewards.gifts import SOURCE as GIFT_SOURCE
from shared.rewards.gifts import send_gift

router = APIGatewayRouter()


class GiftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_member: Key
    points: Points
    reference: Key
    message: Annotated[str, StringConstraints(max_length=140)] = ""


class GiftOut(BaseModel):
    sent: EntryOut
    received: EntryOut


@router.post("/programs/<program>/members/<member>/gifts", status_code=201)
def gift(program: ProgramPath, member: MemberPath, body: GiftIn) -> GiftOut:
    context.principal(router.current_event).require_member(program, member)
    config = services().programs.get(program)
    context.require_spending(config, context.ledger_id(GIFT_SOURCE, f"{member}:{body.reference}"))
    policy = live_catalogue(services().documents, program).gifts
    if policy.hold_days:
        context.note_holds(program)
    sent = send_gift(
        services().ledger,
        policy,
        program,
        member,
        body.to_member,
        body.points,
        body.reference,
        services().now(),
        body.message,
    )
    received = services().ledger_store.get_entry(program, f"{sent.entry_id}/in")
    assert received is not None  # written in the same transaction
    return GiftOut(sent=EntryOut.of(sent), received=EntryOut.of(received))
