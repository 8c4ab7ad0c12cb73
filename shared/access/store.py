"""The access area's items: API keys (their hashes and lifecycle) and Idempotency-Key claims and replies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.access.keys import KeyRecord, Principal
from shared.infra import keys
from shared.infra.codec import maybe_ts, to_item, ts

if TYPE_CHECKING:
    from shared.infra.table import Table

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
IN_PROGRESS = "in_progress"
DONE = "done"
REPLY_KEPT_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class StoredReply:
    """A reply sent under an Idempotency-Key, replayed to a retry of the same request."""

    fingerprint: str
    status: int
    body: str  # "" when the reply held a secret shown once


@dataclass(frozen=True)
class Claim:
    """An Idempotency-Key as the table holds it: claimed by a running request, or done with its reply."""

    fingerprint: str
    state: str  # IN_PROGRESS or DONE
    token: str  # which request holds an in-progress claim
    claimed_at: datetime
    reply: StoredReply | None  # set when DONE


class AccessItems:
    def __init__(self, table: Table) -> None:
        self._table = table

    # API keys: only the SHA-256 of a key is stored, under the key's id.

    def put_key(self, record: KeyRecord) -> None:
        key = keys.api_key(record.key_id)
        index = keys.api_key_index(record.created_at, record.key_id)
        item: dict[str, Any] = {
            "PK": key.pk,
            "SK": key.sk,
            "type": "api_key",
            "key_id": record.key_id,
            "secret_hash": record.secret_hash,
            "body": record.principal.model_dump_json(),
            "created_at": ts(record.created_at),
            "created_by": record.created_by or None,
            "expires_at": ts(record.expires_at) if record.expires_at else None,
            "replaces": record.replaces or None,
            **index._asdict(),
        }
        if not self._table.put_new(item):
            raise RuntimeError(f"key id {record.key_id} exists already")  # 64 random bits: never in practice

    def get_key(self, key_id: str) -> KeyRecord | None:
        item = self._table.get(keys.api_key(key_id))
        return _record(item) if item else None

    def keys_page(self, after: str, limit: int) -> tuple[list[KeyRecord], str | None]:
        """Keys in the order they were minted, `limit` at a time; `after` is the previous page's cursor."""
        condition, values = "GSI1PK = :pk", {":pk": keys.API_KEYS}
        if after:
            condition, values = condition + " AND GSI1SK > :after", values | {":after": after}
        kwargs: dict[str, Any] = {
            "IndexName": "GSI1",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": to_item(values),
            "Limit": limit,
        }
        items, more = self._table.query_page(**kwargs)
        records = [_record(item) for item in items]
        cursor = keys.api_key_index(records[-1].created_at, records[-1].key_id).GSI1SK if more and records else None
        return records, cursor

    def revoke_key(self, key_id: str, at: datetime, by: str, reason: str) -> KeyRecord | None:
        """Revoke a key from `at` (None: no such key). Revoking a revoked key keeps the first revocation."""
        updated = self._table.update(
            keys.api_key(key_id),
            "SET revoked_at = if_not_exists(revoked_at, :at), revoked_by = if_not_exists(revoked_by, :by), "
            "revoke_reason = if_not_exists(revoke_reason, :why)",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues=to_item({":at": ts(at), ":by": by, ":why": reason}),
            ReturnValues="ALL_NEW",
        )
        return _record(updated) if updated else None

    def expire_key(self, key_id: str, at: datetime) -> None:
        """Bring a key's expiry forward to `at` (a rotation's overlap); a sooner expiry stays."""
        self._table.update(
            keys.api_key(key_id),
            "SET expires_at = :at",
            ConditionExpression="attribute_exists(PK) AND (attribute_not_exists(expires_at) OR expires_at > :at)",
            ExpressionAttributeValues=to_item({":at": ts(at)}),
        )

    def touch_key(self, key_id: str, at: datetime) -> None:
        self._table.update(
            keys.api_key(key_id),
            "SET last_used_at = :at",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues=to_item({":at": ts(at)}),
        )

    # Idempotency-Key claims, keyed by the principal and its key: claimed before the request runs.

    def claim(self, principal: str, idempotency_key: str, fingerprint: str, token: str, at: datetime) -> bool:
        """Claim a key for a request about to run; False when it is claimed or done already (read it)."""
        key = keys.reply(principal, idempotency_key)
        return self._table.put_new(
            {
                "PK": key.pk,
                "SK": key.sk,
                "type": "reply",
                "state": IN_PROGRESS,
                "fingerprint": fingerprint,
                "token": token,
                "claimed_at": ts(at),
                # Only a cache of the reply (the ledger's own idempotency is its entries, kept for ever):
                # DynamoDB's TTL removes it a week on; a retry after that is evaluated afresh.
                "expires": int(at.timestamp()) + REPLY_KEPT_SECONDS,
            }
        )

    def take_over(self, principal: str, idempotency_key: str, stale_token: str, token: str, at: datetime) -> bool:
        """Take over a claim whose request never finished (its function timed out); False if another did first."""
        updated = self._table.update(
            keys.reply(principal, idempotency_key),
            "SET #token = :token, claimed_at = :at",
            ConditionExpression="#state = :running AND #token = :stale",
            ExpressionAttributeNames={"#token": "token", "#state": "state"},
            ExpressionAttributeValues=to_item(
                {":token": token, ":at": ts(at), ":running": IN_PROGRESS, ":stale": stale_token}
            ),
        )
        return updated is not None

    def get_claim(self, principal: str, idempotency_key: str) -> Claim | None:
        item = self._table.get(keys.reply(principal, idempotency_key))
        if item is None:
            return None
        # Replies stored before claims existed have no state: they are done.
        state = str(item.get("state", DONE))
        reply = None
        if state == DONE:
            reply = StoredReply(
                fingerprint=str(item["fingerprint"]), status=int(item["status"]), body=str(item["body"])
            )
        return Claim(
            fingerprint=str(item["fingerprint"]),
            state=state,
            token=str(item.get("token", "")),
            claimed_at=maybe_ts(item.get("claimed_at")) or EPOCH,
            reply=reply,
        )

    def complete(self, principal: str, idempotency_key: str, token: str, reply: StoredReply) -> bool:
        """Store the reply of the request holding the claim; False if the claim is no longer its own."""
        updated = self._table.update(
            keys.reply(principal, idempotency_key),
            "SET #state = :done, #status = :status, body = :body",
            ConditionExpression="#state = :running AND #token = :token",
            ExpressionAttributeNames={"#state": "state", "#status": "status", "#token": "token"},
            ExpressionAttributeValues=to_item(
                {":done": DONE, ":status": reply.status, ":body": reply.body, ":running": IN_PROGRESS, ":token": token}
            ),
        )
        return updated is not None

    def release(self, principal: str, idempotency_key: str, token: str) -> None:
        """Give a claim back when its request was refused: it wrote nothing, so a retry runs afresh."""
        self._table.delete(
            keys.reply(principal, idempotency_key),
            "#state = :running AND #token = :token",
            names={"#state": "state", "#token": "token"},
            values={":running": IN_PROGRESS, ":token": token},
        )


def _record(item: dict[str, Any]) -> KeyRecord:
    def moment(name: str) -> datetime | None:
        return maybe_ts(item.get(name))

    created = moment("created_at")
    assert created is not None
    return KeyRecord(
        key_id=str(item["key_id"]),
        secret_hash=str(item["secret_hash"]),
        principal=Principal.model_validate_json(str(item["body"])),
        created_at=created,
        created_by=str(item.get("created_by") or ""),
        expires_at=moment("expires_at"),
        revoked_at=moment("revoked_at"),
        revoked_by=str(item.get("revoked_by") or ""),
        revoke_reason=str(item.get("revoke_reason") or ""),
        last_used_at=moment("last_used_at"),
        replaces=str(item.get("replaces") or ""),
    )
