"""Runtime settings, read once from the environment at cold start.

A plain pydantic model over `os.environ` rather than pydantic-settings: these are flat strings
with fixed names, and pydantic-settings' import (its CLI and cloud sources) cost every cold start
about 40 ms for nothing we use.
"""

from __future__ import annotations

import os
from functools import cache, cached_property

from pydantic import ConfigDict, Field

from shared.errors import ServiceMisconfiguredError
from shared.model import Model

LOCAL_IDENTITY_KEY = "local-identity-key"  # tests and local runs outside a function only
LOCAL_CHAIN_KEY = "local-chain-key"  # the same, for the ledger's chain hashes


class Settings(Model):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    table_name: str = Field(default="pointbridge-dev-points", alias="TABLE_NAME")
    ingest_queue_url: str = Field(default="", alias="INGEST_QUEUE_URL")
    # Key for the keyed hashes of e-mails and phone numbers; raw values are never stored. Deployed,
    # the stack's Secrets Manager secret (IDENTITY_HASH_KEY_SECRET, its ARN); IDENTITY_HASH_KEY gives
    # the key itself (tests, local runs).
    identity_hash_key_text: str | None = Field(default=None, alias="IDENTITY_HASH_KEY")
    identity_hash_key_secret: str = Field(default="", alias="IDENTITY_HASH_KEY_SECRET")
    # Key of the ledger's chain hashes (HMAC-SHA256): the stack's Secrets Manager secret
    # (CHAIN_HASH_KEY_SECRET), or the key itself in CHAIN_HASH_KEY (tests, local runs).
    chain_hash_key_text: str | None = Field(default=None, alias="CHAIN_HASH_KEY")
    chain_hash_key_secret: str = Field(default="", alias="CHAIN_HASH_KEY_SECRET")
    # Where the digest job writes the account heads (an S3 bucket with Object Lock).
    digests_bucket: str = Field(default="", alias="DIGESTS_BUCKET")
    # The asymmetric KMS key whose signatures give the draws their randomness.
    draw_signing_key: str = Field(default="", alias="DRAW_SIGNING_KEY")
    # Channels (issue 4): where poison messages go, the file drop bucket, per-source adapter
    # configs as JSON (docs/channels.md, "Sources").
    ingest_dlq_url: str = Field(default="", alias="INGEST_DLQ_URL")
    # Where the watch's given-up stream batches go (the operations console redrives them).
    watch_dlq_url: str = Field(default="", alias="WATCH_DLQ_URL")
    # The ingest queue's maxReceiveCount: on its last delivery a message that still fails is
    # dead-lettered by the function with the error, rather than moved by the redrive without one.
    ingest_max_receives: int = Field(default=5, ge=1, alias="INGEST_MAX_RECEIVES")
    files_bucket: str = Field(default="", alias="FILES_BUCKET")
    sources: str = Field(default="{}", alias="SOURCES")
    # Channel records' secrets: SSM SecureStrings under this path, one per channel (docs/channels.md).
    channel_secrets_path: str = Field(default="/pointbridge/dev/channels/", alias="CHANNEL_SECRETS_PATH")
    # How long a function keeps a channel's record (and secret) before reading it again.
    channel_cache_seconds: float = Field(default=30.0, alias="CHANNEL_CACHE_SECONDS")
    # Set by Lambda (and the sandbox) in a function's environment.
    lambda_function_name: str = Field(default="", alias="AWS_LAMBDA_FUNCTION_NAME")
    # Scheduled jobs: where member notices go and where partner statements are written.
    notifications_bus: str = Field(default="pointbridge-dev-notifications", alias="NOTIFICATIONS_BUS")
    statements_bucket: str = Field(default="pointbridge-dev-statements", alias="STATEMENTS_BUCKET")

    @cached_property
    def identity_hash_key(self) -> str:
        """The identity hash key: read once per container from Secrets Manager when the stack names its
        secret. It never changes (every stored identity is hashed with it)."""
        if self.identity_hash_key_text is not None:
            return self.identity_hash_key_text
        if self.identity_hash_key_secret:
            from shared.infra import aws

            reply = aws.secretsmanager().get_secret_value(SecretId=self.identity_hash_key_secret)
            return str(reply["SecretString"])
        if self.lambda_function_name:
            # A deployed function hashing with a key from the source code would match nobody's identities.
            raise ServiceMisconfiguredError(
                "no identity hash key: set IDENTITY_HASH_KEY_SECRET (template.yaml) for this function"
            )
        return LOCAL_IDENTITY_KEY

    @cached_property
    def chain_hash_key(self) -> str:
        """The chain key: read once per container, like the identity key. A function never falls back
        to a key in the source code: anyone could recompute a chain keyed with that."""
        if self.chain_hash_key_text is not None:
            return self.chain_hash_key_text
        if self.chain_hash_key_secret:
            from shared.infra import aws

            reply = aws.secretsmanager().get_secret_value(SecretId=self.chain_hash_key_secret)
            return str(reply["SecretString"])
        if self.lambda_function_name:
            raise ServiceMisconfiguredError(
                "no chain hash key: set CHAIN_HASH_KEY_SECRET (template.yaml) for this function"
            )
        return LOCAL_CHAIN_KEY

    @classmethod
    def from_environment(cls) -> Settings:
        return cls.model_validate(dict(os.environ))


@cache
def get_settings() -> Settings:
    return Settings.from_environment()
