"""Member actions reported by our own app: sign-in, review, referral, birthday, member day.

The app already knows our member id, so no hashing is involved; the body is validated strictly
(unknown fields refused) because the app is the one channel whose format we control end to end.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from integrations.common import build, check_sent_within, parse_json_object
from integrations.errors import MalformedPayloadError
from shared.events.model import BehaviourAction, BehaviourEvent, Channel, ExternalId, Identity, IdentityKind, Text

MemberId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Subject = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
# What each action is about: the reviewed product, the member who was referred.
NEEDS_SUBJECT = frozenset({BehaviourAction.REVIEW, BehaviourAction.REFERRAL})


class AppEventConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    program: Text
    app_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,49}$")] = "app"
    # Phones queue actions offline and the app retries with the same event_id for up to two days
    # (our own app's retry horizon); older than this is a replay.
    max_age: timedelta = Field(default=timedelta(days=2), gt=timedelta(0))
    future_skew: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(0))

    @property
    def source(self) -> str:
        return f"app:{self.app_id}"


class AppEventBody(BaseModel):
    """The documented request body (docs/channels.md, "App behaviour events")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: ExternalId  # generated once on the phone, reused on retries
    member_id: MemberId
    action: BehaviourAction
    occurred_at: AwareDatetime
    subject: Subject = ""


def parse_app_event(raw: bytes | str | dict[str, Any], config: AppEventConfig, *, now: datetime) -> BehaviourEvent:
    payload = parse_json_object(raw)
    try:
        body = AppEventBody.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise MalformedPayloadError(f"{where}: {first['msg']}") from None
    if body.action in NEEDS_SUBJECT and not body.subject:
        raise MalformedPayloadError(f"a {body.action} needs a subject")
    if body.action is BehaviourAction.REFERRAL and body.subject == body.member_id:
        raise MalformedPayloadError("a member cannot refer themselves")
    check_sent_within(body.occurred_at, now, config.max_age, config.future_skew, "occurred_at")
    return build(
        BehaviourEvent,
        program=config.program,
        channel=Channel.APP,
        source=config.source,
        external_id=body.event_id,
        identity=Identity(kind=IdentityKind.MEMBER, value=body.member_id),
        occurred_at=body.occurred_at,
        action=body.action,
        subject=body.subject,
    )
