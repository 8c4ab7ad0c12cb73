"""The one place boto3 clients are built: lazily, once per process, from the standard environment.

Built on first use (not at import) so that moto, the sandbox or AWS_ENDPOINT_URL are already in
place, and so that importing a handler stays cheap.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@cache
def _client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    session: Any = boto3.session.Session()
    return session.client(service, config=Config(retries={"mode": "standard", "max_attempts": 5}))


def dynamodb() -> DynamoDBClient:
    return _client("dynamodb")


def sqs() -> SQSClient:
    return _client("sqs")


def s3() -> S3Client:
    return _client("s3")


@cache
def s3_presigner() -> S3Client:
    """An S3 client for presigned URLs: Signature Version 4, the only one buckets made since 2020 take
    (botocore may otherwise presign with version 2), on the regional virtual-hosted endpoint."""
    import boto3
    from botocore.config import Config

    session: Any = boto3.session.Session()
    config = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
    client: S3Client = session.client("s3", config=config)
    return client


def ssm() -> Any:
    return _client("ssm")


def secretsmanager() -> Any:
    return _client("secretsmanager")


def kms() -> Any:
    return _client("kms")


def events() -> EventBridgeClient:
    return _client("events")


def reset_clients() -> None:
    """Forget cached clients (tests switch emulators between cases)."""
    _client.cache_clear()
    s3_presigner.cache_clear()
