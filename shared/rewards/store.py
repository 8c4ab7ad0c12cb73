"""The rewards area's items: points draws (the draw, and its ticket counters in the same partition).

Ticket counters are the ledger's guard counters (`keys.draw_tickets`): tickets are bought in the
same transaction as their spend, so the count is exact whoever buys at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.infra import keys

if TYPE_CHECKING:
    from shared.infra.table import Table


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
