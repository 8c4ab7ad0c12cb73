"""Support's desk: find a member, see everything about them, and act with a reason (admin only).

Search takes an e-mail address, phone number or card number as the member gives it, in the body
of a POST (never in a URL, which access logs keep): e-mails and phones are hashed here with the
stack's identity key before the directory is read, as everywhere else. Every action needs a
non-empty reason and is written with the agent's id (`shared.members.support`).
"""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from functions.api import context
from functions.api.console_page import console_page
from functions.api.routes.identities import LinkKind, _identity
from functions.api.routes.members import Balance, MemberPath, ProgramPath, Statement
from functions.api.routes.models import EntryOut, Reference, SupportReason
from functions.services import services
from shared.access.keys import Principal
from shared.errors import InvalidInputError, UnknownMemberError
from shared.ledger.models import Entry
from shared.ledger.statement import Language, choose_language, related_ids, tier_line
from shared.members import support
from shared.members.membership import expiring, held_tier, spendable

router = APIGatewayRouter()
SearchValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
Region = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
RECENT_ENTRIES = 50


class SearchIn(BaseModel):
    """What support knows about the member: one of an e-mail address, phone number, card or member id."""

    model_config = ConfigDict(extra="forbid")

    email: SearchValue | None = Field(None, description="The e-mail address, as the member gives it.")
    phone: SearchValue | None = Field(None, description="The phone number, as the member gives it.")
    region: Region | None = Field(None, description="For a phone number without a country code: its country.")
    card: SearchValue | None = Field(None, description="The loyalty card number (spaces and hyphens ignored).")
    member: SearchValue | None = Field(None, description="The member's id in the program.")

    @model_validator(mode="after")
    def one_clue(self) -> "SearchIn":
        given = [name for name in ("email", "phone", "card", "member") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of email, phone, card or member")
        return self


class Found(BaseModel):
    """The member a search found, with enough to recognise them."""

    member: str = Field(description="The member's id: open `GET /admin/programs/{program}/members/{member}`.")
    available: int = Field(description="Points available.")
    tier: str = Field(description="The tier held.")
    merged_into: str | None = Field(None, description="Set when the account was merged into that member.")


class SearchOut(BaseModel):
    """The members found (none, or one: an identity belongs to one member)."""

    members: list[Found] = Field(description="The members found; empty when nobody matches.")


class Lot(BaseModel):
    """Points credited together, and when what is left of them expires."""

    expires_at: str = Field(description="When they expire (effective: later while activity keeps them).")
    remaining: int = Field(description="Points left in the lot.")


class TierMoveOut(BaseModel):
    """One move of the member's tier."""

    at: str = Field(description="When (ISO 8601).")
    from_tier: str = Field(description="The tier before.")
    to_tier: str = Field(description="The tier after.")
    reason: str = Field(description="Why, as recorded (the rules' reason, or support's agent and reason).")
    line: str = Field(description="The move in the member's words, in the view's language.")


class IdentityOut(BaseModel):
    """An identity linked to the member, shown without giving it away."""

    kind: str = Field(description="email, phone, card, partner or customer.")
    shown: str = Field(description="E-mails and phones are stored hashed (shown as such); cards by their last 4.")


class FlagDecisionOut(BaseModel):
    """One record of the member's flag: raised by a check, or decided."""

    at: str = Field(description="When (ISO 8601).")
    decision: str = Field(description="flagged, cleared, released or voided.")
    reason: str = Field(description="What the check saw, or the decider's note.")
    operator: str = Field(description="Who decided (empty for a check).")


class MemberOut(BaseModel):
    """Everything support needs about one member of a program."""

    program: str = Field(description="The program's id.")
    member: str = Field(description="The member's id.")
    balance: Balance = Field(description="The balance, as `GET .../balance` gives it.")
    debt: int = Field(description="Points the member owes (a refund after spending), repaid from the next earns.")
    lots: list[Lot] = Field(description="The member's lots with points left, soonest expiry first.")
    tier_history: list[TierMoveOut] = Field(description="Every move of the member's tier, oldest first.")
    tiers: list[str] = Field(description="The program's tiers, lowest first (what a tier override may set).")
    identities: list[IdentityOut] = Field(description="Identities linked to the member.")
    flag: str = Field(description="The flag's status: open, cleared, released, voided; empty when never flagged.")
    flag_history: list[FlagDecisionOut] = Field(description="The flag's records, oldest first.")
    statement: Statement = Field(description="The latest entries (up to 50), oldest first, in the view's language.")


class AdjustmentIn(BaseModel):
    """Points support adds (from the program's goodwill account) or takes back, and why."""

    model_config = ConfigDict(extra="forbid")

    points: int = Field(
        description="Points to add (> 0) or deduct (< 0); a deduction that would overdraw is refused.",
        ge=-support.MAX_ADJUSTMENT,
        le=support.MAX_ADJUSTMENT,
    )
    reason: SupportReason = Field(description="Why: kept on the entry with the agent, and shown on the statement.")
    reference: Reference | None = Field(
        None, description="Support's own id for it (a ticket): a retry with it finds the same entry."
    )


class ReversalIn(BaseModel):
    """An entry of the member's to reverse, and why."""

    model_config = ConfigDict(extra="forbid")

    entry_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="The entry (from the statement): a redemption, a captured checkout, an earn or partner credit, "
        "or a gift (sent or received)."
    )
    reason: SupportReason = Field(description="Why: kept on the reversal with the agent, and shown on the statement.")


