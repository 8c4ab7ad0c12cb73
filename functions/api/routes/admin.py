"""Admin: programs, catalogues and agreements as versioned config; dry runs against drafts; API keys;
announcing a program's end.

Publishing validates first and writes a new version only if it is valid and newer than the live
one; a refused config is a 422 `invalid_config` problem naming the reasons, and the live version
stays in force. Every version stays readable (GET .../versions), next to the live one.
"""

from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field

from functions.api import context
from functions.api.routes.exchange import IdPath
from functions.api.routes.members import ProgramPath
from functions.api.routes.models import DecimalText
from functions.services import services
from shared.access.keys import Principal, issue_key
from shared.errors import InvalidInputError, UnknownProgramError
from shared.events.model import PurchaseEvent
from shared.exchange import agreements as exchange
from shared.program import sunset
from shared.program.config import ProgramConfig, parse_program
from shared.program.rules import evaluate_purchase
from shared.program.sunset import announce_sunset
from shared.program.versions import ConfigHistory, ConfigKind, ConfigVersion, history, live
from shared.rewards import catalogue

router = APIGatewayRouter()
ConfigBody = Annotated[dict[str, Any], Body()]
AfterVersion = Annotated[int, Query(ge=0)]
PageSize = Annotated[int, Query(ge=1, le=50)]
Days = Annotated[int, Field(ge=-3650, le=3650)]  # the sense of the numbers is judged by announce_sunset


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


class SunsetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notice_days: Days  # earning stops this many days from now (at least 30)
    redemption_days: Days  # redemption stays open this many days after earning stops


class SunsetOut(BaseModel):
    program: str
    version: int  # the config version that carries the sunset
    announced_at: datetime
    earning_ends_at: datetime
    ends_at: datetime  # redemption closes; remaining points expire with entries


def _same(path_value: str, body: dict[str, Any], field: str) -> None:
    if body.get(field) != path_value:
        raise InvalidInputError(f"the body's {field} must be {path_value!r}, as in the path")


@router.put("/admin/programs/<program>", status_code=201)
def publish_program(program: ProgramPath, body: ConfigBody) -> Published:
    context.principal(router.current_event).require_admin()
    _same(program, body, "program")
    draft = parse_program(body)
    try:
        current: ProgramConfig | None = services().programs.get(program)
    except UnknownProgramError:
        current = None
    sunset.check_publish(current, draft)
    config = services().programs.publish(draft)
    services().programs.register_holds(program)
    return Published(kind="program", id=program, version=config.version)


@router.put("/admin/programs/<program>/catalogue", status_code=201)
def publish_catalogue(program: ProgramPath, body: ConfigBody) -> Published:
    context.principal(router.current_event).require_admin()
    _same(program, body, "program")
    services().programs.get(program)
    live = catalogue.publish_catalogue(services().documents, catalogue.parse_catalogue(body))
    return Published(kind="catalogue", id=program, version=live.version)


@router.put("/admin/agreements/<agreement_id>", status_code=201)
def publish_agreement(agreement_id: IdPath, body: ConfigBody) -> Published:
    context.principal(router.current_event).require_admin()
    _same(agreement_id, body, "id")
    agreement = exchange.parse_agreement(body)
    for program in agreement.parties():
        services().programs.get(program)
    exchange.publish_agreement(services().documents, agreement)
    return Published(kind="agreement", id=agreement.id, version=agreement.version)


@router.post("/admin/programs/<program>/dry-run")
def dry_run(program: ProgramPath, body: DryRunIn) -> DryRunOut:
    """Evaluate an order against a draft config without writing anything."""
    context.principal(router.current_event).require_admin()
    _same(program, body.config, "program")
    draft = parse_program(body.config)
    try:
        live_version: int | None = services().programs.get(program).version
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
    router.append_context(**{context.SECRET_REPLY: True})
    return KeyOut(key=issue_key(services().access_items, body))


@router.post("/admin/programs/<program>/sunset", status_code=201)
def announce_end(program: ProgramPath, body: SunsetIn) -> SunsetOut:
    """Announce the program's end: earning stops after the notice, redemption after the redemption period."""
    context.principal(router.current_event).require_admin()
    config = announce_sunset(services().programs, program, services().now(), body.notice_days, body.redemption_days)
    assert config.sunset is not None
    return SunsetOut(
        program=program,
        version=config.version,
        announced_at=config.sunset.announced_at,
        earning_ends_at=config.sunset.earning_ends_at,
        ends_at=config.sunset.ends_at,
    )


# Reading config back: the live version, and every version ever published (oldest first, paged).


@router.get("/admin/programs/<program>")
def live_program(program: ProgramPath) -> ConfigVersion:
    context.principal(router.current_event).require_admin()
    return live(services().documents, ConfigKind.PROGRAM, program)


@router.get("/admin/programs/<program>/versions")
def program_versions(program: ProgramPath, after: AfterVersion = 0, limit: PageSize = 20) -> ConfigHistory:
    context.principal(router.current_event).require_admin()
    return history(services().documents, ConfigKind.PROGRAM, program, after, limit)


@router.get("/admin/programs/<program>/catalogue")
def live_catalogue(program: ProgramPath) -> ConfigVersion:
    context.principal(router.current_event).require_admin()
    return live(services().documents, ConfigKind.CATALOGUE, program)


@router.get("/admin/programs/<program>/catalogue/versions")
def catalogue_versions(program: ProgramPath, after: AfterVersion = 0, limit: PageSize = 20) -> ConfigHistory:
    context.principal(router.current_event).require_admin()
    return history(services().documents, ConfigKind.CATALOGUE, program, after, limit)


@router.get("/admin/agreements/<agreement_id>")
def live_agreement(agreement_id: IdPath) -> ConfigVersion:
    context.principal(router.current_event).require_admin()
    return live(services().documents, ConfigKind.AGREEMENT, agreement_id)


@router.get("/admin/agreements/<agreement_id>/versions")
def agreement_versions(agreement_id: IdPath, after: AfterVersion = 0, limit: PageSize = 20) -> ConfigHistory:
    context.principal(router.current_event).require_admin()
    return history(services().documents, ConfigKind.AGREEMENT, agreement_id, after, limit)
