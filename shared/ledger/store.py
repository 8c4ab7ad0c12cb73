"""The single-table DynamoDB store: the only domain module that talks to DynamoDB.

| item            | PK                       | SK                                   | indexes                          |
|-----------------|--------------------------|--------------------------------------|----------------------------------|
| member balance  | M#<member>               | P#<program>#BAL                      |                                  |
| lot             | M#<member>               | P#<program>#LOT#<expires>#<lot id>   | GSI1 X#<program>#<due date>      |
| hold            | M#<member>               | P#<program>#HOLD#<hold id>           | GSI1 H#<program>#<lapse date>    |
| pending earn    | M#<holder>               | P#<program>#PEND#<entry id>          | GSI1 N#<program>#<until date>    |
| entry           | E#<program>#<entry id>   | E                                    | GSI2 A#<program>#<member> / seq  |
| program config  | P#<program>              | CFG#<version> and LIVE               |                                  |

A member's balance, holds and lots of one program share a partition and sort together
(BAL < HOLD < LOT), so one Query reads everything a debit needs. Entries live in their own
partitions: the entry's key is its idempotency key, checked by a conditional put in the same
transaction as the balance, permanently, whoever the member is.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from shared.errors import ConfigError, UnknownProgramError
from shared.infra import aws
from shared.infra.settings import get_settings
from shared.ledger.contract import (
    Change,
    Check,
    CheckFailedError,
    ConcurrentUpdateError,
    EntryExistsError,
    GuardRefusedError,
    Tally,
    TallyChangedError,
)
from shared.ledger.models import AccountState, Entry, Hold, Lot, PendingEarn
from shared.members.view import REFERRAL_AWAITING, REFERRAL_PAID, MemberView, Referral, Tallied
from shared.program.config import ProgramConfig
from shared.projections.figures import ALL, SHARDS, TIERS, shard_of, tier_count_change

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from shared.ledger.contract import Guard

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
CONFIG_CACHE_SECONDS = 30.0


def _ts(value: datetime) -> str:
    """A sortable UTC timestamp: every key that holds a time uses this one format."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def member_pk(member: str) -> str:
    return f"M#{member}"


def balance_sk(program: str) -> str:
    return f"P#{program}#BAL"


def lot_sk(program: str, expires_at: datetime, lot_id: str) -> str:
    return f"P#{program}#LOT#{_ts(expires_at)}#{lot_id}"


def hold_sk(program: str, hold_id: str) -> str:
    return f"P#{program}#HOLD#{hold_id}"


def entry_pk(program: str, entry_id: str) -> str:
    return f"E#{program}#{entry_id}"


def account_history_pk(program: str, member: str) -> str:
    return f"A#{program}#{member}"


def expiry_index_pk(program: str, day: str) -> str:
    return f"X#{program}#{day}"


# A lot written with an expiry already behind the expiry job's progress (points restored after
# their date, a back-dated earn) would never be met by the job's walk, which starts where the last
# run stopped. So the index holds a lot's DUE time: its expiry, or shortly after it was written if
# that is later. The margin covers a write that commits a little after its clock was read while a
# run is walking past that time. The lot's `expires_at` stays the true date the ledger checks.
LATE_LOT_MARGIN = timedelta(minutes=5)


def lot_due(expires_at: datetime, written_at: datetime | None) -> datetime:
    return expires_at if written_at is None else max(expires_at, written_at + LATE_LOT_MARGIN)


def expiry_index_keys(program: str, member: str, lot_id: str, due: datetime) -> dict[str, str]:
    """Where the expiry and reminder jobs find a lot: its due time's UTC day, then that time."""
    return {"GSI1PK": expiry_index_pk(program, _ts(due)[:10]), "GSI1SK": f"{_ts(due)}#{member}#{lot_id}"}


def pending_sk(program: str, entry_id: str) -> str:
    return f"P#{program}#PEND#{entry_id}"


def pending_index_pk(program: str, day: str) -> str:
    return f"N#{program}#{day}"


@dataclass
class RequestStats:
    """What this store asked of DynamoDB: requests by operation and the capacity DynamoDB reported."""

    requests: Counter[str] = field(default_factory=Counter)
    items_read: int = 0  # items returned by Query, Scan and GetItem: what jobs are judged on
    reported_wcu: float = 0.0
    reported_rcu: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, operation: str, response: dict[str, Any]) -> None:
        consumed = response.get("ConsumedCapacity")
        entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        with self._lock:
            self.requests[operation] += 1
            self.items_read += len(response.get("Items", [])) + (1 if response.get("Item") else 0)
            for c in entries:
                self.reported_wcu += float(c.get("WriteCapacityUnits", 0) or 0)
                self.reported_rcu += float(c.get("ReadCapacityUnits", 0) or 0)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.items_read = 0
            self.reported_wcu = self.reported_rcu = 0.0


