"""A brand's member list, imported: `POST /admin/programs/{program}/members/imports` (operators).

The caller (`pointbridge import members FILE.csv`) sends the list's rows in batches as they are,
raw e-mails, phones and card numbers included: they are hashed here with the identity key, as every
channel's are, before anything stores them (`shared.members.enrolment`). Each row has its own
result: one bad row (no identity, a malformed e-mail, an identity another member holds) is refused
with its code and reason, and the others go on. Importing a list again changes nothing.
"""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field, StringConstraints

from functions.api import context
from functions.api.routes.identities import LinkKind, Region, _identity
from functions.api.routes.members import ProgramPath
from functions.services import services
from shared.errors import InvalidInputError, PointbridgeError
from shared.events.identity import InvalidIdentityError
from shared.events.model import Identity
from shared.ledger.statement import LANGUAGES
from shared.members import support
from shared.members.enrolment import Enrolment, enrol
from shared.model import Model

router = APIGatewayRouter()
MAX_ROWS = 100
# Generous at the body's level, so an over-long cell refuses its row, not the batch; the row's limits are below.
Cell = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]
MAX_NAME = 200
MEMBER_ID_FORBIDDEN = (",", "#")
IMPORTED = "imported from the brand's member list"


class ImportRowIn(Model):
    """One member of the list, as the file has it."""

    model_config = ConfigDict(extra="forbid")

    row: int = Field(ge=1, description="The row's line in the caller's file: its result names it.")
    member: Cell = Field("", description="The brand's own id for the member; empty: one is derived from the e-mail.")
    email: Cell = Field("", description="The member's e-mail address (hashed here, never stored).")
    phone: Cell = Field("", description="The member's phone number (hashed here, never stored).")
    card: Cell = Field("", description="The member's loyalty card number (hashed here, never stored).")
    name: Cell = Field("", description=f"The member's name, at most {MAX_NAME} characters.")
    language: Cell = Field("", description="`en` or `zh-CN`: the member's statements and messages; empty: unset.")
    tier: Cell = Field(
        "",
        description="One of the program's tiers: set for a member with no tier on record yet (an existing member's "
        "tier is support's to change, with a reason).",
    )


class ImportIn(Model):
    """Up to 100 rows of the list."""

    model_config = ConfigDict(extra="forbid")

    rows: Annotated[list[ImportRowIn], Field(min_length=1, max_length=MAX_ROWS)] = Field(description="The rows.")
    phone_region: Region | None = Field(
        None, description="The region national phone numbers are read in (`US`, `CN`); default: E.164 only."
    )


class RowResult(Model):
    """What one row did."""

    row: int = Field(description="The row's line, as sent.")
    outcome: Literal["created", "updated", "unchanged", "refused"] = Field(
        description="`created`: a new member; `updated`: identities, name or language added to one; `unchanged`: "
        "the member already had it all (a re-run); `refused`: nothing of the row was written."
    )
    member: str = Field(description='The member\'s id; "" when refused.')
    tier: str = Field(description='The tier the import set; "" when it set none.')
    code: str = Field(description='Why it was refused (a problem code: `invalid_identity`...); "" otherwise.')
    reason: str = Field(description='The refusal in a sentence, or a note (a tier kept); "" otherwise.')


class ImportOut(Model):
    """Each row's result, in the order sent."""

    results: list[RowResult] = Field(description="One per row.")


def _identities(row: ImportRowIn, region: str | None) -> tuple[Identity, ...]:
    found = [(LinkKind.EMAIL, row.email), (LinkKind.PHONE, row.phone), (LinkKind.CARD, row.card)]
    identities = tuple(_identity(kind, value, region=region) for kind, value in found if value)
    if not identities:
        raise InvalidIdentityError("a member needs an e-mail, a phone or a card: nothing else finds them again")
    return identities


def _checked(row: ImportRowIn, tiers: list[str], region: str | None) -> Enrolment:
    if len(row.name) > MAX_NAME:
        raise InvalidInputError(f"a name has at most {MAX_NAME} characters")
    if row.language and row.language not in LANGUAGES:
        raise InvalidInputError(f"language is one of {', '.join(LANGUAGES)}, not {row.language!r}")
    if len(row.member) > 200 or any(c in row.member for c in MEMBER_ID_FORBIDDEN) or " " in row.member:
        raise InvalidInputError("a member id is at most 200 characters, without spaces, ',' or '#'")
    if row.member.startswith("pv-"):
        raise InvalidInputError("ids starting pv- are the platform's own, for members not registered yet")
    if row.tier and row.tier not in tiers:
        raise support.UnknownTierError(f"no tier {row.tier!r}; the program's tiers are {', '.join(tiers)}")
    return Enrolment(identities=_identities(row, region), member=row.member, name=row.name, language=row.language)


def _import_row(program: str, row: ImportRowIn, tiers: list[str], region: str | None, operator: str) -> RowResult:
    enrolled = enrol(services().members, _checked(row, tiers, region))
    tier, note = "", ""
    if row.tier:
        if services().members.get_tier(program, enrolled.member) is None:
            agent = support.Agent(id=operator, reason=IMPORTED)
            support.override_tier(
                services().tiers,
                services().members,
                services().programs,
                program,
                enrolled.member,
                row.tier,
                agent,
                services().now(),
            )
            tier = row.tier
        elif services().tiers.current(program, enrolled.member).tier != row.tier:
            note = "tier kept: the member already holds one (support overrides it, with a reason)"
    outcome = "updated" if tier and enrolled.outcome == "unchanged" else enrolled.outcome
    return RowResult(row=row.row, outcome=outcome, member=enrolled.member, tier=tier, code="", reason=note)


@router.post("/admin/programs/<program>/members/imports")
def import_members(program: ProgramPath, body: ImportIn) -> ImportOut:
    """Import members from the brand's list.

    Each row: identities (e-mail, phone, card; hashed here), name, language, tier. A row is
    `created`, `updated`, `unchanged` (imported before) or `refused` with its code and reason; a
    refused row writes nothing and the others go on. Importing the same rows again changes nothing.
    """
    operator = context.authorize(router, program=program)
    tiers = [tier.name for tier in services().programs.get(program).tiers]
    results = []
    for row in body.rows:
        try:
            results.append(_import_row(program, row, tiers, body.phone_region, operator.id))
        except PointbridgeError as refused:
            results.append(
                RowResult(row=row.row, outcome="refused", member="", tier="", code=refused.code, reason=str(refused))
            )
    return ImportOut(results=results)
