"""Flagged members: an operator lists a program's open flags and decides one (admin only).

A decision is recorded first (who, why; `shared.members.flags.decide_flag`), then applied to the earns
the flag held (`shared.earning.held`): `release` activates them, or leaves them
pending until their return window closes; `void` voids them. Repeating the same decision applies
whatever is left and changes nothing else, so a retried request is safe.
"""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, StringConstraints

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.services import services
from shared.members.flags import decide_flag, open_flags

router = APIGatewayRouter()


class FlagOut(BaseModel):
    member: str
    check: str  # which velocity check raised it
    reason: str
    since: str


class FlagsOut(BaseModel):
    flags: list[FlagOut]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["release", "void"]
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class DecisionOut(BaseModel):
    member: str
    decision: str
    operator: str
    released: list[str]  # held earns activated now
    still_pending: list[str]  # released, pending until their return window closes
    voided: list[str]


@router.get("/admin/programs/<program>/flags")
def list_flags(program: ProgramPath) -> FlagsOut:
    context.principal(router.current_event).require_admin()
    services().programs.get(program)
    found = open_flags(services().members, program)
    return FlagsOut(flags=[FlagOut(member=f.member, check=f.check, reason=f.reason, since=f.since) for f in found])


@router.post("/admin/programs/<program>/flags/<member>/decision")
def decide(program: ProgramPath, member: MemberPath, body: DecisionIn) -> DecisionOut:
    operator = context.principal(router.current_event)
    operator.require_admin()
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
