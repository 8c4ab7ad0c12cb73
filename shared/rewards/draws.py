"""A points draw nobody can rig: the randomness comes into being only after the entrants are frozen.

1. Created with its terms only: nothing random is drawn, so nothing in the table before the close
   says who will win (the old design kept a secret seed in the draw item; whoever could read the
   table could pick an id and a ticket count that would win).
2. Members buy tickets with points until `closes_at`. The spend and the member's ticket counter
   (a Guard, with the per-member cap) commit in one transaction.
3. After `closes_at` the reveal freezes the entrants: the tickets per member, stored in slices, and
   their Merkle root (`entrants_root`), stored with the draw. Then the draw's signing key (an RSA
   key in KMS, template.yaml DrawSigningKey, which only the API function may use) signs
   `signed_message(program, draw, root)` with RSASSA-PKCS1-v1_5 SHA-256. Such a signature is
   unique for the key and the message, and nobody holds the private key (KMS never exports it):
   it cannot be known before the root exists, nor chosen after. The randomness is its sha256, and
   `pick_winners(randomness, tickets, n)` draws the winners: tickets laid out in member-id order,
   for round k the ticket at `int(sha256(f"{randomness}:{k}")) mod (tickets left)` wins, and the
   winner's other tickets leave the pool.
4. Anyone can verify (`pointbridge draw verify`, docs/security.md): the root from the published
   tickets, the signature over (program, draw, root) with the published public key (the key's
   GetPublicKey), the randomness from the signature, the winners from the randomness. Editing the
   frozen tickets changes the root, and the signature no longer verifies.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Protocol

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


SIGNING_ALGORITHM = "RSASSA_PKCS1_V1_5_SHA_256"


class Draw(DrawIn):
    # A draw item stored by the old design carries its seed and commitment: read past, never used.
    model_config = ConfigDict(extra="ignore")

    program: str
    revealed_at: datetime | None = None
    tickets: dict[str, int] = Field(default_factory=dict)  # frozen at reveal; stored in slices, not in the draw
    winner_ids: list[str] = Field(default_factory=list)
    ticket_chunks: int = 0  # how many slices of frozen tickets the reveal wrote (RewardItems.freeze_tickets)
    # Set by the reveal: the frozen entrants' Merkle root, and the proof of the randomness.
    entrants_root: str = ""
    signature: str = ""  # base64, RSASSA-PKCS1-v1_5 SHA-256 over signed_message(program, id, root)
    signing_key: str = ""  # the KMS key's ARN
    public_key: str = ""  # base64 DER SubjectPublicKeyInfo, as KMS GetPublicKey gives it

    def stored(self) -> str:
        """The draw item's body: everything but the tickets, so its size does not grow with the entrants."""
        return self.model_dump_json(exclude={"tickets"})

    @property
    def randomness(self) -> str:
        """sha256 of the signature (hex): what the winners are drawn with. Empty until the reveal."""
        return randomness_of(base64.b64decode(self.signature)) if self.signature else ""


class DrawSigner(Protocol):
    """The draws' signing key (`shared.rewards.store.KmsDrawSigner`)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...

    def public_key(self) -> bytes: ...


def _leaf(member: str, tickets: int) -> bytes:
    # Domain-separated from the inner nodes, so no pair of entrants passes for one entrant.
    return hashlib.sha256(b"\x00" + f"{member}\n{tickets}".encode()).digest()


def entrants_root(tickets: dict[str, int]) -> str:
    """The Merkle root (sha256, hex) over the entrants in member-id order, each leaf a member and its
    ticket count; an odd node at the end of a level goes up unpaired. No entrants: sha256 of nothing."""
    level = [_leaf(member, tickets[member]) for member in sorted(tickets)]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0].hex()


def signed_message(program: str, draw_id: str, root: str) -> bytes:
    """What the signing key signs for a draw: which draw, and the entrants it froze."""
    return f"pointbridge-draw/v1\nprogram={program}\ndraw={draw_id}\nentrants_root={root}".encode()


def randomness_of(signature: bytes) -> str:
    return hashlib.sha256(signature).hexdigest()


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
    draw = Draw(**spec.model_dump(), program=program)
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


def reveal(items: RewardItems, signer: DrawSigner, draw: Draw, now: datetime) -> Draw:
    if draw.revealed_at is not None:
        return draw  # revealing again shows the same result
    if now < draw.closes_at:
        raise DrawClosedError(f"draw {draw.id} is open until {draw.closes_at.isoformat()}")
    tickets = items.draw_tickets(draw.program, draw.id)
    chunks = items.freeze_tickets(draw.program, draw.id, tickets)
    root = entrants_root(tickets)
    # Deterministic: a reveal retried (or run twice at once) signs the same message, draws the same.
    signature = signer.sign(signed_message(draw.program, draw.id, root))
    done = draw.model_copy(
        update={
            "revealed_at": now,
            "tickets": tickets,
            "ticket_chunks": chunks,
            "entrants_root": root,
            "signature": base64.b64encode(signature).decode(),
            "signing_key": signer.key_id,
            "public_key": base64.b64encode(signer.public_key()).decode(),
            "winner_ids": pick_winners(randomness_of(signature), tickets, draw.winners),
        }
    )
    items.save_draw(draw.program, draw.id, done.stored())
    return done
