"""The channel area's items (records, files received) and its secrets (one SSM SecureString per channel)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from shared.channels.records import ChannelRecord, FileRecord
from shared.infra import aws, keys
from shared.infra.codec import maybe_ts, parse_ts, to_item, ts

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.infra.table import Table


class ChannelItems:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, kind: str, channel_id: str) -> ChannelRecord | None:
        item = self._table.get(keys.channel(kind, channel_id))
        return _record(item) if item else None

    def put_new(self, record: ChannelRecord) -> bool:
        """Write a new record; False when the kind and id have one already."""
        return self._table.put_new(_item(record))

    def replace(self, record: ChannelRecord, expected_version: int) -> bool:
        """Write the record's next version; False when the stored one is no longer `expected_version`."""
        return self._table.put(_item(record), "version = :v", values_={":v": expected_version})

    def all(self, kind: str | None = None) -> list[ChannelRecord]:
        """Every record (of one kind), by kind and id: a Query of the channels' index partition."""
        condition, values = "GSI1PK = :pk", {":pk": keys.CHANNELS}
        if kind:
            condition, values = condition + " AND begins_with(GSI1SK, :prefix)", values | {":prefix": f"{kind}#"}
        items = self._table.query(
            IndexName="GSI1", KeyConditionExpression=condition, ExpressionAttributeValues=to_item(values)
        )
        return [_record(item) for item in items]

    # Files received on a channel

    def expect_file(self, kind: str, channel_id: str, file: FileRecord, expires: datetime) -> None:
        """An upload URL was issued; the item goes with TTL if no file ever comes."""
        key = keys.channel_file(kind, channel_id, file.file_id)
        self._table.put(
            {
                "PK": key.pk,
                "SK": key.sk,
                "type": "channel_file",
                "name": file.name,
                "key": file.key,
                "status": file.status,
                "created_at": ts(file.created_at),
                "expires": int(expires.timestamp()),
            }
        )

    def file_processed(self, kind: str, channel_id: str, file: FileRecord) -> None:
        """Record what became of a file's rows (creating the item for a file nobody announced)."""
        key = keys.channel_file(kind, channel_id, file.file_id)
        assert file.processed_at is not None
        self._table.update(
            key,
            "SET #type = :type, #name = :name, #key = :key, #status = :status, created_at = "
            "if_not_exists(created_at, :created), processed_at = :processed, accepted = :accepted, "
            "rejected = :rejected REMOVE expires",
            ExpressionAttributeNames={"#type": "type", "#name": "name", "#key": "key", "#status": "status"},
            ExpressionAttributeValues=to_item(
                {
                    ":type": "channel_file",
                    ":name": file.name,
                    ":key": file.key,
                    ":status": file.status,
                    ":created": ts(file.created_at),
                    ":processed": ts(file.processed_at),
                    ":accepted": file.accepted,
                    ":rejected": file.rejected,
                }
            ),
        )

    def file(self, kind: str, channel_id: str, file_id: str) -> FileRecord | None:
        item = self._table.get(keys.channel_file(kind, channel_id, file_id))
        return _file(item) if item else None

    def files_page(self, kind: str, channel_id: str, before: str | None, limit: int) -> tuple[list[FileRecord], bool]:
        """Newest first, `limit` at a time, those older than the file id `before`; True when more remain."""
        condition = "PK = :pk" + (" AND SK < :before" if before else "")
        values: dict[str, Any] = {":pk": keys.channel_files_pk(kind, channel_id)}
        if before:
            values[":before"] = before
        items, more = self._table.query_page(
            KeyConditionExpression=condition,
            ExpressionAttributeValues=to_item(values),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_file(item) for item in items], more is not None


class ChannelSecrets:
    """One SecureString per channel, `<path><kind>/<id>`, read by the version its record names, so a
    record and its secret change together for the readers."""

    def __init__(self, path: str, client: Callable[[], Any] = aws.ssm) -> None:
        self._path = path if path.endswith("/") else path + "/"
        self._client = client

    def name(self, kind: str, channel_id: str) -> str:
        return f"{self._path}{kind}/{channel_id}"

    def put(self, kind: str, channel_id: str, secret: str) -> int:
        """Store a new version of the channel's secret; its version number."""
        reply = self._client().put_parameter(
            Name=self.name(kind, channel_id),
            Value=secret,
            Type="SecureString",
            Overwrite=True,
            Description=f"Pointbridge channel secret ({kind} {channel_id})",
        )
        return int(reply["Version"])

    def get(self, kind: str, channel_id: str, version: int) -> str:
        reply = self._client().get_parameter(Name=f"{self.name(kind, channel_id)}:{version}", WithDecryption=True)
        return str(reply["Parameter"]["Value"])


def _item(record: ChannelRecord) -> dict[str, Any]:
    key = keys.channel(record.kind, record.id)
    index = keys.channel_index(record.kind, record.id)
    return {
        "PK": key.pk,
        "SK": key.sk,
        "type": "channel",
        "kind": record.kind,
        "id": record.id,
        "program": record.program,
        # As JSON text: a map would turn the settings' numbers into Decimals and back.
        "settings": json.dumps(record.settings, sort_keys=True),
        "status": record.status,
        "version": record.version,
        "secret_version": record.secret_version,
        "created_at": ts(record.created_at),
        "updated_at": ts(record.updated_at),
        "updated_by": record.updated_by,
        **index._asdict(),
    }


def _record(item: dict[str, Any]) -> ChannelRecord:
    secret_version = item.get("secret_version")
    return ChannelRecord(
        kind=str(item["kind"]),
        id=str(item["id"]),
        program=str(item["program"]),
        settings=json.loads(str(item["settings"])),
        status=str(item["status"]),
        version=int(item["version"]),
        secret_version=int(secret_version) if secret_version is not None else None,
        created_at=parse_ts(str(item["created_at"])),
        updated_at=parse_ts(str(item["updated_at"])),
        updated_by=str(item["updated_by"]),
    )


def _file(item: dict[str, Any]) -> FileRecord:
    processed = item.get("processed_at")
    return FileRecord(
        file_id=str(item["SK"]),
        name=str(item["name"]),
        key=str(item["key"]),
        status=str(item["status"]),
        created_at=parse_ts(str(item["created_at"])),
        processed_at=maybe_ts(processed),
        accepted=int(item["accepted"]) if item.get("accepted") is not None else None,
        rejected=int(item["rejected"]) if item.get("rejected") is not None else None,
    )


class FileObjects:
    """The files bucket, for what the API does with it: upload URLs for partners, reports to read."""

    def __init__(self, bucket: str, client: Callable[[], Any] = aws.s3_presigner) -> None:
        self._bucket = bucket
        self._client = client

    def upload_url(self, key: str, content_type: str, expires_in: int) -> str:
        """A presigned PUT of exactly this key (and content type), signed with this function's role."""
        url: str = self._client().generate_presigned_url(
            "put_object",
            Params={"Bucket": self._bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return url

    def report(self, key: str) -> dict[str, Any] | None:
        client = self._client()
        try:
            body = client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        report: dict[str, Any] = json.loads(body)
        return report
