"""The exchange area's items: quotes, and the settlement lines the stream watcher writes per entry and partner."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict

from shared.infra import keys
from shared.model import Model

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from shared.infra.table import Table

QUOTE_KEPT = timedelta(days=7)


class SettlementLine(Model):
    """What one entry moved between a program and one partner (+: to the partner, -: from it)."""

    model_config = ConfigDict(frozen=True)

    partner: str
    entry_id: str
    points: int
    fee: int = 0  # an exchange's fee, on its debit side
    residue: Decimal = Decimal(0)  # an exchange's rounding residue, on its credit side


class ExchangeItems:
    def __init__(self, table: Table) -> None:
        self._table = table

    # Quotes: written once, read when executed; their lifetime is checked on read. `expires` lets
    # DynamoDB's TTL remove one a week after it lapsed (a retry then gets unknown_quote).

    def put_quote(self, quote_id: str, body: str, lapses_at: datetime) -> None:
        key = keys.quote(quote_id)
        expires = int((lapses_at + QUOTE_KEPT).timestamp())
        self._table.put_new({"PK": key.pk, "SK": key.sk, "type": "quote", "body": body, "expires": expires})

    def get_quote(self, quote_id: str) -> str | None:
        item = self._table.get(keys.quote(quote_id))
        return str(item["body"]) if item else None

    # Settlement lines, one partition per program and UTC day.

    def add_settlement_line(self, program: str, day: str, line: SettlementLine) -> None:
        # Keyed by entry: a redelivered stream record writes the same item again, never a second line.
        self._table.put(_settlement_item(program, day, line))

    def add_settlement_lines(self, lines: Sequence[tuple[str, str, SettlementLine]]) -> None:
        """Many (program, day, line) at once, 25 a request; each keyed by its entry, as one at a time."""
        self._table.batch_put([_settlement_item(program, day, line) for program, day, line in lines])

    def settlement_lines(self, program: str, day: str, partner: str | None = None) -> list[SettlementLine]:
        """A day's lines, all partners' or (one Query on the sort-key prefix) one partner's."""
        prefix = keys.settlement_partner_prefix(partner) if partner is not None else None
        items = self._table.partition(keys.settlement_day_pk(program, day), prefix, consistent=False)
        return [
            SettlementLine(
                partner=str(item["partner"]),
                entry_id=str(item["entry_id"]),
                points=int(item["points"]),
                fee=int(item.get("fee", 0)),
                residue=Decimal(item.get("residue", 0)),
            )
            for item in items
            if partner is None or item["partner"] == partner
        ]


def _settlement_item(program: str, day: str, line: SettlementLine) -> dict[str, Any]:
    key = keys.settlement_line(program, day, line.partner, line.entry_id)
    return {
        "PK": key.pk,
        "SK": key.sk,
        "type": "settlement_line",
        "partner": line.partner,
        "entry_id": line.entry_id,
        "points": line.points,
        # Absent when zero.
        "fee": line.fee or None,
        "residue": line.residue or None,
    }
