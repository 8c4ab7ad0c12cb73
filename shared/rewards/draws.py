"""A points draw that anyone can verify: commit to a seed before entries close, reveal it after.

1. Created with a random secret seed; only `commitment = sha256(seed)` is published.
2. Members buy tickets with points until `closes_at`. The spend and the member's ticket counter
   (a Guard, with the per-member cap) commit in one transaction.
3. After `closes_at` the seed is revealed and winners drawn by `pick_winners(seed, tickets, n)`:
   tickets are laid out in member-id order, and for round k the ticket at
   `int(sha256(f"{seed}:{k}")) mod (tickets left)` wins; the winner's other tickets leave the pool.
   Anyone holding the published tickets and the seed can check `sha256(seed) == commitment` and
   recompute the same winners. The seed cannot be chosen after seeing the entries, because its
   hash was published before they closed.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import ConfigDict, Field

from shared.errors import InvalidInputError, LedgerError, LimitReachedError, NotFoundError
from shared.events.model import Moment
from shared.infra import keys
from shared.ledger.commands import Spend
from shared.ledger.contract import Guard, GuardRefusedError
from shared.model import Model
from shared.program.config import RuleId

if TYPE_CHECKING:
    from shared.ledger.ledger import Ledger
    from shared.ledger.models import Entry
    from shared.rewards.store import RewardItems


class DrawClosedError(LedgerError):
    """Raised when tickets are bought after a draw closed, or it is revealed before it closes."""

    code = "draw_closed"
    status = 422


class UnknownDrawError(NotFoundError):
    """Raised when a draw id names no draw of the program."""

    code = "unknown_draw"


class DrawIn(Model):
    """A new draw's terms."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[RuleId, Field(description="The draw's id in the program.")]
    prize: Annotated[str, Field(min_length=1, max_length=200, description="What the winners get.")]
    ticket_points: Annotated[int, Field(gt=0, le=1_000_000, description="Points per ticket.")]
    max_tickets_per_member: Annotated[
        int, Field(gt=0, le=10_000, description="Tickets one member may hold at most.")
    ] = 100
    winners: Annotated[int, Field(gt=0, le=1000, description="How many winners to draw.")] = 1
    closes_at: Annotated[
        Moment, Field(description="Tickets are sold until then (in the future, with an offset, before 2200).")
    ]


class Draw(DrawIn):
    program: str
    commitment: str
    seed: str | None = None  # secret until revealed
    revealed_at: datetime | None = None
    tickets: dict[str, int] = Field(default_factory=dict)  # frozen at reveal; stored in slices, not in the draw
    winner_ids: list[str] = Field(default_factory=list)
    ticket_chunks: int = 0  # how many slices of frozen tickets the reveal wrote (RewardItems.freeze_tickets)

    def stored(self) -> str:
        """The draw item's body: everything but the tickets, so its size does not grow with the entrants."""
        return self.model_dump_json(exclude={"tickets"})


def commit(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def pick_winners(seed: str, tickets: dict[str, int], winners: int) -> list[str]:
    pool = [member for member in sorted(tickets) for _ in range(tickets[member])]
    chosen: list[str] = []
    for k in range(winners):
        if not pool:
            break
        index = int(hashlib.sha256(f"{seed}:{k}".encode()).hexdigest(), 16) % len(pool)
        winner = pool[index]
        chosen.append(winner)
        pool = [member for member in pool if member != winner]
    return chosen


def source(draw_id: str) -> str:
    """The ledger source of a draw's ticket spends."""
    return f"draw:{draw_id}"


def create(items: RewardItems, program: str, spec: DrawIn, now: datetime) -> Draw:
    if spec.closes_at <= now:
        raise InvalidInputError("a draw must close in the future")
    seed = secrets.token_hex(32)
    draw = Draw(**spec.model_dump(), program=program, commitment=commit(seed), seed=seed)
    if not items.put_draw(program, spec.id, draw.stored()):
        raise InvalidInputError(f"draw {spec.id!r} already exists")
    return draw


def load(items: RewardItems, program: str, draw_id: str) -> Draw:
    body = items.get_draw(program, draw_id)
    if body is None:
        raise UnknownDrawError(f"no draw {draw_id!r} in {program}")
    found = Draw.model_validate_json(body)
    if found.ticket_chunks:
        found = found.model_copy(update={"tickets": items.frozen_tickets(program, draw_id, found.ticket_chunks)})
    return found


def enter(ledger: Ledger, draw: Draw, member: str, tickets: int, reference: str, now: datetime) -> Entry:
    if now >= draw.closes_at or draw.revealed_at is not None:
        raise DrawClosedError(f"draw {draw.id} closed at {draw.closes_at.isoformat()}")
    guard = Guard(
        key=keys.draw_tickets(draw.program, draw.id, member),
        amount=tickets,
        limit=draw.max_tickets_per_member,
        detail=f"at most {draw.max_tickets_per_member} tickets per member",
    )
    cmd = Spend(
        program=draw.program,
        member=member,
        points=tickets * draw.ticket_points,
        source=source(draw.id),
        external_id=reference,
        reason=f"{tickets} ticket(s) in the draw for {draw.prize}",
        details={"draw": draw.id, "tickets": str(tickets)},
    )
    try:
        return ledger.spend(cmd, guards=[guard])
    except GuardRefusedError as refused:
        raise LimitReachedError(refused.guard.detail) from refused


def reveal(items: RewardItems, draw: Draw, now: datetime) -> Draw:
    if draw.revealed_at is not None:
        return draw  # revealing again shows the same result
    if now < draw.closes_at:
        raise DrawClosedError(f"draw {draw.id} is open until {draw.closes_at.isoformat()}")
    assert draw.seed is not None
    tickets = items.draw_tickets(draw.program, draw.id)
    chunks = items.freeze_tickets(draw.program, draw.id, tickets)
    done = draw.model_copy(
        update={
            "revealed_at": now,
            "tickets": tickets,
            "ticket_chunks": chunks,
            "winner_ids": pick_winners(draw.seed, tickets, draw.winners),
        }
    )
    items.save_draw(draw.program, draw.id, done.stored())
    return done
