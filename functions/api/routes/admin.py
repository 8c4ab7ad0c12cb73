"""Admin: programs, catalogues and agreements as versioned config; dry runs against drafts; announcing
a program's end. (API keys: `functions.api.routes.keys`.)

Publishing validates first and writes a new version only if it is valid and newer than the live
one; a refused config is a 422 `invalid_config` problem naming the reasons, and the live version
stays in force. Every version stays readable (GET .../versions), next to the live one.
"""

from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field

from functions.api import context
from functions.api.routes.exchange import AgreementPath
from functions.api.routes.members import ProgramPath
from functions.api.routes.models import DecimalText
from functions.services import services
from shared.errors import InvalidInputError, UnknownProgramError
from shared.events.model import PurchaseEvent
from shared.exchange import agreements as exchange
from shared.model import Model
from shared.program import sunset
from shared.program.config import ProgramConfig, parse_program
from shared.program.rules import evaluate_purchase
from shared.program.sunset import announce_sunset
from shared.program.versions import ConfigHistory, ConfigKind, ConfigVersion, history, live
from shared.rewards import catalogue

router = APIGatewayRouter()
ConfigBody = Annotated[
    dict[str, Any],
    Body(
        description="The whole configuration document, with a `version` higher than the live one (docs/rules.md, "
        "docs/api.md). Its id (`program` or `id`) must be the path's."
    ),
]
AfterVersion = Annotated[int, Query(ge=0, description="Versions after this one (the previous page's `next`).")]
PageSize = Annotated[int, Query(ge=1, le=50, description="At most this many versions.")]
Days = Annotated[int, Field(ge=-3650, le=3650)]  # the sense of the numbers is judged by announce_sunset


class Published(Model):
    """The version now live."""

    kind: str = Field(description="`program`, `catalogue` or `agreement`.")
    id: str = Field(description="The program's or agreement's id.")
    version: int = Field(description="The version published, now live.")


class DryRunIn(Model):
    """A draft program config and an order to evaluate against it."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = Field(
        description="The draft program config, validated as a publish would (`invalid_config` when it fails)."
    )
    order: PurchaseEvent = Field(description="The order to evaluate, as a channel's adapter would produce it.")
    tier: str | None = Field(None, description="The member's tier in the draft; default its lowest.")
    used_today: Annotated[int, Field(ge=0)] = Field(
        0, description="Points the member already earned today, against the draft's daily cap."
    )


class DryRunStep(Model):
    """One line of the rules' working; the steps sum to the points."""

    kind: str = Field(description="`base`, `tier`, `promo`, `bonus`, `behaviour`, `producer`, `rounding` or `cap`.")
    label: str = Field(description="Which rule, for people.")
    points: DecimalText = Field(description="What the step adds (negative for rounding or a cap), decimal string.")


class DryRunOut(Model):
    """What the order would earn under the draft; nothing is written."""

    points: int = Field(description="Points the order would earn.")
    explanation: str = Field(description="The rules' arithmetic in one line, as statements show it.")
    steps: list[DryRunStep] = Field(description="The working, step by step.")
    draft_version: int = Field(description="The draft's `version`.")
    live_version: int | None = Field(description="The live config's version; null when the program is not live yet.")


class SunsetIn(Model):
    """When the program ends."""

    model_config = ConfigDict(extra="forbid")

    notice_days: Days = Field(description="Earning stops this many days from now: at least 30.")
    redemption_days: Days = Field(description="Redemption stays open this many days after earning stops: 0 or more.")


class SunsetOut(Model):
    """The program's announced end, as its new config version carries it."""

    program: str = Field(description="The program.")
    version: int = Field(description="The config version that carries the sunset.")
    announced_at: datetime = Field(description="When the end was announced (now).")
    earning_ends_at: datetime = Field(description="From then on, credits answer `earning_closed`.")
    ends_at: datetime = Field(
        description="Redemption closes (spends answer `redemption_closed`); points left expire at the next expiry run."
    )


def _same(path_value: str, body: dict[str, Any], field: str) -> None:
    if body.get(field) != path_value:
        raise InvalidInputError(f"the body's {field} must be {path_value!r}, as in the path")


