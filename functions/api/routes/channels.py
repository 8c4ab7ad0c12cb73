"""Channels (admin): the shops, Square sellers, till feeds, partners and apps that feed programs.

Each channel is a record of its own, checked when written: a refused one is a 422 `invalid_channel`
naming the field, and nothing changes (the channel as it was and every other one keep working).
Secrets (Shopify's webhook secret, Square's signature key) are written, never read back: the reply
says which version is in force and where it is kept. The functions pick a change up within
`CHANNEL_CACHE_SECONDS` (30 s), without a cold start.
"""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ConfigDict, Field, SecretStr

from functions.api import context
from functions.services import services
from shared.channels.records import ChannelRecord
from shared.model import Model

router = APIGatewayRouter()

Kind = Literal["shopify", "square", "till", "partner", "app"]
KindPath = Annotated[Kind, Path(description="`shopify`, `square`, `till`, `partner` or `app`.")]
ChannelPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        description="The channel's id: the shop's myshopify.com domain, the Square merchant id, the till feed, "
        "the partner id or the app id.",
    ),
]
KindQuery = Annotated[Kind | None, Query(description="Only channels of this kind.")]
Secret = Annotated[SecretStr, Field(min_length=1, max_length=4096)]
Settings = Annotated[dict[str, Any], Field(description="The adapter's settings (docs/channels.md).")]


class ChannelIn(Model):
    """A new channel."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind = Field(description="`shopify`, `square`, `till`, `partner` or `app`.")
    id: str = Field(
        min_length=1,
        max_length=100,
        description="The shop's myshopify.com domain (any case), the Square merchant id, the till feed (the "
        "folder under `till/`), the partner id (the folder under `partners/`) or the app id (`app`).",
    )
    program: str = Field(min_length=1, max_length=40, description="The live program its events earn in.")
    settings: Settings = Field(
        default_factory=dict,
        description="The adapter's settings: `currency` (default: the program's, no rates), and per kind "
        "(docs/channels.md). Square needs `notification_url`, this stack's SquareWebhookUrl for the seller.",
    )
    secret: Secret | None = Field(
        None,
        description="Shopify: the app's client secret (webhook signing key). Square: the subscription's "
        "signature key. Required for those two, refused for the others. Stored as a secret, never returned.",
    )


class ChannelChange(Model):
    """A change: the fields given replace the stored ones."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version the change is made on (the record's `version` as read).")
    program: str | None = Field(None, min_length=1, max_length=40, description="Move the channel to this program.")
    settings: Settings | None = Field(None, description="The whole new settings (not merged with the old ones).")
    secret: Secret | None = Field(
        None, description="A new secret (a rotation): in force for every function within 30 s. Omit to keep it."
    )


class StatusChange(Model):
    """The version the change is made on."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The record's `version` as read.")


class SecretOut(Model):
    """Where the channel's secret is kept, never the secret."""

    version: int = Field(description="The version of the SecureString in force.")
    parameter: str = Field(description="The SSM SecureString that holds it.")


class ChannelOut(Model):
    """A channel as recorded (its secret is never shown)."""

    kind: str = Field(description="`shopify`, `square`, `till`, `partner` or `app`.")
    id: str = Field(description="The channel's id.")
    program: str = Field(description="The program its events earn in.")
    settings: dict[str, Any] = Field(description="The adapter's settings.")
    status: str = Field(description="`active` or `disabled` (its events are refused).")
    version: int = Field(description="The record's version; a change names it.")
    secret: SecretOut | None = Field(description="Shopify and Square: which secret version is in force, and where.")
    receives: str = Field(
        description="Where its events arrive: the webhook path on this API, the upload folder of the files "
        "bucket, or the app events path."
    )
    created_at: str = Field(description="When it was created (ISO 8601).")
    updated_at: str = Field(description="When it last changed (ISO 8601).")
    updated_by: str = Field(description="Who changed it last.")

    @classmethod
    def of(cls, record: ChannelRecord) -> "ChannelOut":
        secret = None
        if record.secret_version is not None:
            parameter = services().channel_secrets.name(record.kind, record.id)
            secret = SecretOut(version=record.secret_version, parameter=parameter)
        receives = {
            "shopify": f"/webhooks/shopify/{record.id}",
            "square": f"/webhooks/square/{record.id}",
            "till": f"till/{record.id}/",
            "partner": f"partners/{record.id}/",
            "app": "/app-events",
        }[record.kind]
        return cls(
            kind=record.kind,
            id=record.id,
            program=record.program,
            settings=record.settings,
            status=record.status,
            version=record.version,
            secret=secret,
            receives=receives,
            created_at=record.created_at.isoformat(),
            updated_at=record.updated_at.isoformat(),
            updated_by=record.updated_by,
        )


class ChannelsOut(Model):
    """Channels, by kind and id."""

    channels: list[ChannelOut] = Field(description="Every channel (of the kind asked for).")


def _plain(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


@router.get("/admin/channels")
def list_channels(kind: KindQuery = None) -> ChannelsOut:
    """List channels.

    Every channel, or those of one kind, by kind and id; disabled ones included.
    """
    context.authorize(router)
    return ChannelsOut(channels=[ChannelOut.of(r) for r in services().channels.all(kind)])


@router.post("/admin/channels", status_code=201)
def create_channel(body: ChannelIn) -> ChannelOut:
    """Create a channel.

    Checks the record as the adapter will use it (id, program, secret, settings) and refuses it with the
    field named; a kind and id that exist already are `channel_exists`. Its events are taken within 30 s.
    """
    operator = context.authorize(router)
    by = operator.id
    record = services().channels.create(body.kind, body.id, body.program, body.settings, _plain(body.secret), by)
    return ChannelOut.of(record)


@router.get("/admin/channels/<kind>/<channel>")
def get_channel(kind: KindPath, channel: ChannelPath) -> ChannelOut:
    """Read a channel.

    The record as stored: never its secret, only which version is in force and where it is kept.
    """
    context.authorize(router)
    return ChannelOut.of(services().channels.get(kind, channel))


@router.put("/admin/channels/<kind>/<channel>")
def change_channel(kind: KindPath, channel: ChannelPath, body: ChannelChange) -> ChannelOut:
    """Change a channel.

    Replaces the fields given (a new secret is a rotation), checked as a new channel would be, on the
    version read (`channel_changed` if it moved since). Functions use the change within 30 s.
    """
    operator = context.authorize(router)
    by = operator.id
    record = services().channels.change(
        kind,
        channel,
        expected_version=body.version,
        by=by,
        program=body.program,
        settings=body.settings,
        secret=_plain(body.secret),
    )
    return ChannelOut.of(record)


@router.post("/admin/channels/<kind>/<channel>/disable")
def disable_channel(kind: KindPath, channel: ChannelPath, body: StatusChange) -> ChannelOut:
    """Disable a channel.

    Its webhooks are refused (`channel_disabled`) and its files are not read; its settings and secret
    are kept, and nothing else changes. Within 30 s for every function.
    """
    operator = context.authorize(router)
    by = operator.id
    record = services().channels.set_status(kind, channel, "disabled", expected_version=body.version, by=by)
    return ChannelOut.of(record)


@router.post("/admin/channels/<kind>/<channel>/enable")
def enable_channel(kind: KindPath, channel: ChannelPath, body: StatusChange) -> ChannelOut:
    """Enable a channel again.

    As it was when disabled (its program must still be live).
    """
    operator = context.authorize(router)
    by = operator.id
    record = services().channels.set_status(kind, channel, "active", expected_version=body.version, by=by)
    return ChannelOut.of(record)
