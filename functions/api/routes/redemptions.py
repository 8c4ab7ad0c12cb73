"""Redemption: the catalogue, redeeming points or a reward (with points + cash), donations."""

from typing import Annotated

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field, model_validator

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import DecimalText, EntryOut, Reference
from functions.services import services
from shared.errors import InvalidInputError
from shared.ledger.commands import Points, Reason, Spend
from shared.members.membership import held_tier
from shared.model import Model
from shared.rewards import catalogue

router = APIGatewayRouter()
REDEMPTION = "redemption"
DONATION = "donation"


class RedemptionIn(Model):
    """Points to spend, a reward to redeem, or both (a reward paid partly in cash)."""

    model_config = ConfigDict(extra="forbid")

    reference: Reference = Field(
        description="The caller's own id for this redemption: retrying with it never spends twice (the same "
        "request replays its entry; a different one is `idempotency_conflict`). Yours alone: another caller's "
        "(or another member's) identical reference is another redemption."
    )
    points: Points | None = Field(
        None,
        description="Points to spend. Alone: a plain points redemption. With `reward_id`: the points part of the "
        "price, the rest paid in cash (the reward must have a cash price); default the reward's full points price.",
    )
    reward_id: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="The catalogue reward to redeem (not a donation: those go to `/donations`)."
    )
    quantity: Annotated[int, Field(ge=1, le=100)] = Field(1, description="How many of the reward.")
    reason: Reason | None = Field(
        None, description="Shown on the statement; default `points redeemed` or `redeemed <quantity> x <reward>`."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> "RedemptionIn":
        if self.points is None and self.reward_id is None:
            raise ValueError("give points, a reward_id, or both (points + cash)")
        return self


class SplitOut(Model):
    """How a reward's price was paid: points, and the cash the caller collects."""

    points: int = Field(description="Points spent.")
    cash: DecimalText = Field(
        description='Cash to collect for the rest of the price (decimal string), rounded up to the cent; "0" when '
        "paid in points alone."
    )
    currency: str = Field(description="The program's currency (ISO 4217) that `cash` is in.")


class RedemptionOut(Model):
    """The spend entry, and for a reward what was redeemed and how it was paid."""

    entry: EntryOut = Field(description="The member's spend entry.")
    reward_id: str | None = Field(None, description="The reward redeemed (or donated to); null for plain points.")
    split: SplitOut | None = Field(
        None, description="How the reward's price was paid; null for plain points and donations."
    )


class DonationIn(Model):
    """Points given to a cause."""

    model_config = ConfigDict(extra="forbid")

    reference: Reference = Field(
        description="The caller's own id for this donation: retrying with it never gives twice. Yours alone."
    )
    reward_id: Annotated[str, Field(max_length=64)] = Field(
        description="A donation reward of the catalogue: it names the cause."
    )
    points: Points = Field(description="Points to give: at least the donation reward's `points`.")


class CatalogueOut(Model):
    """The live catalogue of a program."""

    version: int = Field(description="The catalogue's version (1 when none was ever published: an empty one).")
    rewards: list[catalogue.Reward] = Field(description="Every reward, as published.")


@router.get("/programs/<program>/rewards")
def rewards(program: ProgramPath) -> CatalogueOut:
    """The live catalogue.

    The rewards a program's members can redeem, with their prices, limits, windows and tiers, as the
    live catalogue version has them.
    """
    context.authorize(router, program=program)
    services().programs.get(program)
    live = catalogue.live_catalogue(services().documents, program)
    return CatalogueOut(version=live.version, rewards=list(live.rewards))


@router.post("/programs/<program>/members/<member>/redemptions", status_code=201)
def redeem(program: ProgramPath, member: MemberPath, body: RedemptionIn) -> RedemptionOut:
    """Redeem points or a reward.

    Spends points (`points` alone), or redeems a catalogue reward (`reward_id`, `quantity`), paid in
    points or in points + cash (`points` below the reward's price). A reward's window, tiers, minimum
    balance, stock and limits are checked; stock and limits commit with the spend in one transaction,
    so concurrent redemptions never pass them. Points go in order of expiry, earliest first.
    """
    who = context.authorize(router, program=program, member=member)
    reference = context.own_reference(who, member, body.reference)
    config = services().programs.get(program)
    context.require_spending(config, context.ledger_id(REDEMPTION, reference))
    if body.reward_id is None:
        assert body.points is not None
        cmd = Spend(
            program=program,
            member=member,
            points=body.points,
            source=REDEMPTION,
            external_id=reference,
            reason=body.reason or "points redeemed",
        )
        return RedemptionOut(entry=EntryOut.of(services().ledger.spend(cmd)))
    ledger = services().ledger
    reward = catalogue.live_catalogue(services().documents, program).reward(body.reward_id)
    if reward.kind is catalogue.RewardKind.DONATION:
        raise InvalidInputError("donations go to /donations")
    now = services().now()
    tier = held_tier(config, services().members.get_tier(program, member)).name
    catalogue.check_available(reward, tier, ledger.spendable_points(program, member, now), now)
    split = catalogue.split(reward, body.points, body.quantity, config.currency)
    cmd = Spend(
        program=program,
        member=member,
        points=split.points,
        source=REDEMPTION,
        external_id=reference,
        reason=body.reason or f"redeemed {body.quantity} x {reward.name}",
        details={"reward": reward.id, "quantity": str(body.quantity), "cash": str(split.cash)},
    )
    entry = catalogue.spend_guarded(ledger, cmd, catalogue.guards(program, member, reward, body.quantity, now))
    return RedemptionOut(
        entry=EntryOut.of(entry),
        reward_id=reward.id,
        split=SplitOut(points=split.points, cash=split.cash, currency=split.currency),
    )


@router.post("/programs/<program>/members/<member>/donations", status_code=201)
def donate(program: ProgramPath, member: MemberPath, body: DonationIn) -> RedemptionOut:
    """Donate points to a cause.

    Spends points for a donation reward of the catalogue (its `cause`); at least the reward's
    `points`, within its limits.
    """
    who = context.authorize(router, program=program, member=member)
    reference = context.own_reference(who, member, body.reference)
    context.require_spending(services().programs.get(program), context.ledger_id(DONATION, reference))
    reward = catalogue.live_catalogue(services().documents, program).reward(body.reward_id)
    if reward.kind is not catalogue.RewardKind.DONATION or reward.cause is None:
        raise InvalidInputError(f"reward {reward.id!r} is not a donation")
    if body.points < reward.points:
        raise InvalidInputError(f"the smallest donation to {reward.cause} is {reward.points} points")
    cmd = Spend(
        program=program,
        member=member,
        points=body.points,
        source=DONATION,
        external_id=reference,
        reason=f"donated to {reward.cause}",
        details={"reward": reward.id, "cause": reward.cause},
    )
    entry = catalogue.spend_guarded(
        services().ledger, cmd, catalogue.guards(program, member, reward, 1, services().now())
    )
    return RedemptionOut(entry=EntryOut.of(entry), reward_id=reward.id)
