"""Partner exchange: agreements, quotes, execution, inbound and outbound transfers, settlement."""

from datetime import date, datetime, timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field, StringConstraints

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import MAX_REFERENCE, DecimalText, EntryOut, Reference
from functions.services import services
from shared.events.model import IdentityKind, Moment
from shared.exchange import agreements as exchange
from shared.exchange.settlement import Position, partner_period
from shared.ledger.commands import Authorise, Capture, Earn, Key, Points, Reason, Release
from shared.ledger.models import Account
from shared.model import Model

router = APIGatewayRouter()
AgreementPath = Annotated[str, Path(min_length=1, max_length=100, description="The agreement's id, e.g. `demo-air`.")]
QuotePath = Annotated[str, Path(min_length=1, max_length=100, description="The `quote_id` a quote was given.")]
# A partner's id and a transfer id fit, with the member's namespace, in the ledger's 200-character hold ids.
MAX_PARTNER = 50
PartnerId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PARTNER)]
PartnerPath = Annotated[
    str, Path(min_length=1, max_length=MAX_PARTNER, description="The partner brand's id (its partner key's id).")
]
TransferPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_REFERENCE, description="The `transfer_id` the outbound transfer was made with."),
]
OUTBOUND = "/partners/<partner>/programs/<program>/members/<member>/transfers-out/<transfer_id>"
OUTBOUND_LAPSE = timedelta(hours=24)  # a partner that never answers: the hold lapses, points return


class QuoteIn(Model):
    """Points of one program to exchange into the other, under the agreement."""

    model_config = ConfigDict(extra="forbid")

    member: Key = Field(description="The member whose points leave the agreement's `from_program`.")
    to_member: Key | None = Field(None, description="The member credited in `to_program`; default the same member id.")
    points: Points = Field(
        description="Points to take from `member` (the gross, fee included): at least the agreement's minimum, in "
        "its steps."
    )


class QuoteOut(Model):
    """A priced exchange, good until `expires_at`: execute it to move the points."""

    quote_id: str = Field(description="Execute it with `POST /quotes/{quote_id}/execute`.")
    agreement: str = Field(description="The agreement's id.")
    agreement_version: int = Field(description="The agreement version the quote is priced under.")
    from_program: str = Field(description="The program points leave.")
    to_program: str = Field(description="The program points arrive in.")
    member: str = Field(description="The member debited in `from_program`.")
    to_member: str = Field(description="The member credited in `to_program`.")
    gross: int = Field(description="Points debited in `from_program`, fee included.")
    fee: int = Field(description="The agreement's flat fee, in `from_program` points, kept by `from_program`.")
    rate: DecimalText = Field(description="`to_program` points per `from_program` point (decimal string).")
    credited: int = Field(description="Points credited in `to_program`: floor((gross - fee) x rate).")
    residue: DecimalText = Field(
        description="The fraction of a `to_program` point lost to rounding down, 0 <= residue < 1 (decimal string)."
    )
    expires_at: datetime = Field(description="After this the quote answers `quote_expired`.")

    @classmethod
    def of(cls, q: exchange.Quote) -> "QuoteOut":
        return cls.model_validate(q.model_dump())


class ExecutionOut(Model):
    """The two entries of an executed exchange, written in one transaction."""

    debit: EntryOut = Field(description="The member's entry in `from_program`: the gross points leave.")
    credit: EntryOut = Field(description="The receiving member's entry in `to_program`: the credited points arrive.")


class InboundIn(Model):
    """Points a partner transfers to a member."""

    model_config = ConfigDict(extra="forbid")

    transfer_id: Reference = Field(
        description="The partner's own id for the transfer: a retried transfer credits once."
    )
    points: Points = Field(description="Points to credit to the member.")
    reason: Reason = Field("points transferred from a partner", description="Shown on the statement.")
    # Required: it is part of what makes a retry identical (a server-side "now" would differ).
    occurred_at: Moment = Field(
        description="When the transfer happened at the partner (with an offset, between 1970 and 2199); the "
        "points' expiry counts from it."
    )


class OutboundIn(Model):
    """Points a member sends to a partner brand."""

    model_config = ConfigDict(extra="forbid")

    partner: PartnerId = Field(description="The partner brand receiving the points: only it may confirm them.")
    transfer_id: Reference = Field(
        description="The member's own id for the transfer: the partner confirms or rejects it under this id, and "
        "retrying with it never holds twice."
    )
    points: Points = Field(description="Points to send.")


