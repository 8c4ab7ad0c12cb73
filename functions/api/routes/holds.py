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
RefPath = Annotated[
    str, Path(min_length=1, max_length=200, description="The `reference` the hold was authorised with.")
]


class HoldIn(BaseModel):
    """Points to reserve at checkout."""

    model_config = ConfigDict(extra="forbid")

    reference: Key = Field(
        description="The caller's own id for this hold (e.g. the basket): it names the hold in the capture and "
        "release paths, and retrying with it never holds twice."
    )
    points: Points = Field(description="Points to reserve.")
    lapses_in_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = Field(
        900,
        description="Unless captured or released by then, the hold lapses after this many seconds and its "
        "points return (the hold-lapse job).",
    )
    reason: Reason = Field("checkout", description="Shown on the statement.")


class CaptureIn(BaseModel):
    """How much of the hold to take."""

    model_config = ConfigDict(extra="forbid")

    points: Points | None = Field(
        None, description="Points to capture, at most the hold's; the rest returns to the member. Default: all."
    )


def _hold_id(reference: str) -> str:
    return f"{HOLD_SOURCE}:{reference}"


@router.post("/programs/<program>/members/<member>/holds", status_code=201)
def authorise(program: ProgramPath, member: MemberPath, body: HoldIn) -> EntryOut:
    """Hold points at checkout.

    Moves points from available to held until the checkout captures or releases them, or the hold
    lapses. The hold's entry is the reply.
    """
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
    """Capture a hold.

    Spends the held points, all or `points` of them; the rest return to the member with their
    expiry dates. Capturing again with the same request replays the capture's entry.
    """
    context.principal(router.current_event).require_staff(program)
    cmd = Capture(program=program, member=member, hold_id=_hold_id(reference), points=body.points)
    return EntryOut.of(services().ledger.capture(cmd))


@router.post("/programs/<program>/members/<member>/holds/<reference>/release", status_code=201)
def release(program: ProgramPath, member: MemberPath, reference: RefPath) -> EntryOut:
    """Release a hold.

    Returns the held points to the member with their expiry dates. Releasing again replays the
    release's entry.
    """
    context.principal(router.current_event).require_member(program, member)
    cmd = Release(program=program, member=member, hold_id=_hold_id(reference))
    return EntryOut.of(services().ledger.release(cmd))
