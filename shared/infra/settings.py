"""Runtime settings, read once from the environment at cold start.

A plain pydantic model over `os.environ` rather than pydantic-settings: these are flat strings
with fixed names, and pydantic-settings' import (its CLI and cloud sources) cost every cold start
about 40 ms for nothing we use.
"""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    table_name: str = Field(default="pointbridge-dev-points", alias="TABLE_NAME")
    ingest_queue_url: str = Field(default="", alias="INGEST_QUEUE_URL")
    # Key for the keyed hashes of e-mails and phone numbers; raw values are never stored.
    identity_hash_key: str = Field(default="local-identity-key", alias="IDENTITY_HASH_KEY")
    # Channels (issue 4): where poison messages go, the file drop bucket, per-source adapter
    # configs as JSON (docs/channels.md, "Sources").
    ingest_dlq_url: str = Field(default="", alias="INGEST_DLQ_URL")
    # The ingest queue's maxReceiveCount: on its last delivery a message that still fails is
    # dead-lettered by the function with the error, rather than moved by the redrive without one.
    ingest_max_receives: int = Field(default=5, ge=1, alias="INGEST_MAX_RECEIVES")
    files_bucket: str = Field(default="", alias="FILES_BUCKET")
    sources: str = Field(default="{}", alias="SOURCES")
    # Scheduled jobs: where member notices go and where partner statements are written.
    notifications_bus: str = Field(default="pointbridge-dev-notifications", alias="NOTIFICATIONS_BUS")
    statements_bucket: str = Field(default="pointbridge-dev-statements", alias="STATEMENTS_BUCKET")

    @classmethod
    def from_environment(cls) -> Settings:
        return cls.model_validate(dict(os.environ))


@cache
def get_settings() -> Settings:
    return Settings.from_environment()
