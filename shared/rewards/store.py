"""The rewards area's items: points draws (the draw, and its ticket counters in the same partition).

Ticket counters are the ledger's guard counters (`keys.draw_tickets`): tickets are bought in the
same transaction as their spend, so the count is exact whoever buys at once. At the reveal the
counts are frozen into slices of `REVEAL_CHUNK` members each (`keys.draw_reveal_chunk`): one item
holding every entrant would pass DynamoDB's 400 KB item limit at about 25,000 entrants, and that
draw could then never be revealed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from shared.infra import keys

if TYPE_CHECKING:
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
