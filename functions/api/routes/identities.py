"""Identities: attach an e-mail, phone, card, partner id or shop customer id to a member, with proof.

Whoever links an identity proves the member holds it: a channel that saw the card (or whose own
customer id it is), the partner whose member id it is, or the member itself with a one-time code
sent to the e-mail address or phone. An identity another registered member holds never moves: it
is `identity_taken`, and support decides (`POST /admin/.../merges`, with a reason). Raw e-mail
addresses, phone numbers and card numbers are hashed here with the identity key before anything
stores or logs them; an e-mail's or phone's raw form leaves only in the code's outbound event.
"""

from enum import StrEnum
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field, StringConstraints

from functions.api import context
from functions.api.routes.members import MemberPath, ProgramPath
from functions.api.routes.models import SupportReason, by_support
from functions.services import services
from shared.access.keys import Principal, PrincipalKind
from shared.earning.core import LinkResult
from shared.errors import ForbiddenError, UnknownMemberError
from shared.events.identity import hash_card, hash_email, hash_phone, normalise_email, normalise_phone
from shared.events.model import Identity, IdentityKind
from shared.infra.settings import get_settings
from shared.members import verification
from shared.model import Model

router = APIGatewayRouter()
VerificationPath = Annotated[
    str, Path(min_length=1, max_length=64, description="The `verification_id` the code request answered with.")
]
IdentityValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
IdentityScope = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Region = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class ProofRequiredError(ForbiddenError):
    """Raised when the caller cannot vouch for the identity it links (and must prove it another way)."""

    code = "proof_required"


