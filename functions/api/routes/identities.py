"""Identity linking: attach an e-mail, phone, card or partner id to a member (`shared.earning.linking`).

Raw e-mail addresses and phone numbers are hashed here with the program-wide identity key before
anything else sees them; they are never stored or logged.
"""

from enum import StrEnum
from typing import Annotated

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.services import services
from shared.events.identity import hash_email, hash_phone, normalise_card
from shared.events.model import Identity, IdentityKind
from shared.infra.settings import get_settings

router = APIGatewayRouter()


class LinkKind(StrEnum):
    """What kind of identity is linked."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    PARTNER = "partner"


class LinkIn(BaseModel):
    """An identity to attach to the member."""

    model_config = ConfigDict(extra="forbid")

    kind: LinkKind = Field(description="What `value` is.")
    value: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)] = Field(
        description="The e-mail address, phone number, card number or partner's member id. E-mails and phones are "
        "hashed before anything stores or logs them; a card number is spelt as every channel spells it (spaces "
        "and hyphens dropped, upper case)."
    )
    scope: Annotated[str, StringConstraints(max_length=100)] = Field(
        "", description="For a partner id: the partner whose id it is. Empty otherwise."
    )
    region: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = Field(
        None, description="For a phone number without a country code: its country (ISO 3166 alpha-2, e.g. `GB`)."
    )


class LinkOut(BaseModel):
    """Whom the identities belong to after the link."""

    member: str = Field(description="The member the identities now belong to: use this id from now on.")
    merged: str = Field(
        description="A provisional member (who earned before registering) folded into `member`, its points moved "
        'along; "" when none.'
    )


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
    """Link an identity to a member.

    Attaches an e-mail address, phone number, card number or partner id to the member. When a
    provisional member (one that earned under that identity before registering) holds it, that
    member is folded in: its points move to this member by a ledger transfer, and its account closes
    (`account_closed` names the survivor from then on). Linking an identity the member already has
    changes nothing.
    """
    context.principal(router.current_event).require_member(program, member)
    services().programs.get(program)
    ingest = services().ingest
    result = ingest.link(program, Identity(kind=IdentityKind.MEMBER, value=member), _identity(body))
    return LinkOut(member=result.survivor, merged=result.merged)
