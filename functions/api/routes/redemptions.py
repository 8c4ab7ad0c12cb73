"""Redemption: the catalogue, redeeming points or a reward (with points + cash), donations."""

from typing import Annotated

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import DecimalText, EntryOut
from functions.services import services
from shared.errors import InvalidInputError
from shared.ledger.commands import Key, Points, Reason, Spend
from shared.members.membership import held_tier
from shared.rewards import catalogue

router = APIGatewayRouter()
REDEMPTION = "redemption"
DONATION = "donation"


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Key  # the caller's id for this redemption; retrying with it never spends twice
    points: Points | None = None  # plain points redemption, or the points part of a reward
    reward_id: Annotated[str, Field(max_length=64)] | None = None
    quantity: Annotated[int, Field(ge=1, le=100)] = 1
    reason: Reason | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "RedemptionIn":
        if self.points is None and self.reward_id is None:
            raise ValueError("give points, a reward_id, or both (points + cash)")
        return self


class SplitOut(BaseModel):
    points: int
    cash: DecimalText
    currency: str


class RedemptionOut(BaseModel):
    entry: EntryOut
    reward_id: str | None = None
    split: SplitOut | None = None


class DonationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Key
    reward_id: Annotated[str, Field(max_length=64)]  # a donation reward names the cause
    points: Points


class CatalogueOut(BaseModel):
    version: int
    rewards: list[catalogue.Reward]


@router.get("/programs/<program>/rewards")
def rewards(program: ProgramPath) -> CatalogueOut:
    context.principal(router.current_event).require_program(program)
    services().programs.get(program)
    live = catalogue.live_catalogue(services().documents, program)
    return CatalogueOut(version=live.version, rewards=list(live.rewards))


@router.post("/programs/<program>/members/<member>/redemptions", status_code=201)
def redeem(program: ProgramPath, member: MemberPath, body: RedemptionIn) -> RedemptionOut:
    context.principal(router.current_event).require_member(program, member)
    config = services().programs.get(program)
    context.require_spending(config, context.ledger_id(REDEMPTION, body.reference))
    if body.reward_id is None:
        assert body.points is not None
        cmd = Spend(
            program=program,
            member=member,
            points=body.points,
            source=REDEMPTION,
            external_id=body.reference,
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
        external_id=body.reference,
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
    context.principal(router.current_event).require_member(program, member)
    context.require_spending(services().programs.get(program), context.ledger_id(DONATION, body.reference))
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
        external_id=body.reference,
        reason=f"donated to {reward.cause}",
        details={"reward": reward.id, "cause": reward.cause},
    )
    entry = catalogue.spend_guarded(
        services().ledger, cmd, catalogue.guards(program, member, reward, 1, services().now())
    )
    return RedemptionOut(entry=EntryOut.of(entry), reward_id=reward.id)