class ConfirmIn(Model):
    """What the partner received."""

    model_config = ConfigDict(extra="forbid")

    points: Points | None = Field(
        None,
        description="Points the partner takes, at most the transfer's: the rest return to the member. Default: all "
        "of them. More than the transfer is `capture_exceeds_hold`, never widened.",
    )


class PositionOut(Model):
    """What a program and a partner moved between them, in the program's points."""

    entries: int = Field(description="Ledger entries counted.")
    sent: int = Field(
        description="Points that went to the partner (members spending or exchanging out), fees included."
    )
    received: int = Field(description="Points that came from the partner (points it issued to members).")
    net: int = Field(description="sent - received: positive, the program owes the partner; negative, the partner owes.")
    fees: int = Field(description="Exchange fees among `sent`, kept by the program.")
    residue: DecimalText = Field(
        description="Fractions of points members did not receive on exchanges into the program, rounded down "
        "(decimal string)."
    )

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
    """One UTC day's movements between the program and the partner."""

    day: date = Field(description="The UTC day of the entries' `recorded_at`.")


class SettlementOut(PositionOut):
    """A partner's settlement with a program over whole UTC days: the totals, and each day with movement."""

    program: str = Field(description="The program.")
    partner: str = Field(description="The partner brand.")
    start: date = Field(description="The first UTC day.")
    end: date = Field(description="The last UTC day (inclusive).")
    days: list[SettlementDayOut] = Field(description="The days with any movement, in order.")


def _outbound_hold(partner: str, member: str, transfer_id: str) -> str:
    return f"partner-out:{partner}:{context.member_reference(member, transfer_id)}"


def _linked(member: str, partner: str) -> bool:
    """Whether the member holds an id of this partner (linked by the partner itself, `POST .../identities`)."""
    profile = services().members.profile(member)
    prefix = f"{IdentityKind.PARTNER}#{partner}#"
    return profile is not None and any(identity.startswith(prefix) for identity in profile.identities)


def _require_open(from_program: str, to_program: str) -> None:
    """An exchange spends in one program and credits in the other: both must still allow it."""
    # No replay to look for: callers have checked that the quote was not executed.
    context.require_spending(services().programs.get(from_program), None)
    context.require_crediting(services().programs.get(to_program), None)


@router.post("/agreements/<agreement_id>/quotes", status_code=201)
def create_quote(agreement_id: AgreementPath, body: QuoteIn) -> QuoteOut:
    """Quote an exchange.

    Prices an exchange of the member's points into the other program of an active agreement:
    gross, fee, rate, the points credited (always rounded down) and the residue. Nothing moves until
    the quote is executed, before it expires.
    """
    agreement = exchange.live_agreement(services().documents, agreement_id)
    context.authorize(router, program=agreement.from_program, member=body.member)
    _require_open(agreement.from_program, agreement.to_program)
    services().ledger.account(agreement.from_program, body.member)
    q = exchange.quote(agreement, body.member, body.to_member or body.member, body.points, services().now())
    return QuoteOut.of(exchange.save_quote(services().exchange_items, q))


@router.post("/quotes/<quote_id>/execute", status_code=201)
def execute_quote(quote_id: QuotePath) -> ExecutionOut:
    """Execute a quote.

    Debits the member in one program and credits the receiving member in the other, in one
    transaction, as the quote priced it. Executing an executed quote replays its two entries, even
    after it expired.
    """
    q = exchange.load_quote(services().exchange_items, quote_id)
    context.authorize(router, program=q.from_program, member=q.member)
    agreement = exchange.live_agreement(services().documents, q.agreement)
    store = services().ledger_store
    debit = store.get_entry(q.from_program, f"{exchange.SOURCE}:{q.quote_id}")
    if debit is None:  # not executed yet; an executed quote replays even after it expired or the program ended
        _require_open(q.from_program, q.to_program)
        debit = exchange.execute(services().ledger, agreement, q, services().now())
    credit = store.get_entry(q.to_program, f"{debit.entry_id}/in")
    assert credit is not None  # written in the same transaction
    return ExecutionOut(debit=EntryOut.of(debit), credit=EntryOut.of(credit))


