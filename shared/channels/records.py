"""A channel record, a file received on a channel, and the errors about them."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, ConfigDict, Field

from shared.errors import NotFoundError, PointbridgeError
from shared.model import Model


class ChannelRecord(Model):
    """One source of events as stored: never its secret, only which version of it is in force."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(description="`shopify`, `square`, `till`, `partner` or `app`.")
    id: str = Field(
        description="The shop's myshopify.com domain, the Square merchant id, the till feed (folder under "
        "`till/`), the partner id (folder under `partners/`) or the app id."
    )
    program: str = Field(description="The program its events earn in.")
    settings: dict[str, Any] = Field(description="The adapter's settings (docs/channels.md, per kind).")
    status: str = Field(description="`active`, or `disabled`: its events are refused and nothing else changes.")
    version: int = Field(description="Counts every change; send it back to change the record.")
    secret_version: int | None = Field(
        description="Which version of the channel's secret (an SSM SecureString) is in force; null when the "
        "kind has none. The secret itself is never shown."
    )
    created_at: AwareDatetime = Field(description="When the channel was created.")
    updated_at: AwareDatetime = Field(description="When it last changed.")
    updated_by: str = Field(description="Who changed it last (the admin key's principal).")


class FileRecord(Model):
    """A file a channel delivered (or was given an upload URL for), and what became of its rows."""

    model_config = ConfigDict(frozen=True)

    file_id: str = Field(description="The file's id: when it was announced or received, then a random part.")
    name: str = Field(description="The file's name, as given.")
    key: str = Field(description="Its key in the files bucket.")
    status: str = Field(description="`awaiting_upload` (an upload URL was issued) or `processed`.")
    created_at: AwareDatetime = Field(description="When the upload URL was issued, or the file received.")
    processed_at: AwareDatetime | None = Field(None, description="When its rows were read.")
    accepted: int | None = Field(None, description="Rows queued for posting.")
    rejected: int | None = Field(None, description="Rows refused, each with its line and reason in the report.")


class UnknownChannelError(NotFoundError):
    """Raised when an operation names a channel that has no record."""

    code = "unknown_channel"


class ChannelExistsError(PointbridgeError):
    """Raised when a channel is created under a kind and id that already have a record."""

    code = "channel_exists"
    status = 409


class ChannelChangedError(PointbridgeError):
    """Raised when a change names a version of the record that is no longer the current one."""

    code = "channel_changed"
    status = 409
