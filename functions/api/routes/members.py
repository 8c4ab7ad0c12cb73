"""Members: balance, statement, tier and progress."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel

from functions.api import context
from functions.api.routes.models import DecimalText, EntryOut
from functions.services import services
from shared.errors import UnknownMemberError
from shared.members.activity import ACTIVITY
from shared.members.membership import Expiring, expiring, held_tier, spendable, tier_status

router = APIGatewayRouter()

ProgramPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")]
MemberPath = Annotated[str, Path(min_length=1, max_length=200)]


class Balance(BaseModel):
    program: str
    member: str
    available: int
    spendable: int  # available minus points whose lots expired but the expiry job has not run yet
    pending: int
    held: int
    expiring: list[Expiring]
    tier: str
    # Set when this account was merged into another (identities linked): its points live there now.
    merged_into: str | None = None


class Statement(BaseModel):
    entries: list[EntryOut]
    next: int | None  # pass as `after` for the next page; null when this is the last


class TierOut(BaseModel):
    tier: str
    basis: str
    qualifying: DecimalText
    next_tier: str | None
    needed_for_next: DecimalText | None


@router.get("/programs/<program>/members/<member>/balance")
def balance(program: ProgramPath, member: MemberPath) -> Balance:
    context.principal(router.current_event).require_member(program, member)
    config = services().programs.get(program)
    state, lots = services().ledger_store.get_account_and_lots(program, member)  # one Query: balance and lots
    if state is None:
        raise UnknownMemberError(f"member {member} has no account in {program}", member=member)
    now = services().now()
    tier = held_tier(config, services().members.get_tier(program, member)).name
    kept = config.kept_until(state.active_at)  # activity may keep points past their own dates
    return Balance(
        program=program,
        member=member,
        available=state.available,
        spendable=spendable(lots, now, kept),
        pending=state.pending,
        held=state.held,
        expiring=expiring(lots, now, config.tz, kept),
        tier=tier,
        merged_into=state.merged_into or None,
    )


@router.get("/programs/<program>/members/<member>/statement")
def statement(
    program: ProgramPath,
    member: MemberPath,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Statement:
    context.principal(router.current_event).require_member(program, member)
    services().ledger.account(program, member)
    found = services().ledger_store.entries(program, member, after_seq=after, limit=limit + 1)
    page = found[:limit]
    return Statement(
        entries=[EntryOut.of(e) for e in page],
        next=page[-1].seq if len(found) > limit else None,
    )


@router.get("/programs/<program>/members/<member>/tier")
def tier(program: ProgramPath, member: MemberPath) -> TierOut:
    context.principal(router.current_event).require_member(program, member)
    services().ledger.account(program, member)
    members = services().members  # the tier item and the activity tally, as the tier job reads them
    stored, counters = members.get_tier(program, member), members.tally_counters(program, member, ACTIVITY)
    status = tier_status(services().programs.get(program), stored, counters, services().now())
    return TierOut(
        tier=status.tier,
        basis=status.basis.value,
        qualifying=status.qualifying,
        next_tier=status.next_tier,
        needed_for_next=status.needed_for_next,
    )
