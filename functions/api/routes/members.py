"""Members: balance, statement, tier and progress."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import Field

from functions.api import context
from functions.api.routes.models import DecimalText, EntryOut
from functions.services import services
from shared.errors import UnknownMemberError
from shared.ledger.statement import Language, choose_language, related_ids
from shared.members.activity import ACTIVITY
from shared.members.membership import Expiring, expiring, held_tier, spendable, tier_status
from shared.model import Model

router = APIGatewayRouter()

ProgramPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$", description="The program's id, e.g. `demo`.")]
MemberPath = Annotated[str, Path(min_length=1, max_length=200, description="The member's id in the program.")]


class Balance(Model):
    """A member's points by bucket, what expires soon, and the tier."""

    program: str = Field(description="The program's id.")
    member: str = Field(description="The member's id.")
    available: int = Field(description="Points the member holds and may spend, as the ledger has them.")
    spendable: int = Field(
        description="`available` less points whose expiry date has passed but the expiry job has not run yet: "
        "what a redemption can take now."
    )
    pending: int = Field(
        description="Points earned but not yet spendable (e.g. until an order's return window closes)."
    )
    held: int = Field(description="Points reserved by open checkout holds, outbound transfers or held gifts.")
    expiring: list[Expiring] = Field(
        description="Points expiring in the next 90 days, by the date they expire on in the program's time zone "
        "(later than a lot's own date while the member's activity keeps points alive)."
    )
    tier: str = Field(description="The member's tier.")
    merged_into: str | None = Field(
        None,
        description="Set when this account was merged into another (identities linked): its points live there now, "
        "and operations on it answer `account_closed`.",
    )


class Statement(Model):
    """One page of a member's ledger entries, oldest first."""

    entries: list[EntryOut] = Field(description="The entries, in the order the ledger wrote them.")
    next: int | None = Field(description="Pass as `after` for the next page; null on the last page.")
    language: Language = Field(description="The language of the titles, details and explanations.")


class TierOut(Model):
    """A member's tier and the progress towards the next one."""

    tier: str = Field(description="The tier the member holds now.")
    basis: str = Field(
        description="What qualifies for tiers in this program: `spend` (eligible money spent in the qualifying "
        "window, in the program's currency) or `points` (points earned in the window)."
    )
    qualifying: DecimalText = Field(description="The member's qualifying activity so far (decimal string).")
    next_tier: str | None = Field(description="The next tier up; null at the top tier.")
    needed_for_next: DecimalText | None = Field(
        description="Qualifying activity still needed for `next_tier` (0 when reached and the move is pending); "
        "null at the top tier."
    )


@router.get("/programs/<program>/members/<member>/balance")
def balance(program: ProgramPath, member: MemberPath) -> Balance:
    """A member's balance.

    Available, spendable, pending and held points, the points expiring in the next 90 days, and the
    tier. One read of the member's balance and lots.
    """
    context.authorize(router, program=program, member=member)
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
    after: Annotated[int, Query(ge=0, description="Entries after this `seq` (the previous page's `next`).")] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many entries.")] = 25,
    lang: Annotated[
        Literal["en", "zh-CN"] | None,
        Query(description="The statement's language; without it, the best match of Accept-Language, else `en`."),
    ] = None,
) -> Statement:
    """A member's statement.

    Every ledger entry of the member, in the order it was written, each with a sentence that says what
    happened and the facts behind it (the order and its amount, the shop or partner, the rules' own
    arithmetic, the reward, the other member of a gift or merge), dated by the event, with the balance
    after each entry and the config version whose rules applied. In English or Simplified Chinese
    (`lang`, or Accept-Language). Paged with `after` and `next`.
    """
    context.authorize(router, program=program, member=member)
    services().ledger.account(program, member)
    found = services().ledger_store.entries(program, member, after_seq=after, limit=limit + 1)
    page = found[:limit]
    headers = {k.lower(): v for k, v in (router.current_event.headers or {}).items()}
    language = choose_language(lang, headers.get("accept-language"))
    named = services().ledger_store.get_entries(program, related_ids(page))  # the earns expiries name
    return Statement(
        entries=[EntryOut.of(e, language, named) for e in page],
        next=page[-1].seq if len(found) > limit else None,
        language=language,
    )


@router.get("/programs/<program>/members/<member>/tier")
def tier(program: ProgramPath, member: MemberPath) -> TierOut:
    """A member's tier and progress.

    The tier held now, the qualifying activity (as the tier job counts it), and what is still needed for
    the next tier.
    """
    context.authorize(router, program=program, member=member)
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