@router.post("/partners/<partner>/programs/<program>/members/<member>/transfers-in", status_code=201)
def inbound(partner: PartnerPath, program: ProgramPath, member: MemberPath, body: InboundIn) -> EntryOut:
    """Transfer points in from a partner.

    Credits the member with points the partner issues (and owes the program for, see the settlement).
    Only for a member who linked the partner's id. Idempotent on the partner's `transfer_id`.
    """
    who = context.authorize(
        router, program=program, member=member, partner=partner, linked=lambda: _linked(member, partner)
    )
    source = f"partner-in:{partner}"
    transfer = context.own_reference(who, member, body.transfer_id)
    context.require_crediting(services().programs.get(program), context.ledger_id(source, transfer))
    cmd = Earn(
        program=program,
        member=member,
        points=body.points,
        source=source,
        external_id=transfer,
        reason=body.reason,
        event_time=body.occurred_at,
        counter=Account.PARTNER,
        counter_owner=partner,
    )
    return EntryOut.of(services().ledger.earn(cmd))


@router.post("/programs/<program>/members/<member>/transfers-out", status_code=201)
def outbound(program: ProgramPath, member: MemberPath, body: OutboundIn) -> EntryOut:
    """Transfer points out to a partner.

    Holds the member's points until the partner confirms (they go to the partner) or rejects (they
    return); a transfer the partner never answers lapses after 24 hours and the points return.
    """
    context.authorize(router, program=program, member=member)
    source = f"partner-out:{body.partner}"
    transfer = context.member_reference(member, body.transfer_id)
    context.require_spending(services().programs.get(program), context.ledger_id(source, transfer))
    context.note_holds(program)
    cmd = Authorise(
        program=program,
        member=member,
        points=body.points,
        source=source,
        external_id=transfer,
        reason=f"transfer to {body.partner}, waiting for the partner",
        lapses_at=services().now() + OUTBOUND_LAPSE,
        to_partner=True,
    )
    return EntryOut.of(services().ledger.authorise(cmd))


@router.post(
    "/partners/<partner>/programs/<program>/members/<member>/transfers-out/<transfer_id>/confirm", status_code=201
)
def confirm_outbound(
    partner: PartnerPath,
    program: ProgramPath,
    member: MemberPath,
    transfer_id: TransferPath,
    body: Annotated[ConfirmIn | None, Body(description="What the partner took; no body: all of it.")] = None,
) -> EntryOut:
    """Confirm an outbound transfer.

    The partner received the points: the hold is captured to the partner's account, all of it or
    the `points` the partner took (the rest return to the member). Only the partner the transfer
    names may confirm it.
    """
    context.authorize(router, program=program, member=member, partner=partner)
    cmd = Capture(
        program=program,
        member=member,
        hold_id=_outbound_hold(partner, member, transfer_id),
        points=body.points if body is not None else None,
        reason=f"transfer to {partner} confirmed",
        counter=Account.PARTNER,
        counter_owner=partner,
    )
    return EntryOut.of(services().ledger.capture(cmd))


@router.post(
    "/partners/<partner>/programs/<program>/members/<member>/transfers-out/<transfer_id>/reject", status_code=201
)
def reject_outbound(
    partner: PartnerPath, program: ProgramPath, member: MemberPath, transfer_id: TransferPath
) -> EntryOut:
    """Reject an outbound transfer.

    The partner refused the points: the hold is released and they return to the member. Only the
    partner the transfer names may reject it.
    """
    context.authorize(router, program=program, member=member, partner=partner)
    cmd = Release(
        program=program,
        member=member,
        hold_id=_outbound_hold(partner, member, transfer_id),
        reason=f"transfer rejected by {partner}",
    )
    return EntryOut.of(services().ledger.release(cmd))


@router.get("/partners/<partner>/programs/<program>/settlement")
def settlement(
    partner: PartnerPath,
    program: ProgramPath,
    start: Annotated[date, Query(description="The first UTC day (ISO date).")],
    end: Annotated[date, Query(description="The last UTC day, inclusive (ISO date); at most 93 days after `start`.")],
) -> SettlementOut:
    """A partner's settlement statement.

    What the program and the partner moved between them over whole UTC days: points sent and
    received, the net, exchange fees and rounding residue, with the same per day. Summed from the
    settlement lines the stream watcher writes per day, so seconds behind the ledger.
    """
    context.authorize(router, program=program, partner=partner)
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
