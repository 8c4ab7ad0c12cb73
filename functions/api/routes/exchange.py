"""Partner exchange: agreements, quotes, execution, inbound and outbound transfers, settlement."""

from datetime import date, datetime, timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import DecimalText, EntryOut
from functions.services import services
from shared.access.keys import require_agreement, require_partner
from shared.exchange import agreements as exchange
from shared.exchange.settlement import Position, partner_period
from shared.ledger.commands import Authorise, Capture, Earn, Key, Points, Reason, Release
from shared.ledger.models import Account

router = APIGatewayRouter()
IdPath = Annotated[str, Path(min_length=1, max_length=100)]
OUTBOUND = "/partners/<partner>/programs/<program>/members/<member>/transfers-out/<transfer_id>"
OUTBOUND_LAPSE = timedelta(hours=24)  # a partner that never answers: the hold lapses, points return


class QuoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: Key
    to_member: Key | None = None  # default: the same member id in the other program
    points: Points


class QuoteOut(BaseModel):
    quote_id: str
    agreement: str
    agreement_version: int
    from_program: str
    to_program: str
    member: str
    to_member: str
    gross: int
    fee: int
    rate: DecimalText
    credited: int
    residue: DecimalText
    expires_at: datetime

    @classmethod
    def of(cls, q: exchange.Quote) -> "QuoteOut":
        return cls.model_validate(q.model_dump())


class ExecutionOut(BaseModel):
    debit: EntryOut
    credit: EntryOut


class InboundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transfer_id: Key  # the partner's own id: a retried transfer credits once
    points: Points
    reason: Reason = "points transferred from a partner"
    # Required: it is part of what makes a retry identical (a server-side "now" would differ).
    occurred_at: AwareDatetime


class OutboundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner: Key
    transfer_id: Key
    points: Points


class PositionOut(BaseModel):
    entries: int
    sent: int  # points that went to the partner (fees included)
    received: int  # points that came from the partner
    net: int  # sent - received: + the program owes the partner, - the partner owes the program
    fees: int  # exchange fees among `sent`
    residue: DecimalText  # fractions of points lost to rounding down on exchanges into the program

    @classmethod
    def fields_of(cls, p: Position) -> dict[str, object]:
        return {
            "entries": p.entries,
            "sent": p.sent,
            "received": p.received,
            "net": p.net,
            "fees": p.fees,
            "residue": p.residue,
        }


class SettlementDayOut(PositionOut):
    day: date


class SettlementOut(PositionOut):
    program: str
    partner: str
    start: date
    end: date  # inclusive: whole UTC days
    days: list[SettlementDayOut]  # the days with any movement


def _require_open(from_program: str, to_program: str) -> None:
    """An exchange spends in one program and credits in the other: both must still allow it."""
    # No replay to look for: callers have checked that the quote was not executed.
    context.require_spending(services().programs.get(from_program), None)
    context.require_crediting(services().programs.get(to_program), None)


@router.post("/agreements/<agreement_id>/quotes", status_code=201)
def create_quote(agreement_id: IdPath, body: QuoteIn) -> QuoteOut:
    agreement = exchange.live_agreement(services().documents, agreement_id)
    who = context.principal(router.current_event)
    require_agreement(who, agreement.parties(), agreement.from_program, body.member)
    _require_open(agreement.from_program, agreement.to_program)
    services().ledger.account(agreement.from_program, body.member)
    q = exchange.quote(agreement, body.member, body.to_member or body.member, body.points, services().now())
    return QuoteOut.of(exchange.save_quote(services().exchange_items, q))