class LinkKind(StrEnum):
    """What kind of identity is linked."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    PARTNER = "partner"
    CUSTOMER = "customer"


class CodeKind(StrEnum):
    """What a one-time code is sent to."""

    EMAIL = "email"
    PHONE = "phone"


class LinkIn(Model):
    """An identity to attach to the member, which the caller vouches for."""

    model_config = ConfigDict(extra="forbid")

    kind: LinkKind = Field(
        description="What `value` is. `card`: a channel that saw the card. `customer`: the channel whose customer "
        "id it is. `partner`: the partner whose member id it is. E-mails and phones are proved by a code instead "
        "(`proof_required` here)."
    )
    value: IdentityValue = Field(
        description="The card number, customer id or partner's member id. A card number is spelt as every channel "
        "spells it (spaces and hyphens dropped, upper case)."
    )
    scope: IdentityScope = Field(
        "",
        description="Whose id it is: for `partner` the partner, for `customer` the source (`shopify:<shop domain>`, "
        "`square:<merchant id>`). Default: the caller itself, and no other is accepted.",
    )


class IdentityIn(Model):
    """An identity as the member reports it, for support."""

    model_config = ConfigDict(extra="forbid")

    kind: LinkKind = Field(description="What `value` is.")
    value: IdentityValue = Field(
        description="The e-mail address, phone number, card number, partner's member id or customer id. E-mails and "
        "phones are hashed before anything stores or logs them."
    )
    scope: IdentityScope = Field("", description="For `partner` the partner; for `customer` the source. Else empty.")
    region: Region | None = Field(
        None, description="For a phone number without a country code: its country (ISO 3166 alpha-2, e.g. `GB`)."
    )


class MergeIn(IdentityIn):
    """Support folding the member that holds an identity into this member, and why."""

    reason: SupportReason = Field(
        description="Why support merges the accounts; kept on the merge entry with who did it."
    )


class CodeIn(Model):
    """Where to send a one-time code."""

    model_config = ConfigDict(extra="forbid")

    kind: CodeKind = Field(description="`email` or `phone`.")
    value: IdentityValue = Field(description="The e-mail address or phone number, as the member gives it.")
    region: Region | None = Field(
        None, description="For a phone number without a country code: its country (ISO 3166 alpha-2, e.g. `GB`)."
    )


class CodeSent(Model):
    """A code is on its way to the e-mail address or phone."""

    verification_id: str = Field(description="Confirm the code under this id.")
    expires_at: str = Field(description="The code works until then (ISO 8601).")
    attempts: int = Field(description="How many guesses the code allows.")


class ConfirmCodeIn(Model):
    """The code the member received."""

    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{6}$")] = Field(
        description="The 6 digits sent to the e-mail address or phone."
    )


class LinkOut(Model):
    """Whom the identities belong to after the link."""

    member: str = Field(description="The member the identities now belong to: use this id from now on.")
    merged: str = Field(
        description="A provisional member (who earned before registering) folded into `member`, its points moved "
        'along; "" when none.'
    )

    @classmethod
    def of(cls, result: LinkResult) -> "LinkOut":
        return cls(member=result.survivor, merged=result.merged)


def _identity_key() -> bytes:
    return get_settings().identity_hash_key.encode()


def _identity(kind: LinkKind, value: str, scope: str = "", region: str | None = None) -> Identity:
    if kind is LinkKind.EMAIL:
        return Identity(kind=IdentityKind.EMAIL, value=hash_email(_identity_key(), value))
    if kind is LinkKind.PHONE:
        return Identity(kind=IdentityKind.PHONE, value=hash_phone(_identity_key(), value, region))
    if kind is LinkKind.CARD:
        return Identity(kind=IdentityKind.CARD, value=hash_card(_identity_key(), value))
    if kind is LinkKind.PARTNER:
        return Identity(kind=IdentityKind.PARTNER, value=value, scope=scope)
    return Identity(kind=IdentityKind.CUSTOMER, value=value, scope=scope)


def _vouched(who: Principal, body: LinkIn) -> Identity:
    """The identity the caller may vouch for: what it saw, or its own ids; ProofRequiredError otherwise."""
    scope = body.scope or who.id
    if body.kind in (LinkKind.EMAIL, LinkKind.PHONE):
        raise ProofRequiredError("e-mails and phones are proved by a one-time code (POST .../identities/verifications)")
    if body.kind is LinkKind.PARTNER:
        if who.kind is not PrincipalKind.PARTNER or scope != who.id:
            raise ProofRequiredError("a partner's member id is linked by that partner itself")
        return _identity(body.kind, body.value, scope)
    if who.kind is not PrincipalKind.CHANNEL:
        raise ProofRequiredError("cards and customer ids are linked by the channel that saw them")
    if body.kind is LinkKind.CUSTOMER and scope != who.id:
        raise ProofRequiredError("a channel links its own customer ids only")
    return _identity(body.kind, body.value, scope)


@router.post("/programs/<program>/members/<member>/identities", status_code=201)
def link(program: ProgramPath, member: MemberPath, body: LinkIn) -> LinkOut:
    """Link an identity the caller vouches for.

    A channel links a card it saw, or its own customer id (Shopify, Square); a partner links its own
    member id. When a provisional member (one that earned under that identity before registering)
    holds it, that member is folded in: its points move to this member by a ledger transfer, and its
    account closes (`account_closed` names the survivor from then on). An identity another
    registered member holds is `identity_taken` and does not move. Linking an identity the member
    already has changes nothing.
    """
    who = context.authorize(router, program=program, member=member)
    identity = _vouched(who, body)
    services().programs.get(program)
    return LinkOut.of(services().ingest.claim(program, member, identity))


@router.post("/programs/<program>/members/<member>/identities/verifications", status_code=201)
def request_code(program: ProgramPath, member: MemberPath, body: CodeIn) -> CodeSent:
    """Send a one-time code to an e-mail address or phone.

    Publishes a `VerificationCodeIssued` event on the notifications bus (the code and where to send
    it) for the delivery service; the table keeps only a keyed hash of the code. The member confirms
    it within 10 minutes, in at most 5 attempts, to link the e-mail address or phone.
    """
    context.authorize(router, program=program, member=member)
    if body.kind is CodeKind.EMAIL:
        destination = normalise_email(body.value)
        identity = _identity(LinkKind.EMAIL, body.value)
    else:
        destination = normalise_phone(body.value, body.region)
        identity = _identity(LinkKind.PHONE, body.value, region=body.region)
    services().programs.get(program)
    sent = verification.issue(
        services().members,
        services().identity_notices.publish,
        _identity_key(),
        program=program,
        member=member,
        identity=identity,
        destination=destination,
        now=services().now(),
    )
    return CodeSent(
        verification_id=sent.verification_id, expires_at=sent.expires_at.isoformat(), attempts=sent.attempts_left
    )


@router.post("/programs/<program>/members/<member>/identities/verifications/<verification_id>/confirm", status_code=201)
def confirm_code(
    program: ProgramPath, member: MemberPath, verification_id: VerificationPath, body: ConfirmCodeIn
) -> LinkOut:
    """Confirm a one-time code and link its identity.

    With the code that was sent, the e-mail address or phone is linked to the member, and a
    provisional member holding it (points earned before registering) is folded in. Only the member
    itself, or a channel that authenticates its members, confirms.
    """
    context.authorize(router, program=program, member=member)
    proved = verification.confirm(
        services().members,
        _identity_key(),
        member=member,
        verification_id=verification_id,
        code=body.code,
        now=services().now(),
    )
    if proved.program != program:
        raise verification.UnknownVerificationError(f"no verification {verification_id} for this member")
    return LinkOut.of(services().ingest.claim(program, member, proved.identity))


@router.post("/admin/programs/<program>/members/<member>/merges", status_code=201)
def merge_members(program: ProgramPath, member: MemberPath, body: MergeIn) -> LinkOut:
    """Merge the member holding an identity into this one (support).

    When a member's identity is `identity_taken` and support establishes that both accounts are
    the same person's, support names the identity as the member reports it: the member holding it
    is folded into this member (its identities and points move), and the merge entry keeps the
    reason and the support agent.
    """
    agent = context.authorize(router, program=program, member=member)
    services().programs.get(program)
    identity = _identity(body.kind, body.value, body.scope, body.region)
    holder = services().members.member_for(identity.key)
    if holder is None:
        raise UnknownMemberError("no member holds that identity")
    return LinkOut.of(services().ingest.merge(program, holder, member, by_support(agent, "merged", body.reason)))
