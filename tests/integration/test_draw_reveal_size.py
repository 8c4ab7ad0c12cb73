"""A draw with more entrants than one DynamoDB item can hold (400 KB) still reveals, and reads back whole.

Ticket counters are written as the ledger's guard leaves them (one item per member in the draw's
partition), straight to the table: buying 26,000 tickets through the ledger would test the ledger.
moto refuses items over 400 KB as DynamoDB does, so freezing every entrant into the draw item fails here.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.infra import keys
from shared.rewards import draws
from shared.rewards.draws import DrawIn, pick_winners
from shared.rewards.store import REVEAL_CHUNK
from tests.conftest import T0

if TYPE_CHECKING:
    from functions.services import Services

ENTRANTS = 26_000


def _entrant(n: int) -> str:
    # Long ids, as shops' customer ids can be: 26,000 of them make a ~1.6 MB ticket list.
    return f"member-{n:06d}-" + "x" * 40


def test_a_draw_with_26000_entrants_reveals_and_every_item_stays_small(services: Services, draw_key: str) -> None:
    items = services.reward_items
    spec = DrawIn(id="big", prize="A car", ticket_points=10, winners=3, closes_at=T0 + timedelta(days=1))
    created = draws.create(items, "demo", spec, now=T0)
    client, table = services.table.client, services.table.name
    pk = keys.draw("demo", "big").pk
    requests: list[Any] = [
        {"PutRequest": {"Item": {"PK": {"S": pk}, "SK": {"S": keys.TICKET_PREFIX + _entrant(n)}, "used": {"N": "2"}}}}
        for n in range(ENTRANTS)
    ]
    for i in range(0, len(requests), 25):
        client.batch_write_item(RequestItems={table: requests[i : i + 25]})
    expected = {_entrant(n): 2 for n in range(ENTRANTS)}
    assert len(json.dumps(expected)) > 400 * 1024

    revealed = draws.reveal(items, services.draw_signer, created, now=T0 + timedelta(days=2))

    assert revealed.tickets == expected
    assert revealed.ticket_chunks == -(-ENTRANTS // REVEAL_CHUNK)
    assert revealed.entrants_root == draws.entrants_root(expected)
    assert revealed.winner_ids == pick_winners(revealed.randomness, expected, 3)
    loaded = draws.load(items, "demo", "big")
    assert loaded.tickets == expected and loaded.winner_ids == revealed.winner_ids
    # Revealing again shows the same result
    assert (
        draws.reveal(items, services.draw_signer, loaded, now=T0 + timedelta(days=3)).winner_ids == revealed.winner_ids
    )
    # No item of the draw's partition is near DynamoDB's limit
    largest = 0
    for page in client.get_paginator("query").paginate(
        TableName=table, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": pk}}
    ):
        largest = max([largest] + [len(json.dumps(item)) for item in page["Items"]])
    assert largest < 200 * 1024
