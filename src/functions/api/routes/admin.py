"""Admin: programs, catalogues and agreements as versioned config; dry runs against drafts; API keys.

Publishing validates first and writes a new version only if it is valid and newer than the live
one; a refused config is a 422 `invalid_config` problem naming the reasons, and the live version
stays in force.
"""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field

from functions.api import context
from functions.api.routes.exchange import IdPath
from functions.api.routes.members import ProgramPath
from functions.api.routes.models import DecimalText
from shared import catalogue, exchange
from shared.access import Principal, issue_key
from shared.errors import InvalidInputError, UnknownProgramError
from shared.events import PurchaseEvent
from shared.program import parse_program
from shared.rules import evaluate_purchase

router = APIGatewayRouter()
ConfigBody = Annotated[dict[str, Any], Body()]


class Published(BaseModel):
    kind: str
    id: str
    version: int


class DryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any]  # the draft program config, validated like a publish
    order: PurchaseEvent
    tier: str | None = None  # default: the draft's lowest tier
    used_today: Annotated[int, Field(ge=0)] = 0


class DryRunStep(BaseModel):
    kind: str
    label: str
    points: DecimalText


class DryRunOut(BaseModel):
    points: int
    explanation: str
    steps: list[DryRunStep]
    draft_version: int
    live_version: int | None


class KeyOut(BaseModel):
    key: str  # shown once; only its hash is stored


def _same(path_value: str, body: dict[str, Any], field: str) -> None:
    if body.get(field) != path_value:
        raise InvalidInputError(f"the body's {field} must be {path_value!r}, as in the path")


@router.put("/admin/programs/<program>", status_code=201)
def publish_program(program: ProgramPath, body: ConfigBody) -> Published:
    context.principal(router.current_event).require_admin()
    _same(program, body, "program")
    config = context.programs().publish(parse_program(body))
    context.items().register_program(program)
    return Published(kind="program", id=program, version=config.version)


@router.put("/admin/programs/<program>/catalogue", status_code=201)
def publish_catalogue(program: ProgramPath, body: ConfigBody) -> Published:
    context.principal(router.current_event).require_admin()
    _same(program, body, "program")
    context.programs().get(program)
    live = catalogue.publish_catalogue(context.items(), catalogue.parse_catalogue(body))
    return Published(kind="catalogue", id=program, version=live.version)


@router.put("/admin/agreements/<agreement_id>", status_code=201)
def publish_agreement(agreement_id: IdPath, body: ConfigBody) -> Published:
    context.principal(router.current_event).require_admin()
    _same(agreement_id, body, "id")
    agreement = exchange.parse_agreement(body)
    for program in agreement.parties():
        context.programs().get(program)
    exchange.publish_agreement(context.items(), agreement)
    return Published(kind="agreement", id=agreement.id, version=agreement.version)


@router.post("/admin/programs/<program>/dry-run")
def dry_run(program: ProgramPath, body: DryRunIn) -> DryRunOut:
    """Evaluate an order against a draft config without writing anything."""
    context.principal(router.current_event).require_admin()
    _same(program, body.config, "program")
    draft = parse_program(body.config)
    try:
        live_version: int | None = context.programs().get(program).version
    except UnknownProgramError:
        live_version = None
    decision = evaluate_purchase(draft, body.order, body.tier or draft.tiers[0].name, body.used_today)
    return DryRunOut(
        points=decision.points,
        explanation=decision.explanation,
        steps=[DryRunStep(kind=s.kind.value, label=s.label, points=s.points) for s in decision.breakdown],
        draft_version=draft.version,
        live_version=live_version,
    )


@router.post("/admin/keys", status_code=201)
def create_key(body: Principal) -> KeyOut:
    context.principal(router.current_event).require_admin()
    return KeyOut(key=issue_key(context.store(), body))
