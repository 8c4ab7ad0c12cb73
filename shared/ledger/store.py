"""The ledger's items in the one table: balances, lots, holds, pending earns, entries (`LedgerStore`).

A member's balance, holds and lots of one program share a partition and sort together
(BAL < HOLD < LOT), so one Query reads everything a debit needs. Entries live in their own
partitions: the entry's key is its idempotency key, checked by a conditional put in the same
transaction as the balance, permanently, whoever the member is. Key formats: `shared.infra.keys`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.infra import keys
from shared.infra.codec import maybe_ts, parse_ts, to_item, ts
from shared.infra.table import TransactionCanceledError
from shared.ledger.contract import (
    CheckFailedError,
    ConcurrentUpdateError,
    EntryExistsError,
    GuardRefusedError,
    TallyChangedError,
)
from shared.ledger.models import AccountState, Entry, Hold, Lot, PendingEarn

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from shared.infra.table import Table
    from shared.ledger.contract import Change, Guard, Tally

# A lot written with an expiry already behind the expiry job's progress (points restored after
# their date, a back-dated earn) would never be met by the job's walk, which starts where the last
# run stopped. So the index holds a lot's DUE time: its expiry, or shortly after it was written if
# that is later. The margin covers a write that commits a little after its clock was read while a
# run is walking past that time. The lot's `expires_at` stays the true date the ledger checks.
LATE_LOT_MARGIN = timedelta(minutes=5)


def lot_due(expires_at: datetime, written_at: datetime | None) -> datetime:
    return expires_at if written_at is None else max(expires_at, written_at + LATE_LOT_MARGIN)


class DynamoLedgerStore:
    """Implements `shared.ledger.contract.LedgerStore` on the table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # Reads

    def get_account(self, program: str, member: str) -> AccountState | None:
        item = self.table.get(keys.balance(program, member))
        return account_from(item) if item else None

    def get_account_and_lots(
        self, program: str, member: str, until: datetime | None = None
    ) -> tuple[AccountState | None, list[Lot]]:
        """The member's balance and lots (those whose own expiry is at or before `until`, if given): one Query.

        The balance sorts first in the member's partition (BAL < HOLD < LOT), so the range from it to
        the last lot reads none of what sorts after the lots and grows with history (daily tallies,
        tier log, pending earns).
        """
        first = keys.balance(program, member)
        state: AccountState | None = None
        lots: list[Lot] = []
        for item in self.table.query(
            KeyConditionExpression="PK = :pk AND SK BETWEEN :first AND :last",
            ExpressionAttributeValues=to_item(
                {":pk": first.pk, ":first": first.sk, ":last": keys.lots_through(program, until)}
            ),
            ConsistentRead=True,
        ):
            if item["type"] == "balance":
                state = account_from(item)
            elif item["type"] == "lot":
                lots.append(lot_from(item))
        return state, lots

    def get_entry(self, program: str, entry_id: str) -> Entry | None:
        item = self.table.get(keys.entry(program, entry_id))
        return Entry.model_validate_json(item["body"]) if item else None

    def get_entries(self, program: str, entry_ids: Sequence[str]) -> dict[str, Entry]:
        """Entries by id (one BatchGetItem per 100 ids); ids with no entry are left out."""
        found = self.table.batch_get([keys.entry(program, entry_id) for entry_id in entry_ids], consistent=False)
        entries = (Entry.model_validate_json(item["body"]) for item in found.values())
        return {entry.entry_id: entry for entry in entries}

    def get_hold(self, program: str, member: str, hold_id: str) -> Hold | None:
        item = self.table.get(keys.hold(program, member, hold_id))
        return Hold.model_validate_json(item["body"]) if item else None

    def get_pending(self, program: str, member: str, entry_id: str) -> PendingEarn | None:
        item = self.table.get(keys.pending(program, member, entry_id))
        return pending_from(item) if item else None

    def get_pending_earns(self, program: str, member: str) -> list[PendingEarn]:
        """The open pending earns a member holds (one Query of its partition)."""
        return [pending_from(i) for i in self.table.partition(keys.member_pk(member), keys.pending_prefix(program))]

    def get_holds(self, program: str, member: str) -> list[Hold]:
        """The open holds of a member (one Query of its partition; a merge moves them)."""
        return [
            Hold.model_validate_json(i["body"])
            for i in self.table.partition(keys.member_pk(member), keys.holds_prefix(program))
        ]

    def entries(self, program: str, member: str, after_seq: int = 0, limit: int | None = None) -> list[Entry]:
        """A member's entries in chain order (the account history index)."""
        found: list[Entry] = []
        for item in self.table.query(
            IndexName="GSI2",
            KeyConditionExpression="GSI2PK = :pk AND GSI2SK > :after",
            ExpressionAttributeValues=to_item(
                {":pk": keys.account_history_pk(program, member), ":after": keys.history_sk(after_seq)}
            ),
        ):
            found.append(Entry.model_validate_json(item["body"]))
            if limit is not None and len(found) >= limit:
                break
        return found

    def audit_records(self) -> tuple[list[Entry], list[AccountState], list[Lot], list[Hold], list[PendingEarn]]:
        """Everything `shared.ledger.audit.audit` checks, open pending earns included (one scan)."""
        entries: list[Entry] = []
        accounts: list[AccountState] = []
        lots: list[Lot] = []
        holds: list[Hold] = []
        pending: list[PendingEarn] = []
        for item in self.table.scan():
            kind = item.get("type")
            if kind == "entry":
                entries.append(Entry.model_validate_json(item["body"]))
            elif kind == "balance":
                accounts.append(account_from(item))
            elif kind == "lot":
                lots.append(lot_from(item))
            elif kind == "hold":
                holds.append(Hold.model_validate_json(item["body"]))
            elif kind == "pending":
                pending.append(pending_from(item))
        return entries, accounts, lots, holds, pending

    def accounts(self) -> Iterator[AccountState]:
        """Every member account's balance (with its chain head): one scan of the table."""
        for item in self.table.scan():
            if item.get("type") == "balance":
                yield account_from(item)

    def ledger_records(self) -> tuple[list[Entry], list[AccountState], list[Lot], list[Hold]]:
        entries, accounts, lots, holds, _ = self.audit_records()
        return entries, accounts, lots, holds

    # Writes

    def commit(self, change: Change) -> None:
        try:
            self.table.transact(transaction_items(self.table.name, change))
        except TransactionCanceledError as error:
            raise _cause(change, error.reasons) from error