@router.post("/quotes/<quote_id>/execute", status_code=201)
def execute_quote(quote_id: IdPath) -> ExecutionOut:
    q = exchange.load_quote(services().exchange_items, quote_id)
    agreement = exchange.live_agreement(services().documents, q.agreement)
    who = context.principal(router.current_event)
    require_agreement(who, agreement.parties(), q.from_program, q.member)
    store = services().ledger_store
    debit = store.get_entry(q.from_program, f"{exchange.SOURCE}:{q.quote_id}")
    if debit is None:  # not executed yet; an executed quote replays even after it expired or the program ended
        _require_open(q.from_program, q.to_program)
        debit = exchange.execute(services().ledger, agreement, q, services().now())
    credit = store.get_entry(q.to_program, f"{debit.entry_id}/in")
    assert credit is not None  # written in the same transaction
    return ExecutionOut(debit=EntryOut.of(debit), credit=EntryOut.of(credit))


@router.post("/partners/<partner>/programs/<program>/members/<member>/transfers-in", status_code=201)
def inbound(partner: IdPath, program: ProgramPath, member: MemberPath, body: InboundIn) -> EntryOut:
    require_partner(context.principal(router.current_event), partner, program)
    source = f"partner-in:{partner}"
    context.require_crediting(services().programs.get(program), context.ledger_id(source, body.transfer_id))
    cmd = Earn(
        program=program,
        member=member,
        points=body.points,
        source=source,
        external_id=body.transfer_id,
        reason=body.reason,
        event_time=body.occurred_at,
        counter=Account.PARTNER,
        counter_owner=partner,
    )
    return EntryOut.of(services().ledger.earn(cmd))


@router.post("/programs/<program>/members/<member>/transfers-out", status_code=201)
def outbound(program: ProgramPath, member: MemberPath, body: OutboundIn) -> EntryOut:
    context.principal(router.current_event).require_member(program, member)
    source = f"partner-out:{body.partner}"
    context.require_spending(services().programs.get(program), context.ledger_id(source, body.transfer_id))
    context.note_holds(program)
    cmd = Authorise(
        program=program,
        member=member,
        points=body.points,
        source=source,
        external_id=body.transfer_id,
        reason=f"transfer to {body.partner}, waiting for the partner",
        lapses_at=services().now() + OUTBOUND_LAPSE,
        to_partner=True,
    )
    return EntryOut.of(services().ledger.authorise(cmd))


@router.post(
    "/partners/<partner>/programs/<program>/members/<member>/transfers-out/<transfer_id>/confirm", status_code=201
)
def confirm_outbound(partner: IdPath, program: ProgramPath, member: MemberPath, transfer_id: IdPath) -> EntryOut:
    require_partner(context.principal(router.current_event), partner, program)
    cmd = Capture(
        program=program,
        member=member,
        hold_id=f"partner-out:{partner}:{transfer_id}",
        reason=f"transfer to {partner} confirmed",
        counter=Account.PARTNER,
        counter_owner=partner,
    )
    return EntryOut.of(services().ledger.capture(cmd))


@router.post(
    "/partners/<partner>/programs/<program>/members/<member>/transfers-out/<transfer_id>/reject", status_code=201
)
def reject_outbound(partner: IdPath, program: ProgramPath, member: MemberPath, transfer_id: IdPath) -> EntryOut:
    require_partner(context.principal(router.current_event), partner, program)
    cmd = Release(
        program=program,
        member=member,
        hold_id=f"partner-out:{partner}:{transfer_id}",
        reason=f"transfer rejected by {partner}",
    )
    return EntryOut.of(services().ledger.release(cmd))


@router.get("/partners/<partner>/programs/<program>/settlement")
def settlement(
    partner: IdPath,
    program: ProgramPath,
    start: Annotated[date, Query()],
    end: Annotated[date, Query()],
) -> SettlementOut:
    """Summed from the settlement lines the stream watcher writes per day; seconds behind the ledger."""
    require_partner(context.principal(router.current_event), partner, program)
    services().programs.get(program)
    period = partner_period(services().exchange_items, program, partner, start, end)
    return SettlementOut(
        program=program,
        partner=partner,
        start=start,
        end=end,
        days=[SettlementDayOut(day=d.day, **PositionOut.fields_of(d.position)) for d in period.days],
        **PositionOut.fields_of(period.total),
    )
