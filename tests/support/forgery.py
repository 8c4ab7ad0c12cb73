"""What an insider with write access to the table (and not the chain key) can do to an account: edit
an entry, recompute every hash after it, and make the balance and the lot agree, so that every sum
the audit recomputes checks out. The attack stories (issue 11) then show the audit naming it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.infra import keys
from shared.ledger.models import GENESIS_HASH, KEYED_HASH, UNKEYED_HASH, Account, Entry
from shared.ledger.store import account_item, entry_item, lot_item

if TYPE_CHECKING:
    from collections.abc import Callable

    from functions.services import Services


def unkeyed(entry: Entry) -> Entry:
    """Sealed as entries were before the chain key: sha256 of the content, which anyone can compute."""
    marked = entry.model_copy(update={"hash_version": UNKEYED_HASH})
    return marked.model_copy(update={"hash": marked.content_hash()})


def keyed_with(guess: bytes) -> Callable[[Entry], Entry]:
    """Sealed with a guessed key, under the keyed marker."""

    def seal(entry: Entry) -> Entry:
        marked = entry.model_copy(update={"hash_version": KEYED_HASH})
        return marked.model_copy(update={"hash": marked.content_hash(guess)})

    return seal


def inflate_credit(
    services: Services, program: str, member: str, entry_id: str, by: int, seal: Callable[[Entry], Entry]
) -> None:
    """Add `by` points to the credit `entry_id` (its postings and its lot), reseal the whole chain with
    `seal`, and move the balance and the lot to match."""
    store = services.ledger_store
    entries, _, _, _, _ = store.audit_records()
    chain = sorted((e for e in entries if (e.program, e.member) == (program, member)), key=lambda e: e.seq)
    previous = GENESIS_HASH
    for entry in chain:
        if entry.entry_id == entry_id:
            postings = tuple(
                p.model_copy(update={"amount": p.amount + (by if p.amount > 0 else -by)}) for p in entry.postings
            )
            lots = tuple(m.model_copy(update={"amount": m.amount + by}) for m in entry.lots)
            entry = entry.model_copy(update={"postings": postings, "lots": lots})
        entry = seal(entry.model_copy(update={"prev_hash": previous}))
        _put(services, entry_item(entry))
        previous = entry.hash
    state, lots_now = store.get_account_and_lots(program, member)
    assert state is not None
    _put(services, account_item(state.model_copy(update={"available": state.available + by, "head": previous})))
    lot = next(lot for lot in lots_now if lot.origin == entry_id)
    _put(services, lot_item(lot.model_copy(update={"remaining": lot.remaining + by})))


def truncate(services: Services, program: str, member: str) -> None:
    """Delete the account's last entry and roll its balance back to the entry before (a spend undone)."""
    store = services.ledger_store
    entries, _, _, _, _ = store.audit_records()
    chain = sorted((e for e in entries if (e.program, e.member) == (program, member)), key=lambda e: e.seq)
    last, before = chain[-1], chain[-2]
    state, lots_now = store.get_account_and_lots(program, member)
    assert state is not None
    services.table.delete(keys.entry(program, last.entry_id))
    available = state.available - last.delta(Account.AVAILABLE)
    restored = state.model_copy(update={"available": available, "seq": before.seq, "head": before.hash})
    _put(services, account_item(restored))
    for move in last.lots:
        lot = next(lot for lot in lots_now if lot.lot_id == move.lot_id)
        _put(services, lot_item(lot.model_copy(update={"remaining": lot.remaining - move.amount})))


def _put(services: Services, item: dict[str, Any]) -> None:
    """A plain write, as anyone with dynamodb:PutItem on the table may make it."""
    services.table.client.put_item(TableName=services.table.name, Item=item)
