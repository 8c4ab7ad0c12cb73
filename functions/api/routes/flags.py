"""Flagged members: an operator lists a program's open flags and decides one (admin only).

A decision is recorded first (who, why; `shared.members.flags.decide_flag`), then applied to the earns
the flag held (`shared.earning.held`): `release` activates them, or leaves them
pending until their return window closes; `void` voids them. Repeating the same decision applies
whatever is left and changes nothing else, so a retried request is safe.
"""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field, StringConstraints

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.services import services
from shared.members.flags import decide_flag, open_flags
from shared.model import Model

router = APIGatewayRouter()


class FlagOut(Model):
    """An open flag: the member's new points are held until an operator decides."""

    member: str = Field(description="The flagged member.")
    check: str = Field(description="Which velocity check raised it.")
    reason: str = Field(description="What the check saw.")
    since: str = Field(description="When it was raised (ISO 8601).")


class FlagsOut(Model):
    """A program's open flags."""

    flags: list[FlagOut] = Field(description="Every open flag of the program.")


class DecisionIn(Model):
    """An operator's decision on a flag, and why."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["release", "void"] = Field(
        description="`release`: the held earns become spendable (or stay pending until their return window "
        "closes); `void`: they are cancelled (fraud confirmed)."
    )
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)] = Field(
        description="Why: recorded with the decision and shown on the statements."
    )


class DecisionOut(Model):
    """The decision recorded, and what happened to the earns the flag held."""

    member: str = Field(description="The member.")
    decision: str = Field(description="The decision, as sent.")
    operator: str = Field(description="Who decided: the calling admin's id.")
    released: list[str] = Field(description="Entry ids of held earns activated now.")
    still_pending: list[str] = Field(
        description="Entry ids of released earns still pending until their return window closes."
    )
    voided: list[str] = Field(description="Entry ids of held earns voided.")


@router.get("/admin/programs/<program>/flags")
def list_flags(program: ProgramPath) -> FlagsOut:
    """A program's open flags.

    The members whose new points are held because a velocity check flagged them.
    """
    context.authorize(router, program=program)
    services().programs.get(program)
    found = open_flags(services().members, program)
    return FlagsOut(flags=[FlagOut(member=f.member, check=f.check, reason=f.reason, since=f.since) for f in found])


@router.post("/admin/programs/<program>/flags/<member>/decision")
def decide(program: ProgramPath, member: MemberPath, body: DecisionIn) -> DecisionOut:
    """Decide a flag.

    Records the decision (the operator is the caller), then applies it to the earns the flag held.
    The same decision again applies whatever is left and changes nothing else; the other decision on
    a closed flag is `flag_already_decided`.
    """
    operator = context.authorize(router, program=program)
    services().programs.get(program)
    now = services().now()
    decide_flag(services().members, program, member, body.decision, operator.id, body.note, now)
    settled = services().ingest.settle_held(program, member, body.decision, body.note, now)
    return DecisionOut(
        member=member,
        decision=body.decision,
        operator=operator.id,
        released=settled.released,
        still_pending=settled.still_pending,
        voided=settled.voided,
    )
