"""Gifts between members of a program."""

from typing import Annotated

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field, StringConstraints

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import EntryOut, Reference
from functions.services import services
from shared.ledger.commands import Key, Points
from shared.model import Model
from shared.rewards.catalogue import live_catalogue
from shared.rewards.gifts import SOURCE as GIFT_SOURCE
from shared.rewards.gifts import send_gift

router = APIGatewayRouter()


class GiftIn(Model):
    """Points to give another member of the program."""

    model_config = ConfigDict(extra="forbid")

    to_member: Key = Field(description="The member receiving the points (not the sender).")
    points: Points = Field(description="Points to give: at least the program's minimum gift, within its daily limit.")
    reference: Reference = Field(
        description="The caller's own id for this gift: retrying with it never gives twice. Yours alone."
    )
    message: Annotated[str, StringConstraints(max_length=140)] = Field(
        "", description="A note shown on both statements."
    )


class GiftOut(Model):
    """Both sides of a gift, written in one transaction."""

    sent: EntryOut = Field(description="The sender's entry.")
    received: EntryOut = Field(
        description="The recipient's entry: the points keep the expiry dates they had for the sender (held for "
        "the program's `hold_days` first, when it has them)."
    )


@router.post("/programs/<program>/members/<member>/gifts", status_code=201)
def gift(program: ProgramPath, member: MemberPath, body: GiftIn) -> GiftOut:
    """Give points to another member.

    Moves points from the member (the sender) to another member of the program, lots and expiry dates
    intact, within the catalogue's gift policy (on or off, minimum, daily limit, hold days). Only the
    sender itself, or a channel that authenticates its members, may ask.
    """
    who = context.authorize(router, program=program, member=member)
    reference = context.own_reference(who, member, body.reference)
    config = services().programs.get(program)
    context.require_spending(config, context.ledger_id(GIFT_SOURCE, reference))
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
        reference,
        services().now(),
        body.message,
    )
    received = services().ledger_store.get_entry(program, f"{sent.entry_id}/in")
    assert received is not None  # written in the same transaction
    return GiftOut(sent=EntryOut.of(sent), received=EntryOut.of(received))