class TierIn(BaseModel):
    """The tier support sets, and why."""

    model_config = ConfigDict(extra="forbid")

    tier: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)] = Field(
        description="One of the program's tiers."
    )
    reason: SupportReason = Field(description="Why: kept on the tier change with the agent.")


class ActionOut(BaseModel):
    """What support's action wrote, and the balance after it."""

    entry: EntryOut = Field(description="The member's entry the action wrote.")
    available: int = Field(description="Points available after it.")


def _agent(who: Principal, reason: str) -> support.Agent:
    return support.Agent(id=who.id, reason=reason)


def _language(lang: str | None) -> Language:
    headers = {k.lower(): v for k, v in (router.current_event.headers or {}).items()}
    return choose_language(lang, headers.get("accept-language"))


@router.post("/admin/programs/<program>/members/search")
def search(program: ProgramPath, body: SearchIn) -> SearchOut:
    """Find a member by e-mail, phone, card or id.

    E-mails and phone numbers are hashed with the stack's identity key before anything reads,
    stores or logs them (the body, not the URL, carries them). Nobody matching is an empty list.
    """
    context.authorize(router, program=program)
    services().programs.get(program)
    if body.member:
        candidate: str | None = body.member
    else:
        kind = LinkKind.EMAIL if body.email else LinkKind.PHONE if body.phone else LinkKind.CARD
        value = body.email or body.phone or body.card or ""
        candidate = services().members.member_for(_identity(kind, value, region=body.region).key)
    if candidate is None:
        return SearchOut(members=[])
    state = services().ledger_store.get_account(program, candidate)
    if state is None:
        return SearchOut(members=[])
    tier = held_tier(services().programs.get(program), services().members.get_tier(program, candidate)).name
    return SearchOut(
        members=[Found(member=candidate, available=state.available, tier=tier, merged_into=state.merged_into or None)]
    )


@router.get("/admin/programs/<program>/members/<member>")
def member_view(
    program: ProgramPath,
    member: MemberPath,
    lang: Annotated[
        Literal["en", "zh-CN"] | None,
        Query(description="The statement's language; without it, the best match of Accept-Language, else `en`."),
    ] = None,
) -> MemberOut:
    """A member, for support.

    The balance and the lots with their expiry dates, the latest statement lines, the tier and its
    history, the linked identities (hashed ones stay hashed), and the flag with its history.
    """
    context.authorize(router, program=program, member=member)
    config = services().programs.get(program)
    store, members = services().ledger_store, services().members
    state, lots = store.get_account_and_lots(program, member)
    if state is None:
        raise UnknownMemberError(f"member {member} has no account in {program}", member=member)
    now, language = services().now(), _language(lang)
    kept = config.kept_until(state.active_at)
    first = max(state.seq - RECENT_ENTRIES, 0)
    page = store.entries(program, member, after_seq=first, limit=RECENT_ENTRIES)
    named = store.get_entries(program, related_ids(page))
    profile = members.profile(member)
    flag = members.get_flag(program, member)
    return MemberOut(
        program=program,
        member=member,
        balance=Balance(
            program=program,
            member=member,
            available=state.available,
            spendable=spendable(lots, now, kept),
            pending=state.pending,
            held=state.held,
            expiring=expiring(lots, now, config.tz, kept),
            tier=held_tier(config, members.get_tier(program, member)).name,
            merged_into=state.merged_into or None,
        ),
        debt=state.debt,
        lots=[
            Lot(expires_at=lot.expires(kept).isoformat(), remaining=lot.remaining)
            for lot in sorted(lots, key=lambda lot: lot.expires(kept))
            if lot.remaining
        ],
        tier_history=[
            TierMoveOut(
                at=c.at,
                from_tier=c.from_tier,
                to_tier=c.to_tier,
                reason=c.reason,
                line=tier_line(c.from_tier, c.to_tier, c.reason, language),
            )
            for c in members.tier_changes(program, member)
            if c.from_tier != c.to_tier or c.reason.startswith(support.OVERRIDE_PREFIX)
        ],
        tiers=[t.name for t in config.tiers],
        identities=[_shown(key) for key in sorted(profile.identities)] if profile else [],
        flag=flag.status if flag else "",
        flag_history=[
            FlagDecisionOut(at=d.at, decision=d.decision, reason=d.reason, operator=d.operator)
            for d in members.flag_log(program, member)
        ],
        statement=Statement(
            entries=[EntryOut.of(e, language, named) for e in page],
            next=None,
            language=language,
        ),
    )


