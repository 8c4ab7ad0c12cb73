"""Checkout holds: authorise, then capture (in full or part) or release. Lapsed holds are released
by the scheduled functions.holds job."""

from datetime import timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import EntryOut
from functions.services import services
from shared.ledger.commands import Authorise, Capture, Key, Points, Reason, Release

router = APIGatewayRouter()
HOLD_SOURCE = "checkout"
RefPath = Annotated[str, Path(min_length=1, max_length=200)]


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Key
    points: Points
    lapses_in_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 900
    reason: Reason = "checkout"


class CaptureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: Points | None = None  # default: the whole hold


def _hold_id(reference: str) -> str:
    return f"{HOLD_SOURCE}:{reference}"


@router.post("/programs/<program>/members/<member>/holds", status_code=201)
def authorise(program: ProgramPath, member: MemberPath, body: HoldIn) -> EntryOut:
    context.principal(router.current_event).require_member(program, member)
    context.require_spending(services().programs.get(program), context.ledger_id(HOLD_SOURCE, body.reference))
    context.note_holds(program)
    cmd = Authorise(
        program=program,
        member=member,
        points=body.points,
        source=HOLD_SOURCE,
        external_id=body.reference,
        reason=body.reason,
        lapses_at=services().now() + timedelta(seconds=body.lapses_in_seconds),
    )
    return EntryOut.of(services().ledger.authorise(cmd))


@router.post("/programs/<program>/members/<member>/holds/<reference>/capture", status_code=201)
def capture(program: ProgramPath, member: MemberPath, reference: RefPath, body: CaptureIn) -> EntryOut:
    context.principal(router.current_event).require_staff(program)
    cmd = Capture(program=program, member=member, hold_id=_hold_id(reference), points=body.points)
    return EntryOut.of(services().ledger.capture(cmd))


@router.post("/programs/<program>/members/<member>/holds/<reference>/release", status_code=201)
def release(program: ProgramPath, member: MemberPath, reference: RefPath) -> EntryOut:
    context.principal(router.current_event).require_member(program, member)
    cmd = Release(program=program, member=member, hold_id=_hold_id(reference))
    return EntryOut.of(services().ledger.release(cmd))
