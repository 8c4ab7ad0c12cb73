"""The scheduled jobs' items: progress through the due-date indexes (lots, holds, tiers), reminder markers.

Every write that guards an effect is conditional. Keys in `shared.infra.keys`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.infra import keys
from shared.infra.codec import to_item, ts
from shared.ledger.evidence import DIGEST_PREFIX, Anchors, Digest

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.infra.table import Table

JOB_PAGE_SIZE = 100


@dataclass(frozen=True)
class Progress:
    """How far a job walked an index: everything due up to `through` is done; `target` is being done.

    A run stopped by its page budget leaves a cursor (the day, its shard and the page key) to resume
    from. Progress saved before the day keys were sharded has no shard: 0, the shard spelt as the
    unsharded key was, so its page key still fits.
    """

    through: str  # codec timestamps, compared as strings
    target: str
    cursor_day: str = ""
    cursor_key: str = ""
    cursor_shard: int = 0
    rev: int = 0

    def resume_key(self) -> dict[str, Any] | None:
        return json.loads(self.cursor_key) if self.cursor_key else None


@dataclass(frozen=True)
class DueItem:
    """An item met on the due-date index (GSI1): a lot by its due time, a tier by its review time."""

    kind: str  # the item's type: "lot", "tier"
    program: str
    member: str
    key: keys.ItemKey
    lot_id: str = ""
    due: str = ""  # the index sort key: `<due ts>#...`
    body: str = ""  # a hold's JSON body (holds keep their fields there)


@dataclass(frozen=True)
class Reminder:
    status: str  # claimed, then sent
    points: int = 0
    sent_at: str = ""


class JobItems:
    def __init__(self, table: Table) -> None:
        self._table = table

    # Progress

    def get_progress(self, job: str, program: str) -> Progress | None:
        item = self._table.get(keys.job_progress(job, program))
        if item is None:
            return None
        return Progress(
            through=str(item["through"]),
            target=str(item.get("target") or item["through"]),
            cursor_day=str(item.get("cursor_day", "")),
            cursor_key=str(item.get("cursor_key", "")),
            cursor_shard=int(item.get("cursor_shard", 0)),
            rev=int(item.get("rev", 0)),
        )

    def save_progress(self, job: str, program: str, progress: Progress) -> bool:
        """Write progress if nobody else moved it since it was read (`progress.rev`; 0: not yet written)."""
        key = keys.job_progress(job, program)
        values = {
            "PK": key.pk,
            "SK": key.sk,
            "type": "job_progress",
            "through": progress.through,
            "target": progress.target,
            "cursor_day": progress.cursor_day,
            "cursor_key": progress.cursor_key,
            "cursor_shard": progress.cursor_shard,
            "rev": progress.rev + 1,
        }
        if progress.rev == 0:
            return self._table.put(values, "attribute_not_exists(PK)")
        return self._table.put(values, "rev = :rev", values_={":rev": progress.rev})

    def due_page(
        self, pk: str, below: str | None, start_key: dict[str, Any] | None, limit: int = JOB_PAGE_SIZE
    ) -> tuple[list[DueItem], dict[str, Any] | None]:
        """One page of an index partition (GSI1), optionally only sort keys below `below`."""
        condition = "GSI1PK = :pk"
        values: dict[str, Any] = {":pk": pk}
        if below is not None:
            condition += " AND GSI1SK < :below"
            values[":below"] = below
        kwargs: dict[str, Any] = {}
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        items, next_key = self._table.query_page(
            IndexName="GSI1",
            KeyConditionExpression=condition,
            ExpressionAttributeValues=to_item(values),
            Limit=limit,
            **kwargs,
        )
        return [_due(item) for item in items], next_key

    def reindex_lot(self, item: DueItem, due: datetime) -> bool:
        """Move a lot's place in the expiry index later (its expiry was extended by activity).

        Only ever later, and only while the lot exists: two runs moving it at once cannot move it
        back, and a lot spent or expired meanwhile is not brought back as a bare index item.
        """
        index = keys.expiry_index(item.program, item.member, item.lot_id, due)
        return (
            self._table.update(
                item.key,
                "SET GSI1PK = :pk, GSI1SK = :sk",
                ConditionExpression="attribute_exists(PK) AND GSI1SK < :sk",
                ExpressionAttributeValues=to_item({":pk": index.GSI1PK, ":sk": index.GSI1SK}),
            )
            is not None
        )

    # Reminders

    def claim_reminder(self, program: str, member: str, day: str, now: datetime, lease_seconds: int) -> bool:
        """Claim the one notice for (program, member, date); a stale unsent claim may be retaken."""
        key = keys.reminder(program, member, day)
        return self._table.put(
            {"PK": key.pk, "SK": key.sk, "type": "reminder", "status": "claimed", "claimed_at": int(now.timestamp())},
            "attribute_not_exists(PK) OR (#s = :claimed AND claimed_at < :stale)",
            names={"#s": "status"},
            values_={":claimed": "claimed", ":stale": int(now.timestamp()) - lease_seconds},
        )

    def reminder_sent(self, program: str, member: str, day: str, points: int, now: datetime) -> None:
        key = keys.reminder(program, member, day)
        self._table.put(
            {"PK": key.pk, "SK": key.sk, "type": "reminder", "status": "sent", "points": points, "sent_at": ts(now)}
        )

    def reminder(self, program: str, member: str, day: str) -> Reminder | None:
        item = self._table.get(keys.reminder(program, member, day))
        if item is None:
            return None
        return Reminder(
            status=str(item["status"]), points=int(item.get("points", 0)), sent_at=str(item.get("sent_at", ""))
        )


def _due(item: dict[str, Any]) -> DueItem:
    return DueItem(
        kind=str(item.get("type", "")),
        program=str(item.get("program", "")),
        member=str(item.get("member", "")),
        key=keys.ItemKey(str(item["PK"]), str(item["SK"])),
        lot_id=str(item.get("lot_id", "")),
        due=str(item.get("GSI1SK", "")),
        body=str(item.get("body", "")) if item.get("type") == "hold" else "",
    )


class StatementFiles:
    """Where the settlement job writes statements: one S3 bucket (the client is injected, built lazily)."""

    def __init__(self, bucket: str, client: Callable[[], Any]) -> None:
        self._bucket, self._client = bucket, client

    def put(self, key: str, body: str, content_type: str) -> None:
        self._client().put_object(Bucket=self._bucket, Key=key, Body=body.encode(), ContentType=content_type)


class DigestFiles:
    """Where the digest job writes account heads and the audit reads them: a bucket with Object Lock
    (template.yaml, DigestsBucket), whose default retention keeps every version of every digest."""

    def __init__(self, bucket: str, client: Callable[[], Any]) -> None:
        self._bucket, self._client = bucket, client

    def put(self, digest: Digest) -> str:
        key = digest.key()
        self._client().put_object(
            Bucket=self._bucket, Key=key, Body=digest.model_dump_json().encode(), ContentType="application/json"
        )
        return key

    def anchors(self) -> Anchors | None:
        """The first and the last digest written (None: none yet)."""
        keys: list[str] = []
        for page in self._client().get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=DIGEST_PREFIX):
            keys.extend(str(obj["Key"]) for obj in page.get("Contents", []))
        if not keys:
            return None
        first, last = min(keys), max(keys)
        return Anchors(first=self._read(first), last=self._read(last))

    def _read(self, key: str) -> Digest:
        body = self._client().get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return Digest.model_validate_json(body)