def _shown(identity_key: str) -> IdentityOut:
    kind, _, rest = identity_key.partition("#")
    if kind == "card":
        return IdentityOut(kind=kind, shown="card ending " + rest[-4:])
    if kind in ("email", "phone"):
        return IdentityOut(kind=kind, shown=f"{kind} (hashed {rest[:8]}...)")
    return IdentityOut(kind=kind, shown=rest)


@router.post("/admin/programs/<program>/members/<member>/adjustments", status_code=201)
def adjust(program: ProgramPath, member: MemberPath, body: AdjustmentIn) -> ActionOut:
    """Adjust a member's points (support).

    Adds points from the program's goodwill account, or deducts them back to it; a deduction that
    would overdraw is `insufficient_points`. The entry keeps the reason and the agent, and the
    statement shows it as customer service's.
    """
    agent = context.authorize(router, program=program, member=member)
    if body.points == 0:
        raise InvalidInputError("an adjustment of 0 points changes nothing: give points > 0 or < 0")
    entry = support.adjust(
        services().ledger,
        program,
        member,
        body.points,
        _agent(agent, body.reason),
        services().now(),
        body.reference or "",
    )
    return _action(program, member, entry)


@router.post("/admin/programs/<program>/members/<member>/reversals", status_code=201)
def reverse(program: ProgramPath, member: MemberPath, body: ReversalIn) -> ActionOut:
    """Reverse a redemption, a credit or a gift (support).

    The reversal names its cause (the agent) and its reason, and is done once: again is
    `already_reversed`. Entries settled another way (pending points, holds, expiries, merges,
    exchanges, reversals) are `not_reversible`. A gift's points go back from its recipient to its
    sender (`insufficient_points` when the recipient no longer has them).
    """
    agent = context.authorize(router, program=program, member=member)
    entry = support.reverse(
        services().ledger,
        services().ledger_store,
        program,
        member,
        body.entry_id,
        _agent(agent, body.reason),
        services().now(),
    )
    return _action(program, member, entry)


@router.post("/admin/programs/<program>/members/<member>/tier", status_code=201)
def override_tier(program: ProgramPath, member: MemberPath, body: TierIn) -> TierMoveOut:
    """Override a member's tier (support).

    Sets the tier for one qualification period from now; the tier change record keeps the agent and
    the reason, and the tier reviews apply the program's rules after it. An unknown tier is
    `unknown_tier`.
    """
    agent = context.authorize(router, program=program, member=member)
    services().ledger.account(program, member)
    change = support.override_tier(
        services().tiers,
        services().members,
        services().programs,
        program,
        member,
        body.tier,
        _agent(agent, body.reason),
        services().now(),
    )
    return TierMoveOut(
        at=change.at,
        from_tier=change.from_tier,
        to_tier=change.to_tier,
        reason=change.reason,
        line=tier_line(change.from_tier, change.to_tier, change.reason, _language(None)),
    )


def _action(program: str, member: str, entry: Entry) -> ActionOut:
    named = services().ledger_store.get_entries(program, related_ids([entry]))
    state = services().ledger_store.get_account(program, member)
    return ActionOut(entry=EntryOut.of(entry, _language(None), named), available=state.available if state else 0)


@router.get("/console/members", include_in_schema=False)
def members_page() -> Response[str]:
    """The console's members page (support's desk); it asks for an admin key and calls the API with it."""
    return console_page("console_members.html")
