"""Checkout holds: authorise, then capture (in full or part) or release. Lapsed holds are released
by the scheduled functions.holds job."""

from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import MAX_REFERENCE, EntryOut, Reference, SupportReason, by_support
from functions.services import services
from shared.errors import InvalidInputError
from shared.ledger.commands import Authorise, Capture, Key, Points, Reason, Release
from shared.model import Model

router = APIGatewayRouter()
HOLD_SOURCE = "checkout"
RefPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_REFERENCE,
        description="The `reference` the hold was authorised with, by the same caller: another caller's hold "
        "with the same reference is not found.",
    ),
]


class HoldIn(Model):
    """Points to reserve at checkout."""

    model_config = ConfigDict(extra="forbid")

    reference: Reference = Field(
        description="The caller's own id for this hold (e.g. the basket): it names the hold in the capture and "
        "release paths, and retrying with it never holds twice. Yours alone: only you (or support) can settle it."
    )
    points: Points = Field(description="Points to reserve.")
    lapses_in_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = Field(
        900,
        description="Unless captured or released by then, the hold lapses after this many seconds and its "
        "points return (the hold-lapse job).",
    )
    reason: Reason = Field("checkout", description="Shown on the statement.")


class CaptureIn(Model):
    """How much of the hold to take."""

    model_config = ConfigDict(extra="forbid")

    points: Points | None = Field(
        None, description="Points to capture, at most the hold's; the rest returns to the member. Default: all."
    )


class Settlement(StrEnum):
    """What support does with a hold."""

    CAPTURE = "capture"
    RELEASE = "release"


class SupportSettleIn(Model):
    """Support settling a member's checkout hold that its placer cannot, and why."""

    model_config = ConfigDict(extra="forbid")

    hold_id: Key = Field(description="The hold's `entry_id`, as the member's statement shows it (`checkout:...`).")
    action: Settlement = Field(description="`capture` (spend the held points) or `release` (return them).")
    points: Points | None = Field(
        None, description="With `capture`: points to capture, at most the hold's; the rest returns. Default: all."
    )
    reason: SupportReason = Field(description="Why support settles it; kept on the entry with who did it.")


def _hold_id(reference: str) -> str:
    return f"{HOLD_SOURCE}:{reference}"


@router.post("/programs/<program>/members/<member>/holds", status_code=201)
def authorise(program: ProgramPath, member: MemberPath, body: HoldIn) -> EntryOut:
    """Hold points at checkout.

    Moves points from available to held until the checkout captures or releases them, or the hold
    lapses. The hold's entry is the reply.
    """
    who = context.authorize(router, program=program, member=member)
    reference = context.own_reference(who, member, body.reference)
    context.require_spending(services().programs.get(program), context.ledger_id(HOLD_SOURCE, reference))
    context.note_holds(program)
    cmd = Authorise(
        program=program,
        member=member,
        points=body.points,
        source=HOLD_SOURCE,
        external_id=reference,
        reason=body.reason,
        lapses_at=services().now() + timedelta(seconds=body.lapses_in_seconds),
    )
    return EntryOut.of(services().ledger.authorise(cmd))


@router.post("/programs/<program>/members/<member>/holds/<reference>/capture", status_code=201)
def capture(program: ProgramPath, member: MemberPath, reference: RefPath, body: CaptureIn) -> EntryOut:
    """Capture a hold.

    Spends the held points, all or `points` of them; the rest return to the member with their
    expiry dates. Only the caller that placed the hold finds it by its reference. Capturing again
    with the same request replays the capture's entry.
    """
    who = context.authorize(router, program=program, member=member)
    hold_id = _hold_id(context.own_reference(who, member, reference))
    cmd = Capture(program=program, member=member, hold_id=hold_id, points=body.points)
    return EntryOut.of(services().ledger.capture(cmd))


@router.post("/programs/<program>/members/<member>/holds/<reference>/release", status_code=201)
def release(program: ProgramPath, member: MemberPath, reference: RefPath) -> EntryOut:
    """Release a hold.

    Returns the held points to the member with their expiry dates. Only the caller that placed the
    hold finds it by its reference. Releasing again replays the release's entry.
    """
    who = context.authorize(router, program=program, member=member)
    cmd = Release(program=program, member=member, hold_id=_hold_id(context.own_reference(who, member, reference)))
    return EntryOut.of(services().ledger.release(cmd))


@router.post("/admin/programs/<program>/members/<member>/holds/settle", status_code=201)
def settle_hold(program: ProgramPath, member: MemberPath, body: SupportSettleIn) -> EntryOut:
    """Settle a hold for its placer (support).

    Captures or releases a member's checkout hold named by its entry id, when the shop or till that
    placed it cannot; the reason and the support agent are written on the entry.
    """
    who = context.authorize(router, program=program, member=member)
    if not body.hold_id.startswith(f"{HOLD_SOURCE}:"):
        raise InvalidInputError("support settles checkout holds only; a partner settles its own transfers")
    reason = by_support(who, str(body.action), body.reason)
    if body.action is Settlement.CAPTURE:
        entry = services().ledger.capture(
            Capture(program=program, member=member, hold_id=body.hold_id, points=body.points, reason=reason)
        )
    else:
        if body.points is not None:
            raise InvalidInputError("a release returns the whole hold: give points only with capture")
        entry = services().ledger.release(Release(program=program, member=member, hold_id=body.hold_id, reason=reason))
    return EntryOut.of(entry)
