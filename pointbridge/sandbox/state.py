"""Snapshots of DynamoDB items, S3 objects, SSM parameters (every version) and Secrets Manager
secrets, so a sandbox can stop and start where it left off: channel records name the version of
their secret they use, and the identity hash key must outlive a restart like the identities.

In-flight SQS messages, stream positions and schedules' progress are not kept: a restarted
sandbox starts with empty queues.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

SNAPSHOT = "snapshot.json"
FORMAT_VERSION = 1


def _encode(value: Any) -> Any:
    # DynamoDB binary (B, BS) and S3 bodies are bytes; JSON needs them tagged.
    if isinstance(value, bytes):
        return {"__b64__": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save(
    state_dir: Path,
    dynamodb: Any,
    s3: Any,
    tables: dict[str, str],
    buckets: dict[str, str],
    ssm: Any = None,
    secretsmanager: Any = None,
) -> Path:
    """tables/buckets map logical id -> physical name; the snapshot is keyed by logical id so a
    stage change does not lose it. Parameters and secrets are kept by name."""
    snapshot: dict[str, Any] = {"version": FORMAT_VERSION, "tables": {}, "buckets": {}}
    if ssm is not None:
        snapshot["parameters"] = _parameters(ssm)
    if secretsmanager is not None:
        snapshot["secrets"] = _secrets(secretsmanager)
    for logical_id, table in tables.items():
        items: list[dict[str, Any]] = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            items.extend(page["Items"])
        snapshot["tables"][logical_id] = items
    for logical_id, bucket in buckets.items():
        objects = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                got = s3.get_object(Bucket=bucket, Key=entry["Key"])
                objects.append(
                    {
                        "key": entry["Key"],
                        "body": got["Body"].read(),
                        "content_type": got.get("ContentType", "binary/octet-stream"),
                        "metadata": got.get("Metadata", {}),
                    }
                )
        snapshot["buckets"][logical_id] = objects
    state_dir.mkdir(parents=True, exist_ok=True)
    target = state_dir / SNAPSHOT
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(_encode(snapshot)), encoding="utf-8")
    partial.replace(target)  # a crash mid-write leaves the previous snapshot intact
    return target


def _parameters(ssm: Any) -> list[dict[str, Any]]:
    kept = []
    for page in ssm.get_paginator("describe_parameters").paginate():
        for parameter in page["Parameters"]:
            versions = []
            for history in ssm.get_paginator("get_parameter_history").paginate(
                Name=parameter["Name"], WithDecryption=True
            ):
                versions += [{"version": v["Version"], "value": v["Value"]} for v in history["Parameters"]]
            kept.append({"name": parameter["Name"], "type": parameter["Type"], "versions": versions})
    return kept


def _secrets(client: Any) -> list[dict[str, Any]]:
    kept = []
    for page in client.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            value = client.get_secret_value(SecretId=secret["ARN"])
            kept.append({"name": secret["Name"], "value": value["SecretString"]})
    return kept


def _restore_parameters(ssm: Any, parameters: list[dict[str, Any]]) -> int:
    for parameter in parameters:
        versions = sorted(parameter["versions"], key=lambda v: int(v["version"]))
        number = 0
        for version in versions:
            # Version numbers are what channel records name: the same numbers again, gaps filled.
            while number < int(version["version"]):
                ssm.put_parameter(
                    Name=parameter["name"], Value=version["value"], Type=parameter["type"], Overwrite=True
                )
                number += 1
    return len(parameters)


def _restore_secrets(client: Any, secrets: list[dict[str, Any]]) -> int:
    for secret in secrets:
        try:
            client.put_secret_value(SecretId=secret["name"], SecretString=secret["value"])
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=secret["name"], SecretString=secret["value"])
    return len(secrets)


def restore(
    state_dir: Path,
    dynamodb: Any,
    s3: Any,
    tables: dict[str, str],
    buckets: dict[str, str],
    ssm: Any = None,
    secretsmanager: Any = None,
) -> int:
    """Loads the snapshot if there is one; returns how many items, objects, parameters and secrets
    were restored. A secret the stack created again at start (a generated key) gets its saved value."""
    source = state_dir / SNAPSHOT
    if not source.exists():
        return 0
    snapshot = _decode(json.loads(source.read_text(encoding="utf-8")))
    restored = 0
    if ssm is not None:
        restored += _restore_parameters(ssm, snapshot.get("parameters", []))
    if secretsmanager is not None:
        restored += _restore_secrets(secretsmanager, snapshot.get("secrets", []))
    for logical_id, items in snapshot.get("tables", {}).items():
        if logical_id not in tables:
            continue
        for start in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            pending: dict[str, Any] = {tables[logical_id]: requests}
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        restored += len(items)
    for logical_id, objects in snapshot.get("buckets", {}).items():
        if logical_id not in buckets:
            continue
        for obj in objects:
            s3.put_object(
                Bucket=buckets[logical_id],
                Key=obj["key"],
                Body=obj["body"],
                ContentType=obj["content_type"],
                Metadata=obj["metadata"],
            )
        restored += len(objects)
    return restored
