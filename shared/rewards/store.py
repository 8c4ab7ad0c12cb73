"""The rewards area's items: points draws (the draw, and its ticket counters in the same partition).

Ticket counters are the ledger's guard counters (`keys.draw_tickets`): tickets are bought in the
same transaction as their spend, so the count is exact whoever buys at once. At the reveal the
counts are frozen into slices of `REVEAL_CHUNK` members each (`keys.draw_reveal_chunk`): one item
holding every entrant would pass DynamoDB's 400 KB item limit at about 25,000 entrants, and that
draw could then never be revealed.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError
from shared.infra import keys

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.infra.table import Table

# Member ids are at most 128 characters: 1,000 of them with their counts stay under 150 KB.
REVEAL_CHUNK = 1000


class RewardItems:
    def __init__(self, table: Table) -> None:
        self._table = table

    def put_draw(self, program: str, draw_id: str, body: str) -> bool:
        key = keys.draw(program, draw_id)
        return self._table.put_new({"PK": key.pk, "SK": key.sk, "type": "draw", "body": body})

    def get_draw(self, program: str, draw_id: str) -> str | None:
        item = self._table.get(keys.draw(program, draw_id))
        return str(item["body"]) if item else None

    def save_draw(self, program: str, draw_id: str, body: str) -> None:
        key = keys.draw(program, draw_id)
        self._table.put({"PK": key.pk, "SK": key.sk, "type": "draw", "body": body})

    def draw_tickets(self, program: str, draw_id: str) -> dict[str, int]:
        """Tickets bought per member."""
        return {
            str(item["SK"]).removeprefix(keys.TICKET_PREFIX): int(item.get("used", 0))
            for item in self._table.partition(keys.draw(program, draw_id).pk, keys.TICKET_PREFIX)
        }

    def freeze_tickets(self, program: str, draw_id: str, tickets: dict[str, int]) -> int:
        """Writes the frozen tickets in slices, before the draw item that names their count; returns it."""
        members = sorted(tickets)
        chunks = [members[i : i + REVEAL_CHUNK] for i in range(0, len(members), REVEAL_CHUNK)]
        for n, chunk in enumerate(chunks):
            key = keys.draw_reveal_chunk(program, draw_id, n)
            body = json.dumps({member: tickets[member] for member in chunk}, separators=(",", ":"))
            self._table.put({"PK": key.pk, "SK": key.sk, "type": "draw_reveal", "body": body})
        return len(chunks)

    def frozen_tickets(self, program: str, draw_id: str, chunks: int) -> dict[str, int]:
        """The tickets frozen at the reveal (the first `chunks` slices: a retried reveal may have left more)."""
        tickets: dict[str, int] = {}
        for item in self._table.partition(keys.draw(program, draw_id).pk, keys.REVEAL_PREFIX):
            if int(str(item["SK"]).removeprefix(keys.REVEAL_PREFIX)) < chunks:
                tickets |= {str(k): int(v) for k, v in json.loads(str(item["body"])).items()}
        return tickets


class KmsDrawSigner:
    """The draws' signing key in KMS (template.yaml DrawSigningKey): an RSA key whose private half never
    leaves KMS. Implements `shared.rewards.draws.DrawSigner`."""

    def __init__(self, key_id: str, client: Callable[[], Any]) -> None:
        self._key_id, self._client = key_id, client

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        from shared.rewards.draws import SIGNING_ALGORITHM

        reply = self._client().sign(
            KeyId=self._required(), Message=message, MessageType="RAW", SigningAlgorithm=SIGNING_ALGORITHM
        )
        return bytes(reply["Signature"])

    def public_key(self) -> bytes:
        return self._public_key

    @cached_property
    def _public_key(self) -> bytes:
        # It never changes for the key: read once per container.
        return bytes(self._client().get_public_key(KeyId=self._required())["PublicKey"])

    def _required(self) -> str:
        if not self._key_id:
            raise ConfigError("no draw signing key: set DRAW_SIGNING_KEY (template.yaml) for this function")
        return self._key_id