class DynamoStore:
    """Implements `shared.ledger.LedgerStore` on one DynamoDB table."""

    def __init__(self, table: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.table = table or get_settings().table_name
        self._client = client
        self.stats = RequestStats()

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.dynamodb()
        return self._client

    # Reads

    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        """One item by key, read consistently, as plain Python values."""
        response = self.client.get_item(
            TableName=self.table, Key=_item({"PK": pk, "SK": sk}), ConsistentRead=True, ReturnConsumedCapacity="TOTAL"
        )
        self.stats.record("GetItem", dict(response))
        item = response.get("Item")
        return _plain(item) if item else None

    def get_account(self, program: str, member: str) -> AccountState | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=_item({"PK": member_pk(member), "SK": balance_sk(program)}),
            ConsistentRead=True,
            ReturnConsumedCapacity="TOTAL",
        )
        self.stats.record("GetItem", dict(response))
        item = response.get("Item")
        return _account(_plain(item)) if item else None

    def get_account_and_lots(
        self, program: str, member: str, until: datetime | None = None
    ) -> tuple[AccountState | None, list[Lot]]:
        """The member's balance and lots (those whose own expiry is at or before `until`, if given): one Query.

        The balance sorts first in the member's partition (BAL < HOLD < LOT), so the range from it to
        the last lot reads none of what sorts after the lots and grows with history (daily tallies,
        tier log, pending earns).
        """
        last_lot = f"P#{program}#LOT#{_ts(until)}~" if until is not None else f"P#{program}#LOT#~"
        state: AccountState | None = None
        lots: list[Lot] = []
        for item in self._query(
            KeyConditionExpression="PK = :pk AND SK BETWEEN :first AND :last",
            ExpressionAttributeValues=_item(
                {":pk": member_pk(member), ":first": balance_sk(program), ":last": last_lot}
            ),
            ConsistentRead=True,
        ):
            if item["type"] == "balance":
                state = _account(item)
            elif item["type"] == "lot":
                lots.append(_lot(item))
        return state, lots

    def get_entry(self, program: str, entry_id: str) -> Entry | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=_item({"PK": entry_pk(program, entry_id), "SK": "E"}),
            ConsistentRead=True,
            ReturnConsumedCapacity="TOTAL",
        )
        self.stats.record("GetItem", dict(response))
        item = response.get("Item")
        return Entry.model_validate_json(_plain(item)["body"]) if item else None

    def get_hold(self, program: str, member: str, hold_id: str) -> Hold | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=_item({"PK": member_pk(member), "SK": hold_sk(program, hold_id)}),
            ConsistentRead=True,
            ReturnConsumedCapacity="TOTAL",
        )
        self.stats.record("GetItem", dict(response))
        item = response.get("Item")
        return Hold.model_validate_json(_plain(item)["body"]) if item else None

    def get_pending(self, program: str, member: str, entry_id: str) -> PendingEarn | None:
        item = self.get_item(member_pk(member), pending_sk(program, entry_id))
        return _pending(item) if item else None

    def get_pending_earns(self, program: str, member: str) -> list[PendingEarn]:
        """The open pending earns a member holds (one Query of its partition)."""
        return [
            _pending(item)
            for item in self._query(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
                ExpressionAttributeValues=_item({":pk": member_pk(member), ":prefix": f"P#{program}#PEND#"}),
                ConsistentRead=True,
            )
        ]

    def get_holds(self, program: str, member: str) -> list[Hold]:
        """The open holds of a member (one Query of its partition; a merge moves them)."""
        return [
            Hold.model_validate_json(item["body"])
            for item in self._query(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
                ExpressionAttributeValues=_item({":pk": member_pk(member), ":prefix": f"P#{program}#HOLD#"}),
                ConsistentRead=True,
            )
        ]

    def entries(self, program: str, member: str, after_seq: int = 0, limit: int | None = None) -> list[Entry]:
        """A member's entries in chain order (the account history index)."""
        found: list[Entry] = []
        for item in self._query(
            IndexName="GSI2",
            KeyConditionExpression="GSI2PK = :pk AND GSI2SK > :after",
            ExpressionAttributeValues=_item(
                {":pk": account_history_pk(program, member), ":after": f"{after_seq:012d}"}
            ),
        ):
            found.append(Entry.model_validate_json(item["body"]))
            if limit is not None and len(found) >= limit:
                break
        return found

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every item, for the audit and snapshots. Costs a full read of the table."""
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self.client.scan(**kwargs)
            self.stats.record("Scan", dict(page))
            for item in page.get("Items", []):
                yield _plain(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def ledger_records(self) -> tuple[list[Entry], list[AccountState], list[Lot], list[Hold]]:
        entries, accounts, lots, holds, _ = self.audit_records()
        return entries, accounts, lots, holds

    def audit_records(
        self,
    ) -> tuple[list[Entry], list[AccountState], list[Lot], list[Hold], list[PendingEarn]]:
        """Everything `shared.audit.audit` checks, open pending earns included (one scan)."""
        entries: list[Entry] = []
        accounts: list[AccountState] = []
        lots: list[Lot] = []
        holds: list[Hold] = []
        pending: list[PendingEarn] = []
        for item in self.scan():
            kind = item.get("type")
            if kind == "entry":
                entries.append(Entry.model_validate_json(item["body"]))
            elif kind == "balance":
                accounts.append(_account(item))
            elif kind == "lot":
                lots.append(_lot(item))
            elif kind == "hold":
                holds.append(Hold.model_validate_json(item["body"]))
            elif kind == "pending":
                pending.append(_pending(item))
        return entries, accounts, lots, holds, pending

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs = {"TableName": self.table, "ReturnConsumedCapacity": "TOTAL", **kwargs}
        while True:
            page = self.client.query(**kwargs)
            self.stats.record("Query", dict(page))
            for item in page.get("Items", []):
                yield _plain(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # Writes

    def commit(self, change: Change) -> None:
        items = transaction_items(self.table, change)
        try:
            response = self.client.transact_write_items(TransactItems=items, ReturnConsumedCapacity="TOTAL")
        except ClientError as error:
            self.stats.record("TransactWriteItems", {})
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
            entry_count = len(change.entries)
            if any(code == "ConditionalCheckFailed" for code in reasons[:entry_count]):
                raise EntryExistsError(change.entries[0].entry_id) from error
            # Guards come after tallies, last in the transaction; a failed one is a limit, not a race.
            guard_reasons = reasons[len(reasons) - len(change.guards) :] if change.guards else []
            for guard, code in zip(change.guards, guard_reasons, strict=False):
                if code == "ConditionalCheckFailed":
                    raise GuardRefusedError(guard) from error
            tally_end = len(reasons) - len(change.guards)
            tally_start = tally_end - len(change.tallies)
            tally_reasons = reasons[tally_start:tally_end] if change.tallies else []
            if any(code == "ConditionalCheckFailed" for code in tally_reasons):
                raise TallyChangedError() from error
            # Checks sit just before the tallies.
            check_reasons = reasons[tally_start - len(change.checks) : tally_start] if change.checks else []
            for check, code in zip(change.checks, check_reasons, strict=False):
                if code == "ConditionalCheckFailed":
                    raise CheckFailedError(check) from error
            if not reasons or any(code in ("ConditionalCheckFailed", "TransactionConflict") for code in reasons):
                raise ConcurrentUpdateError() from error
            raise
        self.stats.record("TransactWriteItems", dict(response))


def transaction_items(table: str, change: Change) -> list[TransactWriteItemTypeDef]:
    """The TransactWriteItems request for a change: the entry, the balance, then lots and holds."""
    items: list[Any] = []
    for entry in change.entries:
        items.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": entry_item(entry),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        )
    for state, expected_seq in change.accounts:
        put: dict[str, Any] = {"TableName": table, "Item": account_item(state)}
        if expected_seq == 0:
            put["ConditionExpression"] = "attribute_not_exists(PK)"
        else:
            put["ConditionExpression"] = "#seq = :expected"
            put["ExpressionAttributeNames"] = {"#seq": "seq"}
            put["ExpressionAttributeValues"] = _item({":expected": expected_seq})
        items.append({"Put": put})
    written = {entry.entry_id: entry.recorded_at for entry in change.entries}
    for lot in change.lots_created:
        items.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": lot_item(lot, written.get(lot.origin)),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        )
    for lot, before in change.lots_updated:
        items.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": _item({"PK": member_pk(lot.member), "SK": lot_sk(lot.program, lot.expires_at, lot.lot_id)}),
                    "UpdateExpression": "SET remaining = :after",
                    "ConditionExpression": "remaining = :before",
                    "ExpressionAttributeValues": _item({":after": lot.remaining, ":before": before}),
                }
            }
        )
    for lot, before in change.lots_deleted:
        items.append(
            {
                "Delete": {
                    "TableName": table,
                    "Key": _item({"PK": member_pk(lot.member), "SK": lot_sk(lot.program, lot.expires_at, lot.lot_id)}),
                    "ConditionExpression": "remaining = :before",
                    "ExpressionAttributeValues": _item({":before": before}),
                }
            }
        )
    if change.hold_created is not None:
        items.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": hold_item(change.hold_created),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        )
    if change.hold_deleted is not None:
        hold = change.hold_deleted
        items.append(
            {
                "Delete": {
                    "TableName": table,
                    "Key": _item({"PK": member_pk(hold.member), "SK": hold_sk(hold.program, hold.hold_id)}),
                    "ConditionExpression": "attribute_exists(PK)",
                }
            }
        )
    for pending in change.pending_deleted:
        key = {"PK": member_pk(pending.member), "SK": pending_sk(pending.program, pending.entry_id)}
        items.append({"Delete": {"TableName": table, "Key": _item(key), "ConditionExpression": "attribute_exists(PK)"}})
    for pending in change.pending_created:
        items.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": pending_item(pending),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        )
    for old, new in change.holds_moved:
        key = {"PK": member_pk(old.member), "SK": hold_sk(old.program, old.hold_id)}
        items.append({"Delete": {"TableName": table, "Key": _item(key), "ConditionExpression": "attribute_exists(PK)"}})
        items.append(
            {"Put": {"TableName": table, "Item": hold_item(new), "ConditionExpression": "attribute_not_exists(PK)"}}
        )
    # Checks, tallies, then guards go last: commit() finds their cancellation reasons at the end.
    for check in change.checks:
        items.append(
            {
                "ConditionCheck": {
                    "TableName": table,
                    "Key": _item({"PK": check.pk, "SK": check.sk}),
                    "ConditionExpression": "attribute_not_exists(#a)",
                    "ExpressionAttributeNames": {"#a": check.attribute},
                }
            }
        )
    items.extend({"Update": tally_update(table, tally)} for tally in change.tallies)
    items.extend(guard_item(table, guard) for guard in change.guards)
    return items


def tally_sk(program: str, name: str) -> str:
    return f"P#{program}#T#{name}"


def tally_update(table: str, tally: Tally) -> dict[str, Any]:
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
        "Key": _item({"PK": member_pk(tally.member), "SK": tally_sk(tally.program, tally.name)}),
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
    }
    if tally.expected is not None:
        values[":expected"] = tally.expected
        update["ConditionExpression"] = (
            "attribute_not_exists(#v) OR #v = :expected" if tally.expected == 0 else "#v = :expected"
        )
    update["ExpressionAttributeValues"] = _item(values)
    return update


def entry_item(entry: Entry) -> dict[str, Any]:
    return _item(
        {
            "PK": entry_pk(entry.program, entry.entry_id),
            "SK": "E",
            "type": "entry",
            "GSI2PK": account_history_pk(entry.program, entry.member),
            "GSI2SK": f"{entry.seq:012d}",
            "body": entry.model_dump_json(),
        }
    )


def account_item(state: AccountState) -> dict[str, Any]:
    return _item(
        {
            "PK": member_pk(state.member),
            "SK": balance_sk(state.program),
            "type": "balance",
            "program": state.program,
            "member": state.member,
            "available": state.available,
            "pending": state.pending,
            "held": state.held,
            "merged_into": state.merged_into or None,
            "seq": state.seq,
            "head": state.head,
            "updated_at": _ts(state.updated_at) if state.updated_at else None,
            "active_at": _ts(state.active_at) if state.active_at else None,
        }
    )


def lot_item(lot: Lot, written_at: datetime | None = None) -> dict[str, Any]:
    return _item(
        {
            "PK": member_pk(lot.member),
            "SK": lot_sk(lot.program, lot.expires_at, lot.lot_id),
            "type": "lot",
            "program": lot.program,
            "member": lot.member,
            "lot_id": lot.lot_id,
            "expires_at": _ts(lot.expires_at),
            "remaining": lot.remaining,
            "origin": lot.origin,
            **expiry_index_keys(
                lot.program,
                lot.member,
                lot.lot_id,
                lot_due(min(lot.expires_at, lot.due_at or lot.expires_at), written_at),
            ),
        }
    )


def hold_item(hold: Hold) -> dict[str, Any]:
    return _item(
        {
            "PK": member_pk(hold.member),
            "SK": hold_sk(hold.program, hold.hold_id),
            "type": "hold",
            "body": hold.model_dump_json(),
            "GSI1PK": f"H#{hold.program}#{_ts(hold.lapses_at)[:10]}",
            "GSI1SK": f"{_ts(hold.lapses_at)}#{hold.member}#{hold.hold_id}",
        }
    )


def pending_item(pending: PendingEarn) -> dict[str, Any]:
    """An open pending earn; indexed by the day it may activate, unless only a request activates it."""
    until = _ts(pending.until) if pending.until else None
    return _item(
        {
            "PK": member_pk(pending.member),
            "SK": pending_sk(pending.program, pending.entry_id),
            "type": "pending",
            "program": pending.program,
            "member": pending.member,
            "entry_id": pending.entry_id,
            "points": pending.points,
            "expires_at": _ts(pending.expires_at),
            "until": until,
            "held_for": pending.held_for or None,
            "GSI1PK": pending_index_pk(pending.program, until[:10]) if until else None,
            "GSI1SK": f"{until}#{pending.member}#{pending.entry_id}" if until else None,
        }
    )


def _pending(item: dict[str, Any]) -> PendingEarn:
    until = item.get("until")
    return PendingEarn(
        program=item["program"],
        member=item["member"],
        entry_id=item["entry_id"],
        points=int(item["points"]),
        expires_at=datetime.strptime(item["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        until=datetime.strptime(until, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if until else None,
        held_for=item.get("held_for", ""),
    )


def _account(item: dict[str, Any]) -> AccountState:
    updated = item.get("updated_at")
    active = item.get("active_at")
    return AccountState(
        program=item["program"],
        member=item["member"],
        available=int(item["available"]),
        pending=int(item["pending"]),
        held=int(item["held"]),
        merged_into=str(item.get("merged_into", "")),
        seq=int(item["seq"]),
        head=item["head"],
        updated_at=datetime.strptime(updated, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if updated else None,
        active_at=datetime.strptime(active, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if active else None,
    )


def _lot(item: dict[str, Any]) -> Lot:
    return Lot(
        program=item["program"],
        member=item["member"],
        lot_id=item["lot_id"],
        expires_at=datetime.strptime(item["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        remaining=int(item["remaining"]),
        origin=item["origin"],
    )


class ProgramRepository:
    """Versioned program configs: CFG#<version> items and a LIVE pointer, cached per process."""

    def __init__(
        self,
        store: DynamoStore,
        cache_seconds: float = CONFIG_CACHE_SECONDS,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cache: dict[str, tuple[float, ProgramConfig]] = {}
        self._cache_seconds = cache_seconds

    def get(self, program: str) -> ProgramConfig:
        cached = self._cache.get(program)
        if cached and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        response = self._store.client.get_item(
            TableName=self._store.table, Key=_item({"PK": f"P#{program}", "SK": "LIVE"})
        )
        self._store.stats.record("GetItem", dict(response))
        item = response.get("Item")
        if not item:
            raise UnknownProgramError(f"no program {program!r}", program=program)
        config = ProgramConfig.model_validate_json(_plain(item)["body"])
        self._cache[program] = (time.monotonic(), config)
        return config

    def publish(self, config: ProgramConfig) -> ProgramConfig:
        """Store a new version and make it live, unless that version number is taken."""
        body = config.model_dump_json()
        pk = f"P#{config.program}"
        try:
            self._store.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._store.table,
                            "Item": _item(
                                {
                                    "PK": pk,
                                    "SK": f"CFG#{config.version:06d}",
                                    "type": "config",
                                    "body": body,
                                    # The first version's time is when the scheduled jobs start looking.
                                    "published_at": _ts(self._clock()),
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._store.table,
                            "Item": _item(
                                {
                                    "PK": pk,
                                    "SK": "LIVE",
                                    "type": "live_config",
                                    "version": config.version,
                                    "body": body,
                                    # Lists live programs for the scheduled jobs (GSI1 PROGRAMS).
                                    "GSI1PK": "PROGRAMS",
                                    "GSI1SK": config.program,
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(PK) OR version < :v",
                            "ExpressionAttributeValues": _item({":v": config.version}),
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                raise ConfigError(
                    f"version {config.version} of {config.program} exists or is older than the live one"
                ) from error
            raise
        self._cache.pop(config.program, None)
        return config


# === Members and identities (channels) ===
#
# | item                  | PK                          | SK                          | indexes                       |
# |-----------------------|-----------------------------|-----------------------------|-------------------------------|
# | identity link         | ID#<kind>[#<scope>]#<value> | ID                          |                               |
# | member profile        | M#<member>                  | PROFILE                     |                               |
# | tally (counter, set)  | M#<member>                  | P#<program>#T#<name>        |                               |
# | member tier           | M#<member>                  | P#<program>#TIER            |                               |
# | waiting refunds       | W#<program>#<order entry>   | W                           |                               |
# | referral (referred)   | M#<referred member>         | P#<program>#REFERRAL        |                               |
#
# Open pending earns (P#<program>#PEND#<entry id>, indexed on GSI1 N#<program>#<until day>) are
# ledger items, written and deleted in the ledger's transactions; the directory only reads their index.
# The member's flag (FLAG#<program> / <member>) belongs to the anomaly watch; ingest reads it.

PROFILE = "PROFILE"
BATCH_GET_LIMIT = 100


def identity_pk(identity_key: str) -> str:
    return f"ID#{identity_key}"


def waiting_pk(program: str, order_entry_id: str) -> str:
    return f"W#{program}#{order_entry_id}"


def flag_key(program: str, member: str) -> tuple[str, str]:
    return f"FLAG#{program}", member


def referral_sk(program: str) -> str:
    return f"P#{program}#REFERRAL"


# Present on a referral item only while it waits for the referred member's first purchase.
AWAITING = "awaiting"


def _counters(tally: dict[str, Any]) -> dict[str, int]:
    """A tally item's named counters (Tally.counters): its numbers other than the main value."""
    return {name: int(v) for name, v in tally.items() if isinstance(v, Decimal) and name != "value"}


class MemberDirectory:
    """Identities, member profiles, tallies, the pending-earn index and waiting refunds (`shared.ingest.Directory`)."""

    def __init__(self, store: DynamoStore) -> None:
        self._store = store

    @property
    def _client(self) -> DynamoDBClient:
        return self._store.client

    @property
    def _table(self) -> str:
        return self._store.table

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self._store.get_item(pk, sk)

    # Identities and members

    def member_for(self, identity_key: str) -> str | None:
        item = self._get(identity_pk(identity_key), "ID")
        return str(item["member"]) if item else None

    def claim(self, identity_key: str, member: str, *, provisional: bool) -> str:
        """Link an unclaimed identity to `member` (creating its profile); returns whoever holds it."""
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": _item(
                                {"PK": identity_pk(identity_key), "SK": "ID", "type": "identity", "member": member}
                            ),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": _item({"PK": member_pk(member), "SK": PROFILE}),
                            "UpdateExpression": "SET #type = :type, provisional = if_not_exists(provisional, :p) "
                            "ADD identities :id",
                            "ExpressionAttributeNames": {"#type": "type"},
                            "ExpressionAttributeValues": _item(
                                {":type": "member", ":p": provisional, ":id": {identity_key}}
                            ),
                        }
                    },
                ]
            )
        except ClientError as error:
            self._store.stats.record("TransactWriteItems", {})
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            holder = self.member_for(identity_key)
            if holder is None:
                raise
            return holder
        self._store.stats.record("TransactWriteItems", {})
        return member

    def profile(self, member: str) -> dict[str, Any] | None:
        return self._get(member_pk(member), PROFILE)

    def repoint(self, identity_key: str, member: str) -> None:
        self._client.put_item(
            TableName=self._table,
            Item=_item({"PK": identity_pk(identity_key), "SK": "ID", "type": "identity", "member": member}),
        )
        self._client.update_item(
            TableName=self._table,
            Key=_item({"PK": member_pk(member), "SK": PROFILE}),
            UpdateExpression="SET #type = :type, provisional = if_not_exists(provisional, :p) ADD identities :id",
            ExpressionAttributeNames={"#type": "type"},
            ExpressionAttributeValues=_item({":type": "member", ":p": False, ":id": {identity_key}}),
        )
        self._store.stats.record("PutItem", {})
        self._store.stats.record("UpdateItem", {})

    def mark_merged(self, member: str, into: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=_item({"PK": member_pk(member), "SK": PROFILE}),
            UpdateExpression="SET #type = :type, merged_into = :into",
            ExpressionAttributeNames={"#type": "type"},
            ExpressionAttributeValues=_item({":type": "member", ":into": into}),
        )
        self._store.stats.record("UpdateItem", {})

    def view(
        self, program: str, member: str, tallies: Sequence[str] = (), *, full: bool = True, referral: bool = False
    ) -> MemberView:
        """One consistent BatchGetItem: the profile and the named tallies; with `full`, also the
        tier, the balance and the member's flag (everything an earn decides on); with `referral`,
        who referred the member (a purchase may owe that member a reward)."""
        keys = [(member_pk(member), PROFILE)] + [(member_pk(member), tally_sk(program, name)) for name in tallies]
        if full:
            keys += [(member_pk(member), f"P#{program}#TIER"), (member_pk(member), balance_sk(program))]
            keys.append(flag_key(program, member))
        if referral:
            keys.append((member_pk(member), referral_sk(program)))
        found = self._batch_get(keys)
        referred = found.get((member_pk(member), referral_sk(program)))
        profile = found.get((member_pk(member), PROFILE), {})
        tier = found.get((member_pk(member), f"P#{program}#TIER"))
        balance = found.get((member_pk(member), balance_sk(program)))
        flag = found.get(flag_key(program, member), {})
        read: dict[str, Tallied] = {}
        for name in tallies:
            item = found.get((member_pk(member), tally_sk(program, name)))
            if item:
                read[name] = Tallied(int(item.get("value", 0)), frozenset(item.get("marks", set())), _counters(item))
        return MemberView(
            member=member,
            merged_into=str(profile.get("merged_into", "")),
            provisional=bool(profile.get("provisional", False)),
            tier=str(tier["tier"]) if tier else None,
            account=_account(balance) if balance else None,
            tallies=read,
            flag_status=str(flag.get("status", "")),
            flag_reason=str(flag.get("reason", "")),
            referral=_referral(referred) if referred else None,
        )

    def _batch_get(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        request: Any = {
            self._table: {
                "Keys": [_item({"PK": pk, "SK": sk}) for pk, sk in keys[:BATCH_GET_LIMIT]],
                "ConsistentRead": True,
            }
        }
        while request:
            response = self._client.batch_get_item(RequestItems=request, ReturnConsumedCapacity="TOTAL")
            self._store.stats.record("BatchGetItem", dict(response))
            for raw in response.get("Responses", {}).get(self._table, []):
                item = _plain(raw)
                found[(item["PK"], item["SK"])] = item
            self._store.stats.items_read += len(response.get("Responses", {}).get(self._table, []))
            # DynamoDB may leave keys unprocessed under load; asking again for those is its contract.
            request = response.get("UnprocessedKeys") or None
        return found

    # Tallies

    def bump(self, tally: Tally, once_for: str) -> None:
        """Apply a tally outside a transaction, once per `once_for` (the id that caused it)."""
        self._update_tally_once(tally, "seen", once_for)

    def _update_tally_once(self, tally: Tally, done_set: str, once_for: str) -> None:
        """Apply a tally update unless `once_for` is already in the item's set `done_set`, and add it there."""
        update = tally_update(self._table, tally)
        update.pop("TableName")
        update["UpdateExpression"] += f", {done_set} :once"
        update["ConditionExpression"] = f"NOT contains({done_set}, :one)"
        update["ExpressionAttributeValues"].update(_item({":once": {once_for}, ":one": once_for}))
        try:
            self._client.update_item(TableName=self._table, **update)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        self._store.stats.record("UpdateItem", {})

    # Pending earns, by the day they may activate (ledger items; see the table above)

    def due_pending(self, program: str, day: str, until: datetime) -> list[PendingEarn]:
        """Open pending earns that may activate on `day` up to `until`, in that order."""
        return [
            _pending(item)
            for item in self._store._query(
                IndexName="GSI1",
                KeyConditionExpression="GSI1PK = :pk AND GSI1SK <= :until",
                ExpressionAttributeValues=_item({":pk": pending_index_pk(program, day), ":until": f"{_ts(until)}~"}),
            )
        ]

    def flag_status(self, program: str, member: str) -> str:
        item = self._get(*flag_key(program, member))
        return str(item.get("status", "")) if item else ""

    # Refunds waiting for their order (or for its return window to close): one item per order,
    # the refunds' ids in a set (gone when empty) and each body under its own attribute.

    def park_refund(self, program: str, order_entry_id: str, refund_entry_id: str, body: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=_item({"PK": waiting_pk(program, order_entry_id), "SK": "W"}),
            UpdateExpression="SET #type = :type, #body = :body ADD ids :id",
            ExpressionAttributeNames={"#type": "type", "#body": f"r#{refund_entry_id}"},
            ExpressionAttributeValues=_item({":type": "waiting_refunds", ":body": body, ":id": {refund_entry_id}}),
        )
        self._store.stats.record("UpdateItem", {})

    def waiting_refunds(self, program: str, order_entry_id: str) -> list[str]:
        item = self._get(waiting_pk(program, order_entry_id), "W")
        if not item:
            return []
        return [item[f"r#{refund}"] for refund in sorted(item.get("ids", set())) if f"r#{refund}" in item]

    def drop_refund(self, program: str, order_entry_id: str, refund_entry_id: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_item({"PK": waiting_pk(program, order_entry_id), "SK": "W"}),
                UpdateExpression="REMOVE #body DELETE ids :id",
                ExpressionAttributeNames={"#body": f"r#{refund_entry_id}"},
                ExpressionAttributeValues=_item({":id": {refund_entry_id}}),
                ConditionExpression="attribute_exists(PK)",  # an update must not create the item
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        self._store.stats.record("UpdateItem", {})

    def no_refund_waiting(self, program: str, order_entry_id: str) -> Check:
        """A transaction condition: nothing is parked for this order (the set of refund ids is gone)."""
        return Check(pk=waiting_pk(program, order_entry_id), sk="W", attribute="ids")

    # Referrals: one item under the referred member, written once (the first referral wins).

    def record_referral(self, program: str, referred: str, referral: Referral) -> bool:
        """Write the referral unless the member has one already; an awaiting one also needs the
        member's account to have nothing posted yet, checked in the same transaction (so a first
        earn and a referral cannot cross). False: either condition failed; read again."""
        values = {
            "PK": member_pk(referred),
            "SK": referral_sk(program),
            "type": "referral",
            "referrer": referral.referrer,
            "status": referral.status,
            "source": referral.source,
            "event_id": referral.event_id,
            "recorded_at": referral.recorded_at,
            "reason": referral.reason or None,
            AWAITING: referral.referrer if referral.awaiting else None,
        }
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _item(values),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        ]
        if referral.awaiting:
            items.append(
                {
                    "ConditionCheck": {
                        "TableName": self._table,
                        "Key": _item({"PK": member_pk(referred), "SK": balance_sk(program)}),
                        "ConditionExpression": "attribute_not_exists(PK) OR seq = :none",
                        "ExpressionAttributeValues": _item({":none": 0}),
                    }
                }
            )
        try:
            response = self._client.transact_write_items(TransactItems=items, ReturnConsumedCapacity="TOTAL")
        except ClientError as error:
            self._store.stats.record("TransactWriteItems", {})
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        self._store.stats.record("TransactWriteItems", dict(response))
        return True

    def referral_paid(self, program: str, referred: str, reward: str, purchase: str, points: int) -> None:
        """Close an awaiting referral: the reward is posted (its entry id is the exactly-once key)."""
        self._client.update_item(
            TableName=self._table,
            Key=_item({"PK": member_pk(referred), "SK": referral_sk(program)}),
            UpdateExpression="SET #s = :paid, reward = :reward, purchase = :purchase, points = :points REMOVE #a",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeNames={"#s": "status", "#a": AWAITING},
            ExpressionAttributeValues=_item(
                {":paid": REFERRAL_PAID, ":reward": reward, ":purchase": purchase, ":points": points}
            ),
        )
        self._store.stats.record("UpdateItem", {})

    def referral_ended(self, program: str, referred: str, status: str, reason: str) -> None:
        """A referral that will never pay (its first purchase was returned in its window)."""
        self._client.update_item(
            TableName=self._table,
            Key=_item({"PK": member_pk(referred), "SK": referral_sk(program)}),
            UpdateExpression="SET #s = :status, reason = :reason REMOVE #a",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeNames={"#s": "status", "#a": AWAITING},
            ExpressionAttributeValues=_item({":status": status, ":reason": reason}),
        )
        self._store.stats.record("UpdateItem", {})

    def no_referral_awaiting(self, program: str, member: str) -> Check:
        """A transaction condition: nobody's referral of this member is waiting for its first purchase."""
        return Check(pk=member_pk(member), sk=referral_sk(program), attribute=AWAITING)

    def merge_tally(self, program: str, name: str, merged: str, into: str) -> None:
        """Add a merged member's named counters of a tally to the survivor's, once per merged member."""
        item = self._get(member_pk(merged), tally_sk(program, name))
        counters = _counters(item or {})
        self._update_tally_once(
            Tally(program, into, name, counters=tuple(sorted(counters.items()))), "merged_from", merged
        )


def _referral(item: dict[str, Any]) -> Referral:
    return Referral(
        referrer=str(item["referrer"]),
        status=str(item.get("status", REFERRAL_AWAITING)),
        source=str(item.get("source", "")),
        event_id=str(item.get("event_id", "")),
        recorded_at=str(item.get("recorded_at", "")),
        reason=str(item.get("reason", "")),
        purchase=str(item.get("purchase", "")),
        reward=str(item.get("reward", "")),
    )


# === End of members and identities ===


# === Catalogue, exchange, access keys, idempotent replies (HTTP API) ===


def guard_item(table: str, guard: Guard) -> dict[str, Any]:
    """An ADD to a counter item, conditional on the result staying within the guard's limit."""
    if guard.limit is not None and guard.amount > guard.limit:
        raise GuardRefusedError(guard)  # no counter value could allow it; the condition would miss this
    update: dict[str, Any] = {
        "TableName": table,
        "Key": _item({"PK": guard.pk, "SK": guard.sk}),
        "UpdateExpression": "ADD #n :amount SET #t = :type",
        "ExpressionAttributeNames": {"#n": "used", "#t": "type"},
        "ExpressionAttributeValues": _item({":amount": guard.amount, ":type": "counter"}),
    }
    if guard.limit is not None:
        update["ConditionExpression"] = "attribute_not_exists(#n) OR #n <= :ceiling"
        update["ExpressionAttributeValues"] = _item(
            {":amount": guard.amount, ":type": "counter", ":ceiling": guard.limit - guard.amount}
        )
    return {"Update": update}


def counter_value(store: DynamoStore, pk: str, sk: str) -> int:
    response = store.client.get_item(TableName=store.table, Key=_item({"PK": pk, "SK": sk}), ConsistentRead=True)
    store.stats.record("GetItem", dict(response))
    item = response.get("Item")
    return int(_plain(item).get("used", 0)) if item else 0


class ApiItems:
    """API keys (hashed), idempotent replies, versioned documents (catalogues, agreements) and quotes."""

    def __init__(self, store: DynamoStore) -> None:
        self.store = store

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self.store.get_item(pk, sk)

    def _put_new(self, values: dict[str, Any]) -> bool:
        """Put unless the key exists; False when it did (the caller reads what is there)."""
        try:
            self.store.client.put_item(
                TableName=self.store.table, Item=_item(values), ConditionExpression="attribute_not_exists(PK)"
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        self.store.stats.record("PutItem", {})
        return True

    # API keys: only the SHA-256 of a key is stored, so a table dump reveals no usable key.

    def put_key(self, key_hash: str, principal_json: str) -> None:
        self._put_new({"PK": f"KEY#{key_hash}", "SK": "KEY", "type": "api_key", "body": principal_json})

    def get_key(self, key_hash: str) -> str | None:
        item = self._get(f"KEY#{key_hash}", "KEY")
        return item["body"] if item else None

    # Idempotent replies, keyed by the principal and its Idempotency-Key.

    def get_reply(self, principal: str, key: str) -> dict[str, Any] | None:
        return self._get(f"IDEM#{principal}", f"KEY#{key}")

    def put_reply(self, principal: str, key: str, fingerprint: str, status: int, body: str) -> bool:
        return self._put_new(
            {
                "PK": f"IDEM#{principal}",
                "SK": f"KEY#{key}",
                "type": "reply",
                "fingerprint": fingerprint,
                "status": status,
                "body": body,
            }
        )

    # Versioned documents (a catalogue, an agreement): DOC#<version> items and a LIVE pointer.

    def publish_document(self, pk: str, version: int, body: str) -> bool:
        """Store a version and make it live; False if that version exists or is not newer than live."""
        try:
            self.store.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.store.table,
                            "Item": _item(
                                {
                                    "PK": pk,
                                    "SK": f"DOC#{version:06d}",
                                    "type": "document",
                                    "body": body,
                                    "published_at": _ts(datetime.now(UTC)),
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.store.table,
                            "Item": _item(
                                {"PK": pk, "SK": "LIVE", "type": "live_document", "version": version, "body": body}
                            ),
                            "ConditionExpression": "attribute_not_exists(PK) OR version < :v",
                            "ExpressionAttributeValues": _item({":v": version}),
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        return True

    def live_document(self, pk: str) -> str | None:
        item = self._get(pk, "LIVE")
        return item["body"] if item else None

    # Reading versioned config back (admin): programs are P#<program> / CFG#<version>, documents
    # <pk> / DOC#<version>; each partition also holds the LIVE pointer with the live version number.

    def live_version(self, pk: str) -> int | None:
        item = self._get(pk, "LIVE")
        return int(item["version"]) if item else None

    def config_versions(self, pk: str, prefix: str, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` versions newer than `after`, oldest first: version, body, published_at (if recorded)."""
        found = []
        for item in self.store._query(
            KeyConditionExpression="PK = :pk AND SK BETWEEN :low AND :high",
            ExpressionAttributeValues=_item(
                {":pk": pk, ":low": f"{prefix}{after + 1:06d}", ":high": f"{prefix}999999"}
            ),
            ConsistentRead=True,
            Limit=limit,
        ):
            found.append({**item, "version": int(item["SK"].removeprefix(prefix))})
            if len(found) >= limit:
                break
        return found

    # Quotes: written once, read when executed; their lifetime is checked on read, not by TTL.

    def put_quote(self, quote_id: str, body: str) -> None:
        self._put_new({"PK": f"QUOTE#{quote_id}", "SK": "QUOTE", "type": "quote", "body": body})

    def get_quote(self, quote_id: str) -> str | None:
        item = self._get(f"QUOTE#{quote_id}", "QUOTE")
        return item["body"] if item else None

    def due_holds(self, program: str, day: str, until: str) -> list[Hold]:
        """Open holds of a program that lapse on `day`, up to the timestamp `until` (GSI1)."""
        return [
            Hold.model_validate_json(item["body"])
            for item in self.store._query(
                IndexName="GSI1",
                KeyConditionExpression="GSI1PK = :pk AND GSI1SK <= :until",
                ExpressionAttributeValues=_item({":pk": f"H#{program}#{day}", ":until": f"{until}~"}),
            )
        ]

    # Points draws: the draw item (commitment, later the revealed seed) and ticket counters
    # (Guards, so tickets are bought atomically with their spend) in one partition.

    def put_draw(self, program: str, draw_id: str, body: str) -> bool:
        return self._put_new({"PK": f"DRAW#{program}#{draw_id}", "SK": "DRAW", "type": "draw", "body": body})

    def get_draw(self, program: str, draw_id: str) -> str | None:
        item = self._get(f"DRAW#{program}#{draw_id}", "DRAW")
        return item["body"] if item else None

    def save_draw(self, program: str, draw_id: str, body: str) -> None:
        self.store.client.put_item(
            TableName=self.store.table,
            Item=_item({"PK": f"DRAW#{program}#{draw_id}", "SK": "DRAW", "type": "draw", "body": body}),
        )
        self.store.stats.record("PutItem", {})

    def draw_tickets(self, program: str, draw_id: str) -> dict[str, int]:
        return {
            item["SK"].removeprefix("T#"): int(item.get("used", 0))
            for item in self.store._query(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :t)",
                ExpressionAttributeValues=_item({":pk": f"DRAW#{program}#{draw_id}", ":t": "T#"}),
                ConsistentRead=True,
            )
        }

    # Programs that may have holds: one small partition the hold-lapse job reads instead of a scan.

    def register_program(self, program: str) -> None:
        self.store.client.put_item(
            TableName=self.store.table, Item=_item({"PK": "PROGRAMS", "SK": f"P#{program}", "type": "program_ref"})
        )
        self.store.stats.record("PutItem", {})

    def programs(self) -> list[str]:
        return [
            item["SK"].removeprefix("P#")
            for item in self.store._query(
                KeyConditionExpression="PK = :pk", ExpressionAttributeValues=_item({":pk": "PROGRAMS"})
            )
        ]


# === End of HTTP API items ===


# === Job progress, reminders, tiers, settlement, flags (scheduled jobs) ===

# Items of the scheduled jobs (PK / SK; indexes):
#   live programs         the LIVE config items carry GSI1 PROGRAMS / <program>
#   job progress          JOB#<job>#<program> / PROGRESS
#   reminder marker       REM#<program>#<member>#<date> / REM
#   member tier           M#<member> / P#<program>#TIER; GSI1 T#<program>#<review day>
#   tier change record    M#<member> / P#<program>#TIERLOG#<ts>#<to tier>
#   settlement line       S#<program>#<day> / <partner>#<entry id>
#   velocity window       W#<program>#<check>#<key>#<hour> / W
#   flag, flag decision   FLAG#<program> / <member>, LOG#<member>#<ts>#<id>

JOB_PAGE_SIZE = 100


def ts(value: datetime) -> str:
    return _ts(value)


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def tier_index_pk(program: str, day: str) -> str:
    return f"T#{program}#{day}"


class JobStore:
    """The scheduled jobs' items. Every write that guards an effect is conditional."""

    def __init__(self, store: DynamoStore) -> None:
        self._store = store

    @property
    def _client(self) -> DynamoDBClient:
        return self._store.client

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self._store.get_item(pk, sk)

    def _put(
        self,
        values: dict[str, Any],
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values_: dict[str, Any] | None = None,
    ) -> bool:
        """Put an item; False when the condition failed (someone else got there first)."""
        kwargs: dict[str, Any] = {"TableName": self._store.table, "Item": _item(values)}
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values_:
            kwargs["ExpressionAttributeValues"] = _item(values_)
        try:
            response = self._client.put_item(**kwargs)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                self._store.stats.record("PutItem", {})
                return False
            raise
        self._store.stats.record("PutItem", dict(response))
        return True

    # Programs and progress

    def live_programs(self) -> list[str]:
        return [
            item["GSI1SK"]
            for item in self._store._query(
                IndexName="GSI1",
                KeyConditionExpression="GSI1PK = :pk",
                ExpressionAttributeValues=_item({":pk": "PROGRAMS"}),
            )
        ]

    def program_since(self, program: str) -> datetime | None:
        """When the program's first version was published (None: no such program)."""
        for item in self._store._query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :cfg)",
            ExpressionAttributeValues=_item({":pk": f"P#{program}", ":cfg": "CFG#"}),
            ConsistentRead=True,
            Limit=1,
        ):
            return parse_ts(item["published_at"]) if "published_at" in item else datetime(2000, 1, 1, tzinfo=UTC)
        return None

    def get_progress(self, job: str, program: str) -> dict[str, Any] | None:
        return self._get(f"JOB#{job}#{program}", "PROGRESS")

    def save_progress(self, job: str, program: str, state: dict[str, Any], expected_rev: int) -> bool:
        """Write progress if nobody else moved it since we read it (rev 0: not yet written)."""
        values = {
            "PK": f"JOB#{job}#{program}",
            "SK": "PROGRESS",
            "type": "job_progress",
            **state,
            "rev": expected_rev + 1,
        }
        if expected_rev == 0:
            return self._put(values, "attribute_not_exists(PK)")
        return self._put(values, "rev = :rev", values_={":rev": expected_rev})

    def due_page(
        self, pk: str, below: str | None, start_key: dict[str, Any] | None, limit: int = JOB_PAGE_SIZE
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of an index partition (GSI1), optionally only sort keys below `below`."""
        condition = "GSI1PK = :pk"
        values: dict[str, Any] = {":pk": pk}
        if below is not None:
            condition += " AND GSI1SK < :below"
            values[":below"] = below
        kwargs: dict[str, Any] = {
            "TableName": self._store.table,
            "IndexName": "GSI1",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": _item(values),
            "Limit": limit,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        page = self._client.query(**kwargs)
        self._store.stats.record("Query", dict(page))
        return [_plain(i) for i in page.get("Items", [])], page.get("LastEvaluatedKey")

    def member_lots_on(self, program: str, member: str, day: str) -> list[Lot]:
        return [
            _lot(item)
            for item in self._store._query(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
                ExpressionAttributeValues=_item({":pk": member_pk(member), ":prefix": f"P#{program}#LOT#{day}"}),
                ConsistentRead=True,
            )
        ]

    def member_lots_until(self, program: str, member: str, until: datetime) -> tuple[AccountState | None, list[Lot]]:
        """The member's balance and the lots whose own expiry is at or before `until`, in one Query."""
        return self._store.get_account_and_lots(program, member, until)

    def reindex_lot(self, item: dict[str, Any], due: datetime) -> bool:
        """Move a lot's place in the expiry index later (its expiry was extended by activity).

        Only ever later, and only while the lot exists: two runs moving it at once cannot move it
        back, and a lot spent or expired meanwhile is not brought back as a bare index item.
        """
        keys = expiry_index_keys(item["program"], item["member"], item["lot_id"], due)
        try:
            response = self._client.update_item(
                TableName=self._store.table,
                Key=_item({"PK": item["PK"], "SK": item["SK"]}),
                UpdateExpression="SET GSI1PK = :pk, GSI1SK = :sk",
                ConditionExpression="attribute_exists(PK) AND GSI1SK < :sk",
                ExpressionAttributeValues=_item({":pk": keys["GSI1PK"], ":sk": keys["GSI1SK"]}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                self._store.stats.record("UpdateItem", {})
                return False
            raise
        self._store.stats.record("UpdateItem", dict(response))
        return True

    # Reminders

    def claim_reminder(self, program: str, member: str, day: str, now: datetime, lease_seconds: int) -> bool:
        """Claim the one notice for (program, member, date); a stale unsent claim may be retaken."""
        return self._put(
            {
                "PK": f"REM#{program}#{member}#{day}",
                "SK": "REM",
                "type": "reminder",
                "status": "claimed",
                "claimed_at": int(now.timestamp()),
            },
            "attribute_not_exists(PK) OR (#s = :claimed AND claimed_at < :stale)",
            names={"#s": "status"},
            values_={":claimed": "claimed", ":stale": int(now.timestamp()) - lease_seconds},
        )

    def reminder_sent(self, program: str, member: str, day: str, points: int, now: datetime) -> None:
        self._put(
            {
                "PK": f"REM#{program}#{member}#{day}",
                "SK": "REM",
                "type": "reminder",
                "status": "sent",
                "points": points,
                "sent_at": _ts(now),
            }
        )

    def reminder(self, program: str, member: str, day: str) -> dict[str, Any] | None:
        return self._get(f"REM#{program}#{member}#{day}", "REM")

    # Tiers

    def get_tier(self, program: str, member: str) -> dict[str, Any] | None:
        return self._get(member_pk(member), f"P#{program}#TIER")

    def move_tier(
        self,
        program: str,
        member: str,
        state: dict[str, Any],
        record: dict[str, Any],
        expected_rev: int,
        previous: str | None = None,
    ) -> bool:
        """The member's tier and the record of the move, together; False if the tier changed meanwhile.

        `previous` is the tier the item held (None: no item yet): the program's tier counts move in
        the same transaction (`tier_count_items`).
        """
        tier_item = _item(
            {
                "PK": member_pk(member),
                "SK": f"P#{program}#TIER",
                "type": "tier",
                **state,
                "rev": expected_rev + 1,
                "GSI1PK": tier_index_pk(program, state["due_at"][:10]),
                "GSI1SK": f"{state['due_at']}#{member}",
            }
        )
        put: Any = {"TableName": self._store.table, "Item": tier_item}
        if expected_rev == 0:
            put["ConditionExpression"] = "attribute_not_exists(PK)"
        else:
            put["ConditionExpression"] = "rev = :rev"
            put["ExpressionAttributeValues"] = _item({":rev": expected_rev})
        log = _item(
            {
                "PK": member_pk(member),
                "SK": f"P#{program}#TIERLOG#{record['at']}#{record['to']}",
                "type": "tier_change",
                **record,
            }
        )
        try:
            response = self._client.transact_write_items(
                TransactItems=[
                    {"Put": put},
                    {"Put": {"TableName": self._store.table, "Item": log}},
                    *tier_count_items(self._store.table, program, member, previous, state["tier"]),
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        self._store.stats.record("TransactWriteItems", dict(response))
        return True

    def tier_changes(self, program: str, member: str) -> list[dict[str, Any]]:
        return list(
            self._store._query(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
                ExpressionAttributeValues=_item({":pk": member_pk(member), ":prefix": f"P#{program}#TIERLOG#"}),
            )
        )

    # Settlement

    def add_settlement_line(
        self,
        program: str,
        day: str,
        partner: str,
        entry_id: str,
        points: int,
        fee: int = 0,
        residue: Decimal | None = None,
    ) -> None:
        # Keyed by entry: a redelivered stream record writes the same item again, never a second line.
        self._put(
            {
                "PK": f"S#{program}#{day}",
                "SK": f"{partner}#{entry_id}",
                "type": "settlement_line",
                "partner": partner,
                "entry_id": entry_id,
                "points": points,
                # An exchange's fee (on its debit) and rounding residue (on its credit); absent when zero.
                "fee": fee or None,
                "residue": residue or None,
            }
        )

    def settlement_lines(self, program: str, day: str, partner: str | None = None) -> list[dict[str, Any]]:
        """A day's lines, all partners' or (one Query on the sort-key prefix) one partner's."""
        condition, values = "PK = :pk", {":pk": f"S#{program}#{day}"}
        if partner is not None:
            condition += " AND begins_with(SK, :partner)"
            values[":partner"] = f"{partner}#"
        lines = self._store._query(KeyConditionExpression=condition, ExpressionAttributeValues=_item(values))
        return [line for line in lines if partner is None or line["partner"] == partner]

    # Velocity and flags

    def count_in_window(self, program: str, check: str, key: str, hour: str, member_id: str, expires: int) -> int:
        """Add an id to a window's set and return the set's size; re-adding the same id counts once."""
        response = self._client.update_item(
            TableName=self._store.table,
            Key=_item({"PK": f"W#{program}#{check}#{key}#{hour}", "SK": "W"}),
            UpdateExpression="ADD ids :id SET #t = :t, expires = :exp",
            ExpressionAttributeNames={"#t": "type"},
            ExpressionAttributeValues={
                ":id": {"SS": [member_id]},
                ":t": {"S": "velocity"},
                ":exp": {"N": str(expires)},
            },
            ReturnValues="ALL_NEW",
        )
        self._store.stats.record("UpdateItem", dict(response))
        return len(response["Attributes"]["ids"]["SS"])

    def get_flag(self, program: str, member: str) -> dict[str, Any] | None:
        return self._get(f"FLAG#{program}", member)

    def put_flag(
        self, program: str, member: str, state: dict[str, Any], log: dict[str, Any], only_if_open: bool = False
    ) -> bool:
        """The flag's current state and the decision that set it, together; False if already recorded
        (or, with `only_if_open`, if the flag was no longer open: two operators deciding at once)."""
        flag_put: Any = {
            "TableName": self._store.table,
            "Item": _item({"PK": f"FLAG#{program}", "SK": member, "type": "flag", **state}),
        }
        if only_if_open:
            flag_put["ConditionExpression"] = "#s = :open"
            flag_put["ExpressionAttributeNames"] = {"#s": "status"}
            flag_put["ExpressionAttributeValues"] = _item({":open": "open"})
        try:
            response = self._client.transact_write_items(
                TransactItems=[
                    {"Put": flag_put},
                    {
                        "Put": {
                            "TableName": self._store.table,
                            "Item": _item(
                                {
                                    "PK": f"FLAG#{program}",
                                    "SK": f"LOG#{member}#{log['at']}#{log['id']}",
                                    "type": "flag_decision",
                                    **log,
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                ]
            )
        except ClientError as error:
            # The decision record exists: a redelivered stream record, already applied.
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        self._store.stats.record("TransactWriteItems", dict(response))
        return True

    def open_flags(self, program: str) -> list[dict[str, Any]]:
        """Open flags of a program: one Query of its flag partition (decision records filtered out)."""
        return list(
            self._store._query(
                KeyConditionExpression="PK = :pk",
                FilterExpression="#t = :flag AND #s = :open",
                ExpressionAttributeNames={"#t": "type", "#s": "status"},
                ExpressionAttributeValues=_item({":pk": f"FLAG#{program}", ":flag": "flag", ":open": "open"}),
                ConsistentRead=True,
            )
        )

    def flag_log(self, program: str, member: str) -> list[dict[str, Any]]:
        return list(
            self._store._query(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
                ExpressionAttributeValues=_item({":pk": f"FLAG#{program}", ":prefix": f"LOG#{member}#"}),
            )
        )

    def tally_counters(self, program: str, member: str, name: str) -> dict[str, int]:
        """A tally's named counters (e.g. the monthly qualifying activity the ingest path keeps)."""
        return _counters(self._get(member_pk(member), tally_sk(program, name)) or {})

    def recent_entries(self, program: str, member: str, since_seq: int = 0) -> list[Entry]:
        return self._store.entries(program, member, after_seq=since_seq)


# === End of job items ===


# === Program figures (projection) ===

# Items of the program figures (shared.figures), written by the stream watcher and tier moves:
#   counted-entry marker  FM#<program>#<entry id> / FM
#   day counters          F#<program>#<local date>#<shard> / F
#   program-to-date       F#<program>#ALL#<shard> / F
#   tier counts           F#<program>#TIERS#<shard> / F   (shard by member)
# Counters are numeric attributes named after the figure ("earned", "channel:pos", "tier:gold").

FIGURES_SK = "F"
BATCH_GET_KEYS = 100  # DynamoDB's limit per BatchGetItem


def figures_pk(program: str, bucket: str, shard: int) -> str:
    return f"F#{program}#{bucket}#{shard}"


def figures_update(table: str, program: str, bucket: str, shard: int, counters: Mapping[str, int]) -> dict[str, Any]:
    """One counter item's ADD of every named counter (the item is created by its first ADD)."""
    names = {f"#c{i}": name for i, name in enumerate(counters)}
    values: dict[str, Any] = {f":c{i}": value for i, value in enumerate(counters.values())}
    values |= {":t": "figures", ":p": program, ":b": bucket}
    adds = ", ".join(f"#c{i} :c{i}" for i in range(len(counters)))
    return {
        "TableName": table,
        "Key": _item({"PK": figures_pk(program, bucket, shard), "SK": FIGURES_SK}),
        "UpdateExpression": f"ADD {adds} SET #type = :t, #program = :p, #bucket = :b",
        "ExpressionAttributeNames": {**names, "#type": "type", "#program": "program", "#bucket": "bucket"},
        "ExpressionAttributeValues": _item(values),
    }


def tier_count_items(table: str, program: str, member: str, previous: str | None, tier: str) -> list[Any]:
    """The tier counts' share of a tier move's transaction (nothing when the tier stays the same)."""
    change = tier_count_change(previous, tier)
    if not change:
        return []
    return [{"Update": figures_update(table, program, TIERS, shard_of(member, SHARDS), change)}]


class FigureItems:
    """Implements `shared.figures.FigureStore`: markers, sharded counters and their batch reads."""

    def __init__(self, store: DynamoStore) -> None:
        self._store = store

    def add_entry(self, program: str, entry_id: str, day: str, shard: int, counters: Mapping[str, int]) -> bool:
        table = self._store.table
        marker = {"PK": f"FM#{program}#{entry_id}", "SK": "FM", "type": "figures_marker", "day": day, "shard": shard}
        items: list[Any] = [
            {"Put": {"TableName": table, "Item": _item(marker), "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Update": figures_update(table, program, day, shard, counters)},
            {"Update": figures_update(table, program, ALL, shard, counters)},
        ]
        try:
            response = self._store.client.transact_write_items(TransactItems=items, ReturnConsumedCapacity="TOTAL")
        except ClientError as error:
            self._store.stats.record("TransactWriteItems", {})
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False  # counted before: a redelivered stream record
            raise ConcurrentUpdateError() from error
        self._store.stats.record("TransactWriteItems", dict(response))
        return True

    def read_buckets(self, program: str, buckets: Sequence[str], shards: int) -> dict[str, dict[str, int]]:
        """Every shard of every bucket, summed per bucket; missing items are zeros."""
        keys = [_item({"PK": figures_pk(program, b, s), "SK": FIGURES_SK}) for b in buckets for s in range(shards)]
        summed: dict[str, dict[str, int]] = {}
        while keys:
            chunk, keys = keys[:BATCH_GET_KEYS], keys[BATCH_GET_KEYS:]
            response = self._store.client.batch_get_item(
                RequestItems={self._store.table: {"Keys": chunk}}, ReturnConsumedCapacity="TOTAL"
            )
            self._store.stats.record("BatchGetItem", dict(response))
            for raw in response.get("Responses", {}).get(self._store.table, []):
                item = _plain(raw)
                into = summed.setdefault(str(item["bucket"]), {})
                for name, value in item.items():
                    if isinstance(value, Decimal):
                        into[name] = into.get(name, 0) + int(value)
            # Throttled keys come back unprocessed: asked again, after a pause, with the next chunk.
            left: Any = response.get("UnprocessedKeys", {}).get(self._store.table, {})
            unprocessed = list(left.get("Keys", []))
            if unprocessed:
                time.sleep(0.05)
            keys = unprocessed + keys
        return summed


# === End of program figures ===