@router.put("/admin/programs/<program>", status_code=201)
def publish_program(program: ProgramPath, body: ConfigBody) -> Published:
    """Publish a program config.

    Validates the whole config and makes it the live version if it is valid and its `version` is
    higher than the live one; otherwise `invalid_config` with the reasons, and the live version stays.
    A config may not set, change or drop `sunset` (announce the end with `POST .../sunset`).
    """
    context.authorize(router, program=program)
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
    """Publish a catalogue.

    Validates the program's rewards catalogue (and gift policy) and makes it live if valid and newer
    than the live version.
    """
    context.authorize(router, program=program)
    _same(program, body, "program")
    services().programs.get(program)
    live = catalogue.publish_catalogue(services().documents, catalogue.parse_catalogue(body))
    return Published(kind="catalogue", id=program, version=live.version)


@router.put("/admin/agreements/<agreement_id>", status_code=201)
def publish_agreement(agreement_id: AgreementPath, body: ConfigBody) -> Published:
    """Publish an exchange agreement.

    Validates an agreement between two live programs (rate, fee, minimum, steps, daily limit, quote
    lifetime) and makes it live if valid and newer than the live version.
    """
    context.authorize(router, agreement=agreement_id)
    _same(agreement_id, body, "id")
    agreement = exchange.parse_agreement(body)
    for program in agreement.parties():
        services().programs.get(program)
    exchange.publish_agreement(services().documents, agreement)
    return Published(kind="agreement", id=agreement.id, version=agreement.version)


@router.post("/admin/programs/<program>/dry-run")
def dry_run(program: ProgramPath, body: DryRunIn) -> DryRunOut:
    """Dry-run a draft program config.

    Evaluates an order against a draft config, as ingest would, and shows the points and the working.
    Writes nothing; the draft need not be newer than the live version.
    """
    context.authorize(router, program=program)
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


@router.post("/admin/programs/<program>/sunset", status_code=201)
def announce_end(program: ProgramPath, body: SunsetIn) -> SunsetOut:
    """Announce the program's end.

    Earning stops after the notice (at least 30 days), redemption `redemption_days` later; the end is
    a new config version. Announced once: a second time is `invalid_sunset`.
    """
    context.authorize(router, program=program)
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
    """The live program config.

    As published, with its version and publication time: edit it, raise `version`, and PUT it back.
    """
    context.authorize(router, program=program)
    return live(services().documents, ConfigKind.PROGRAM, program)


@router.get("/admin/programs/<program>/versions")
def program_versions(program: ProgramPath, after: AfterVersion = 0, limit: PageSize = 20) -> ConfigHistory:
    """A program config's versions.

    Every version ever published, oldest first, the live one marked. Paged with `after` and `next`.
    """
    context.authorize(router, program=program)
    return history(services().documents, ConfigKind.PROGRAM, program, after, limit)


@router.get("/admin/programs/<program>/catalogue")
def live_catalogue(program: ProgramPath) -> ConfigVersion:
    """The live catalogue config.

    As published, with its version and publication time.
    """
    context.authorize(router, program=program)
    return live(services().documents, ConfigKind.CATALOGUE, program)


@router.get("/admin/programs/<program>/catalogue/versions")
def catalogue_versions(program: ProgramPath, after: AfterVersion = 0, limit: PageSize = 20) -> ConfigHistory:
    """A catalogue's versions.

    Every version ever published, oldest first, the live one marked. Paged with `after` and `next`.
    """
    context.authorize(router, program=program)
    return history(services().documents, ConfigKind.CATALOGUE, program, after, limit)


@router.get("/admin/agreements/<agreement_id>")
def live_agreement(agreement_id: AgreementPath) -> ConfigVersion:
    """The live agreement config.

    As published, with its version and publication time.
    """
    context.authorize(router, agreement=agreement_id)
    return live(services().documents, ConfigKind.AGREEMENT, agreement_id)


@router.get("/admin/agreements/<agreement_id>/versions")
def agreement_versions(agreement_id: AgreementPath, after: AfterVersion = 0, limit: PageSize = 20) -> ConfigHistory:
    """An agreement's versions.

    Every version ever published, oldest first, the live one marked. Paged with `after` and `next`.
    """
    context.authorize(router, agreement=agreement_id)
    return history(services().documents, ConfigKind.AGREEMENT, agreement_id, after, limit)
