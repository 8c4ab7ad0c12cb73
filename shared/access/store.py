"""The access area's items: API keys (only their SHA-256) and idempotent replies."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.infra import keys

if TYPE_CHECKING:
    from shared.infra.table import Table

REPLY_KEPT_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class StoredReply:
    """A reply sent under an Idempotency-Key, replayed to a retry of the same request."""

    fingerprint: str
    status: int
    body: str  # "" when the reply held a secret shown once


class AccessItems:
    def __init__(self, table: Table) -> None:
        self._table = table

    # API keys: only the SHA-256 of a key is stored, so a table dump reveals no usable key.

    def put_key(self, key_hash: str, principal_json: str) -> None:
        key = keys.api_key(key_hash)
        self._table.put_new({"PK": key.pk, "SK": key.sk, "type": "api_key", "body": principal_json})

    def get_key(self, key_hash: str) -> str | None:
        item = self._table.get(keys.api_key(key_hash))
        return str(item["body"]) if item else None

    # Idempotent replies, keyed by the principal and its Idempotency-Key.

    def get_reply(self, principal: str, idempotency_key: str) -> StoredReply | None:
        item = self._table.get(keys.reply(principal, idempotency_key))
        if item is None:
            return None
        return StoredReply(fingerprint=str(item["fingerprint"]), status=int(item["status"]), body=str(item["body"]))

    def put_reply(self, principal: str, idempotency_key: str, reply: StoredReply) -> bool:
        """Store a reply unless one is stored under this key already (False: read that one)."""
        key = keys.reply(principal, idempotency_key)
        return self._table.put_new(
            {
                "PK": key.pk,
                "SK": key.sk,
                "type": "reply",
                "fingerprint": reply.fingerprint,
                "status": reply.status,
                "body": reply.body,
                # Only a cache of the reply (the ledger's own idempotency is its entries, kept for ever):
                # DynamoDB's TTL removes it a week on; a retry after that is evaluated afresh.
                "expires": int(time.time()) + REPLY_KEPT_SECONDS,
            }
        )
