"""Runtime settings, read once from the environment at cold start."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    table_name: str = Field(default="pointbridge-dev-points", alias="TABLE_NAME")
    ingest_queue_url: str = Field(default="", alias="INGEST_QUEUE_URL")
    # Key for the keyed hashes of e-mails and phone numbers; raw values are never stored.
    identity_hash_key: str = Field(default="local-identity-key", alias="IDENTITY_HASH_KEY")
    # Scheduled jobs: where member notices go and where partner statements are written.
    notifications_bus: str = Field(default="pointbridge-dev-notifications", alias="NOTIFICATIONS_BUS")
    statements_bucket: str = Field(default="pointbridge-dev-statements", alias="STATEMENTS_BUCKET")


@cache
def get_settings() -> Settings:
    return Settings()
