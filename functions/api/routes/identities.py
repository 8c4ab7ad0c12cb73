"""Identity linking: attach an e-mail, phone, card or partner id to a member (`shared.earning.linking`).

Raw e-mail addresses and phone numbers are hashed here with the program-wide identity key before
anything else sees them; they are never stored or logged.
"""

from enum import StrEnum
from typing import Annotated

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, StringConstraints

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.services import services
from shared.events.identity import hash_email, hash_phone, normalise_card
from shared.events.model import Identity, IdentityKind
from shared.infra.settings import get_settings

router = APIGatewayRouter()


class LinkKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    PARTNER = "partner"


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: LinkKind
    value: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
    scope: Annotated[str, StringConstraints(max_length=100)] = ""  # the partner, for partner ids
    region: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None  # for national phone numbers


class LinkOut(BaseModel):
    member: str  # the member the identities now belong to
    merged: str  # a provisional member folded into it, or ""


def _identity(body: LinkIn) -> Identity:
    key = get_settings().identity_hash_key.encode()
    if body.kind is LinkKind.EMAIL:
        return Identity(kind=IdentityKind.EMAIL, value=hash_email(key, body.value))
    if body.kind is LinkKind.PHONE:
        return Identity(kind=IdentityKind.PHONE, value=hash_phone(key, body.value, body.region))
    if body.kind is LinkKind.PARTNER:
        return Identity(kind=IdentityKind.PARTNER, value=body.value, scope=body.scope)
    return Identity(kind=IdentityKind.CARD, value=normalise_card(body.value))


@router.post("/programs/<program>/members/<member>/identities", status_code=201)
def link(program: ProgramPath, member: MemberPath, body: LinkIn) -> LinkOut:
    context.principal(router.current_event).require_member(program, member)
    services().programs.get(program)
    ingest = services().ingest
    result = ingest.link(program, Identity(kind=IdentityKind.MEMBER, value=member), _identity(body))
    return LinkOut(member=result.survivor, merged=result.merged)