def _cause(change: Change, reasons: list[str]) -> Exception:
    """Which part of the change refused it: the transaction's items are in a fixed order."""
    failed = "ConditionalCheckFailed"
    if any(code == failed for code in reasons[: len(change.entries)]):
        return EntryExistsError(change.entries[0].entry_id)
    # Guards come after tallies, last in the transaction; a failed one is a limit, not a race.
    guard_reasons = reasons[len(reasons) - len(change.guards) :] if change.guards else []
    for guard, code in zip(change.guards, guard_reasons, strict=False):
        if code == failed:
            return GuardRefusedError(guard)
    tally_end = len(reasons) - len(change.guards)
    tally_start = tally_end - len(change.tallies)
    if change.tallies and any(code == failed for code in reasons[tally_start:tally_end]):
        return TallyChangedError()
    # Checks sit just before the tallies.
    check_reasons = reasons[tally_start - len(change.checks) : tally_start] if change.checks else []
    for check, code in zip(change.checks, check_reasons, strict=False):
        if code == failed:
            return CheckFailedError(check)
    return ConcurrentUpdateError()


def _put_new(table: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(PK)"}}


def _key(key: keys.ItemKey) -> dict[str, Any]:
    return to_item({"PK": key.pk, "SK": key.sk})


def transaction_items(table: str, change: Change) -> list[Any]:
    """The TransactWriteItems request for a change: entries, balances, lots, holds, pending earns,
    marks, then checks, tallies and guards (in that order: `_cause` reads the cancellation reasons by
    position; marks are unconditional, so they never cancel one)."""
    items: list[Any] = [_put_new(table, entry_item(entry)) for entry in change.entries]
    for state, expected_seq in change.accounts:
        put: dict[str, Any] = {"TableName": table, "Item": account_item(state)}
        if expected_seq == 0:
            put["ConditionExpression"] = "attribute_not_exists(PK)"
        else:
            put["ConditionExpression"] = "#seq = :expected"
            put["ExpressionAttributeNames"] = {"#seq": "seq"}
            put["ExpressionAttributeValues"] = to_item({":expected": expected_seq})
        items.append({"Put": put})
    written = {entry.entry_id: entry.recorded_at for entry in change.entries}
    items.extend(_put_new(table, lot_item(lot, written.get(lot.origin))) for lot in change.lots_created)
    for lot, before in change.lots_updated:
        key = keys.lot(lot.program, lot.member, lot.expires_at, lot.lot_id)
        update = {
            "TableName": table,
            "Key": _key(key),
            "UpdateExpression": "SET remaining = :after",
            "ConditionExpression": "remaining = :before",
            "ExpressionAttributeValues": to_item({":after": lot.remaining, ":before": before}),
        }
        items.append({"Update": update})
    for lot, before in change.lots_deleted:
        key = keys.lot(lot.program, lot.member, lot.expires_at, lot.lot_id)
        delete = {
            "TableName": table,
            "Key": _key(key),
            "ConditionExpression": "remaining = :before",
            "ExpressionAttributeValues": to_item({":before": before}),
        }
        items.append({"Delete": delete})
    if change.hold_created is not None:
        items.append(_put_new(table, hold_item(change.hold_created)))
    if change.hold_deleted is not None:
        hold = change.hold_deleted
        items.append(_delete(table, keys.hold(hold.program, hold.member, hold.hold_id)))
    for pending in change.pending_deleted:
        items.append(_delete(table, keys.pending(pending.program, pending.member, pending.entry_id)))
    items.extend(_put_new(table, pending_item(pending)) for pending in change.pending_created)
    for old, new in change.holds_moved:
        items.append(_delete(table, keys.hold(old.program, old.member, old.hold_id)))
        items.append(_put_new(table, hold_item(new)))
    for mark in change.marks:
        names = {f"#m{n}": name for n, (name, _) in enumerate(mark.values)}
        values = {f":m{n}": value for n, (_, value) in enumerate(mark.values)}
        update = {
            "TableName": table,
            "Key": _key(mark.key),
            "UpdateExpression": "SET " + ", ".join(f"#m{n} = :m{n}" for n in range(len(mark.values))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item(values),
        }
        items.append({"Update": update})
    for check in change.checks:
        condition: dict[str, Any] = {
            "TableName": table,
            "Key": _key(check.key),
            "ConditionExpression": "attribute_not_exists(#a)",
            "ExpressionAttributeNames": {"#a": check.attribute},
        }
        if check.value is not None:
            condition["ConditionExpression"] = "attribute_not_exists(#a) OR #a <> :v"
            condition["ExpressionAttributeValues"] = to_item({":v": check.value})
        items.append({"ConditionCheck": condition})
    items.extend({"Update": tally_update(table, tally)} for tally in change.tallies)
    items.extend(guard_update(table, guard) for guard in change.guards)
    return items


def _delete(table: str, key: keys.ItemKey) -> dict[str, Any]:
    return {"Delete": {"TableName": table, "Key": _key(key), "ConditionExpression": "attribute_exists(PK)"}}


def tally_update(table: str, tally: Tally) -> dict[str, Any]:
    """A tally's ADD (its value, its set's new mark, its named counters), guarded by `expected` if set."""
    adds = ["#v :add"] + (["marks :mark"] if tally.mark else [])
    values: dict[str, Any] = {":add": tally.add, ":type": "tally"}
    names = {"#v": "value", "#type": "type"}
    if tally.mark:
        values[":mark"] = {tally.mark}
    for n, (counter, amount) in enumerate(tally.counters):
        adds.append(f"#c{n} :c{n}")
        names[f"#c{n}"] = counter
        values[f":c{n}"] = amount
    removes = []
    for n, counter in enumerate(tally.drop):
        removes.append(f"#d{n}")
        names[f"#d{n}"] = counter
    expression = "SET #type = :type ADD " + ", ".join(adds) + (" REMOVE " + ", ".join(removes) if removes else "")
    update: dict[str, Any] = {
        "TableName": table,
        "Key": _key(keys.tally(tally.program, tally.member, tally.name)),
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
    }
    if tally.expected is not None:
        values[":expected"] = tally.expected
        update["ConditionExpression"] = (
            "attribute_not_exists(#v) OR #v = :expected" if tally.expected == 0 else "#v = :expected"
        )
    update["ExpressionAttributeValues"] = to_item(values)
    return update


def guard_update(table: str, guard: Guard) -> dict[str, Any]:
    """An ADD to a counter item, conditional on the result staying within the guard's limit."""
    if guard.limit is not None and guard.amount > guard.limit:
        raise GuardRefusedError(guard)  # no counter value could allow it; the condition would miss this
    values: dict[str, Any] = {":amount": guard.amount, ":type": "counter"}
    update: dict[str, Any] = {
        "TableName": table,
        "Key": _key(guard.key),
        "UpdateExpression": "ADD #n :amount SET #t = :type",
        "ExpressionAttributeNames": {"#n": "used", "#t": "type"},
    }
    if guard.limit is not None:
        update["ConditionExpression"] = "attribute_not_exists(#n) OR #n <= :ceiling"
        values[":ceiling"] = guard.limit - guard.amount
    update["ExpressionAttributeValues"] = to_item(values)
    return {"Update": update}


# Item codecs: the stored shape of each ledger record.


def entry_item(entry: Entry) -> dict[str, Any]:
    key = keys.entry(entry.program, entry.entry_id)
    return to_item(
        {
            "PK": key.pk,
            "SK": key.sk,
            "type": "entry",
            "GSI2PK": keys.account_history_pk(entry.program, entry.member),
            "GSI2SK": keys.history_sk(entry.seq),
            "body": entry.model_dump_json(),
        }
    )


def account_item(state: AccountState) -> dict[str, Any]:
    key = keys.balance(state.program, state.member)
    return to_item(
        {
            "PK": key.pk,
            "SK": key.sk,
            "type": "balance",
            "program": state.program,
            "member": state.member,
            "available": state.available,
            "pending": state.pending,
            "held": state.held,
            "debt": state.debt or None,
            "merged_into": state.merged_into or None,
            "seq": state.seq,
            "head": state.head,
            "updated_at": ts(state.updated_at) if state.updated_at else None,
            "active_at": ts(state.active_at) if state.active_at else None,
        }
    )


def account_from(item: dict[str, Any]) -> AccountState:
    return AccountState(
        program=item["program"],
        member=item["member"],
        available=int(item["available"]),
        pending=int(item["pending"]),
        held=int(item["held"]),
        debt=int(item.get("debt", 0)),
        merged_into=str(item.get("merged_into", "")),
        seq=int(item["seq"]),
        head=item["head"],
        updated_at=maybe_ts(item.get("updated_at")),
        active_at=maybe_ts(item.get("active_at")),
    )


def lot_item(lot: Lot, written_at: datetime | None = None) -> dict[str, Any]:
    key = keys.lot(lot.program, lot.member, lot.expires_at, lot.lot_id)
    due = lot_due(min(lot.expires_at, lot.due_at or lot.expires_at), written_at)
    return to_item(
        {
            "PK": key.pk,
            "SK": key.sk,
            "type": "lot",
            "program": lot.program,
            "member": lot.member,
            "lot_id": lot.lot_id,
            "expires_at": ts(lot.expires_at),
            "remaining": lot.remaining,
            "origin": lot.origin,
            **keys.expiry_index(lot.program, lot.member, lot.lot_id, due)._asdict(),
        }
    )


def lot_from(item: dict[str, Any]) -> Lot:
    return Lot(
        program=item["program"],
        member=item["member"],
        lot_id=item["lot_id"],
        expires_at=parse_ts(item["expires_at"]),
        remaining=int(item["remaining"]),
        origin=item["origin"],
    )


def hold_item(hold: Hold) -> dict[str, Any]:
    key = keys.hold(hold.program, hold.member, hold.hold_id)
    return to_item(
        {
            "PK": key.pk,
            "SK": key.sk,
            "type": "hold",
            "body": hold.model_dump_json(),
            **keys.hold_index(hold.program, hold.member, hold.hold_id, hold.lapses_at)._asdict(),
        }
    )


def pending_item(pending: PendingEarn) -> dict[str, Any]:
    """An open pending earn; indexed by the day it may activate, unless only a request activates it."""
    key = keys.pending(pending.program, pending.member, pending.entry_id)
    until = pending.until
    index = keys.pending_index(pending.program, pending.member, pending.entry_id, until)._asdict() if until else {}
    return to_item(
        {
            "PK": key.pk,
            "SK": key.sk,
            "type": "pending",
            "program": pending.program,
            "member": pending.member,
            "entry_id": pending.entry_id,
            "points": pending.points,
            "expires_at": ts(pending.expires_at),
            "until": ts(pending.until) if pending.until else None,
            "held_for": pending.held_for or None,
            **index,
        }
    )


def pending_from(item: dict[str, Any]) -> PendingEarn:
    return PendingEarn(
        program=item["program"],
        member=item["member"],
        entry_id=item["entry_id"],
        points=int(item["points"]),
        expires_at=parse_ts(item["expires_at"]),
        until=maybe_ts(item.get("until")),
        held_for=item.get("held_for", ""),
    )
