"""Costs moto has that DynamoDB and SQS do not, removed without changing what any request returns.

1. **Transactions back up whole tables.** moto's TransactWriteItems deep-copies every table a
   transaction names, once per item of the transaction, so that it can roll back on failure. The
   cost grows with the table, stream records included (about 90 ms per three-item transaction on a
   table of a few hundred items, 97% of it in `copy.deepcopy`). Here a transaction remembers only
   the items it touches and the length of each table's stream, and puts exactly those back when
   it is cancelled. What a client sees is unchanged: conditions are checked item by item against
   the state before the transaction (moto refuses two actions on one item, so no action can see
   another's write), every item gets its cancellation reason in order, and a cancelled
   transaction leaves neither items nor stream records behind. Each condition is checked once
   (moto's own transaction checks it again in the write, against the same item).
2. **A Query reads the whole table.** moto filters every item of every partition for the hash key
   before sorting. Here a table query is handed the one partition the key names (same results,
   same order, same paging). An index query is handed the items whose index hash attribute holds
   the queried value, in the order moto's own `all_items` lists them (it sorts the whole table by
   its primary key on every index query, which made the jobs' sharded walk of the due-day index,
   sixteen queries a day, cost about 20 times what it did); moto then checks, sorts, pages and
   filters them as it always does. Those items are found through a map from each queried
   attribute's values to the keys of the items holding them, kept current by every write
   (`IndexedValues`): walking the table for them made a late earn's history query cost a walk
   of every item, about 100 ms once a big file had put 100,000 rows in the table.
3. **Work redone for every request that gives the same answer every time**: the list of moto's
   service folders (read from disk to route each request), the method names of a response class,
   the tree of an UpdateExpression's text, an EventBridge target's parsed input paths (jsonpath_ng
   builds its parser anew for each: most of what a PutEvents cost), and which keys the response
   serializer should look under for each member of a plain-dict value (most of the time moto
   spent writing a GetRecords or a BatchGetItem reply). Each is worked out once and remembered.
4. **SQS's retention check reads every queue attribute three times** for each message received,
   and the approximate counts among them walk every message in the queue, so a receive cost grew
   with the queue's length times the batch. Here it reads the retention period alone. The walks
   that remain (the visible messages, the counts GetQueueAttributes asks for) read the clock once
   each instead of twice per message.
5. **SQS walks the whole queue for every message sent, received or deleted.** A SendMessage builds
   every queue attribute (three walks of the queue for the counts) to read one setting; a
   ReceiveMessage lists every visible message to hand out ten; a DeleteMessage looks for its
   receipt handle in every message and copies the queue without it. A queue holding a big file's
   100,000 rows made each of those a walk of 100,000 messages, so the file drained ever slower
   (about three rows a second at 40,000 queued). Here a send reads the one setting, a receive
   walks the visible messages only until it has its batch (over a copy of the queue's list taken
   as moto's own list was, so nothing it changes mid-walk is skipped), and a delete looks among
   the messages received and not yet deleted (moto's pending set) before the whole queue. The
   messages handed out, their order, the counts and the errors are moto's.

DynamoDB writes' own repeated work (an UpdateExpression's item-independent validation walks, a new
item's size summed per attribute, a set sized member by member) is cut in moto_writes.py, whose
patches `install()` applies with these.

`install()` patches moto's classes in the current process: the sandbox's emulator process calls it
at start, and so do the tests' `mock_aws` fixtures; `without_speedups()` puts moto's own code back
for a while. tests/integration/test_moto_speedups.py runs the same requests through both and
compares replies, errors, items and stream records.
"""

from __future__ import annotations

import copy
import pickle
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from pointbridge.sandbox import moto_streams

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.sqs.models import SQSBackend

MAX_TRANSACTION_ACTIONS = 100
MAX_REMEMBERED_EXPRESSIONS = 10_000
ACTIONS = ("ConditionCheck", "Put", "Delete", "Update")

_installed = False
# moto's own functions by name, and every patch as (owner, attribute, moto's entry, ours).
originals: dict[str, Any] = {}
_patches: list[tuple[Any, str, Any, Any]] = []


class _ConditionFailedError(Exception):
    """An action's condition is false; `item` is the item as it was, when the action asked for it."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("The conditional request failed")
        self.item = item


@dataclass
class _UndoLog:
    """The items a transaction changed, as they were, and where each table's stream stood."""

    items: list[tuple[Table, Any, Any, Any]] = field(default_factory=list)
    stream_lengths: dict[str, tuple[Table, int]] = field(default_factory=dict)

    def remember(self, table: Table, hash_value: Any, range_value: Any, before: Any) -> None:
        if table.name not in self.stream_lengths:
            shard = table.stream_shard
            self.stream_lengths[table.name] = (table, len(shard.items) if shard is not None else 0)
        self.items.append((table, hash_value, range_value, copy.deepcopy(before)))

    def roll_back(self) -> None:
        for table, hash_value, range_value, before in reversed(self.items):
            if table.range_key_attr is None:
                if before is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = before
                continue
            partition = table.items[hash_value]
            if before is None:
                partition.pop(range_value, None)
                if not partition:
                    del table.items[hash_value]
            else:
                partition[range_value] = before
        for table, length in self.stream_lengths.values():
            if table.stream_shard is not None:
                del table.stream_shard.items[length:]
        for table, hash_value, range_value, _ in self.items:
            _refresh(table, hash_value, range_value)


def _key_of(table: Table, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    source = op["Item"] if op_type == "Put" else op["Key"]
    key = {table.hash_key_attr: source[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = source[table.range_key_attr]
    return key


def _apply(backend: DynamoDBBackend, op_type: str, op: dict[str, Any], targets: set[Any], undo: _UndoLog) -> None:
    """One action of a transaction: check its condition against the item as it is, then write."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import MultipleTransactionsException
    from moto.dynamodb.models.dynamo_type import DynamoType

    if op_type not in ACTIONS:
        raise ValueError("Unsupported transaction operation")
    table_name = op["TableName"]
    table = backend.get_table(table_name)
    key = _key_of(table, op_type, op)
    target = (str(table_name), str(dict(sorted(key.items()))))
    if target in targets:
        raise MultipleTransactionsException()
    targets.add(target)
    current = backend.get_item(table_name, key)
    condition = op.get("ConditionExpression")
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    if condition is not None and not get_filter_expression(condition, names, values).expr(current):
        wants_item = op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
        raise _ConditionFailedError(current.to_json()["Attributes"] if wants_item and current is not None else None)
    if op_type == "ConditionCheck":
        return
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    undo.remember(table, DynamoType(key[table.hash_key_attr]), range_value, current)
    # The condition held just above against this very item, so the write does not parse and check
    # it a second time (moto's own transaction does): `condition_expression=None` below.
    if op_type == "Put":
        backend.put_item(
            table_name,
            op["Item"],
            condition_expression=None,
            expression_attribute_names=names,
            expression_attribute_values=values,
        )
    elif op_type == "Delete":
        backend.delete_item(
            table_name,
            key,
            condition_expression=None,
            expression_attribute_names=names,
            expression_attribute_values=values,
        )
    else:
        backend.update_item(
            table_name,
            key,
            update_expression=op["UpdateExpression"],
            condition_expression=None,
            # moto's own transaction passes these through as given, None included.
            expression_attribute_names=cast("dict[str, Any]", names),
            expression_attribute_values=cast("dict[str, Any]", values),
        )


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > MAX_TRANSACTION_ACTIONS:
        raise TooManyTransactionsException()
    undo = _UndoLog()
    targets: set[tuple[str, str]] = set()
    reasons: list[tuple[Any, Any, Any]] = []
    try:
        for action in transact_items:
            if len(action) > 1:
                raise TransactWriteSingleOpException()
            op_type, op = next(iter(action.items()))
            try:
                _apply(self, op_type, op, targets, undo)
                reasons.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                raise
            except _ConditionFailedError as failure:
                reasons.append(("ConditionalCheckFailed", str(failure), failure.item))
            except ConditionalCheckFailed as failure:
                reasons.append(("ConditionalCheckFailed", str(failure.message), None))
            except Exception as failure:  # noqa: BLE001 - reported per item, as moto does
                reasons.append((type(failure).__name__, str(failure), None))
    except Exception:
        undo.roll_back()
        raise
    if any(code is not None for code, _, _ in reasons):
        undo.roll_back()
        raise TransactionCanceledException(reasons)


def _primary_order(item: Any) -> Any:
    """The order in which moto's `Table.all_items` lists a table's items (by primary key)."""
    return (item.hash_key, item.range_key) if item.range_key else item.hash_key


def _stored(table: Table, hash_value: Any, range_value: Any) -> Any:
    if table.range_key_attr is None:
        return table.items.get(hash_value)
    partition = table.items.get(hash_value)
    return partition.get(range_value) if partition else None


class IndexedValues:
    """For one table, the primary keys of the items that hold each value of an attribute queried
    through an index, so that an index Query finds its items without reading every item.

    An attribute is indexed from a walk of the table the first time a query names it; after that
    every write keeps it current (`refresh` of the written key, called after moto's put, delete
    and update and after a cancelled transaction's roll-back). What it hands out is checked again
    against the stored item, so a key it still lists after a change is passed over."""

    def __init__(self, table: Table) -> None:
        self.generation = _generation
        self._by_attribute: dict[str, dict[Any, set[tuple[Any, Any]]]] = {}
        self._held: dict[tuple[Any, Any], dict[str, Any]] = {}
        self._table = table

    def candidates(self, attribute: str, wanted: Any) -> list[Any]:
        if attribute not in self._by_attribute:
            self._by_attribute[attribute] = {}
            for hash_value, stored in list(self._table.items.items()):
                if self._table.range_key_attr is None:
                    self._add((hash_value, None), stored, (attribute,))
                else:
                    for range_value, item in stored.items():
                        self._add((hash_value, range_value), item, (attribute,))
        found = []
        for hash_value, range_value in self._by_attribute[attribute].get(wanted, ()):
            item = _stored(self._table, hash_value, range_value)
            value = item.attrs.get(attribute) if item is not None else None
            if value is not None and value == wanted:
                found.append(item)
        return found

    def refresh(self, hash_value: Any, range_value: Any) -> None:
        key = (hash_value, range_value)
        for attribute, value in self._held.pop(key, {}).items():
            holders = self._by_attribute[attribute].get(value)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._by_attribute[attribute][value]
        item = _stored(self._table, hash_value, range_value)
        if item is not None:
            self._add(key, item, self._by_attribute)

    def _add(self, key: tuple[Any, Any], item: Any, attributes: Iterable[str]) -> None:
        for attribute in attributes:
            value = item.attrs.get(attribute)
            if value is None:
                continue
            try:
                self._by_attribute[attribute].setdefault(value, set()).add(key)
            except TypeError:  # a list or map: never an index key, never equal to a queried one
                continue
            self._held.setdefault(key, {})[attribute] = value


# Writes made while moto's own code is back (`without_speedups`) do not refresh the indexes; each
# is rebuilt after that.
_generation = 0
INDEX_ATTRIBUTE = "_pointbridge_indexed_values"


def indexed_values(table: Table, *, create: bool) -> IndexedValues | None:
    index: IndexedValues | None = table.__dict__.get(INDEX_ATTRIBUTE)
    if index is not None and index.generation != _generation:
        index = None
    if index is None and create:
        index = IndexedValues(table)
        table.__dict__[INDEX_ATTRIBUTE] = index
    return index


def _refresh(table: Table | None, hash_value: Any, range_value: Any) -> None:
    index = indexed_values(table, create=False) if table is not None else None
    if index is not None:
        index.refresh(hash_value, range_value)


def _refreshing_put(stock: Callable[..., Any]) -> Callable[..., Any]:
    def put_item(self: Table, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        from moto.dynamodb.models.dynamo_type import DynamoType

        try:
            return stock(self, item_attrs, *args, **kwargs)
        finally:
            if self.hash_key_attr in item_attrs and (self.range_key_attr is None or self.range_key_attr in item_attrs):
                range_value = DynamoType(item_attrs[self.range_key_attr]) if self.range_key_attr else None
                _refresh(self, DynamoType(item_attrs[self.hash_key_attr]), range_value)

    return put_item


def _refreshing_delete(stock: Callable[..., Any]) -> Callable[..., Any]:
    def delete_item(self: Table, hash_key: Any, range_key: Any) -> Any:
        try:
            return stock(self, hash_key, range_key)
        finally:
            _refresh(self, hash_key, range_key)

    return delete_item


def _refreshing_update(stock: Callable[..., Any]) -> Callable[..., Any]:
    """moto's UpdateItem changes the stored item's attributes in place."""

    def update_item(self: DynamoDBBackend, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return stock(self, table_name, key, *args, **kwargs)
        finally:
            table = self.tables.get(table_name)
            if table is not None and indexed_values(table, create=False) is not None:
                try:
                    hash_value, range_value = self.get_keys_value(table, key)
                except Exception:  # noqa: BLE001 - a key moto refused wrote nothing
                    pass
                else:
                    _refresh(table, hash_value, range_value)

    return update_item


def index_query(moto_query: Callable[..., Any], table: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    """moto's index Query, over the items whose index hash attribute holds the queried value.

    moto lists every item of the table (sorted by primary key) and keeps those whose index hash
    attributes all equal the query's. Handing it only the items that pass the first of those
    equalities, in the same relative order (a stable sort of a subset orders it as the sort of the
    whole did), leaves everything after that step as moto's own code: its remaining checks (other
    hash attributes, the range attributes an index needs), the sort, the start key, Limit, the
    filter expression and the projection. The items are found through `IndexedValues`."""
    conditions = kwargs.get("hash_key_conditions") or []
    if not conditions:
        return moto_query(table, hash_key, *args, **kwargs)
    attribute, wanted = conditions[0]
    try:
        hash(wanted)
    except TypeError:
        return moto_query(table, hash_key, *args, **kwargs)
    index = indexed_values(table, create=True)
    assert index is not None
    candidates = index.candidates(attribute, wanted)
    candidates.sort(key=_primary_order)
    table.all_items = lambda: candidates  # type: ignore[method-assign]
    try:
        return moto_query(table, hash_key, *args, **kwargs)
    finally:
        del table.all_items


def sqs_message_within_retention(self: SQSBackend, queue_name: str, message: Any) -> bool:
    """moto's retention check, reading the one attribute it needs instead of all of them, thrice."""
    from moto.core.utils import unix_time

    queue: Any = self.get_queue(queue_name)
    retention_period = queue.message_retention_period
    return bool(retention_period + message.sent_timestamp / 1000 > unix_time())


def _queue_scans() -> dict[str, Any]:
    """A queue's visible, delayed and in-flight messages, each found with one reading of the clock.

    moto reads the clock (through datetime arithmetic) twice per message for every count. The
    answers are those of moto's properties at one instant; the visible messages are a view that a
    receive walks only as far as its batch (`VisibleMessages`)."""
    import moto.sqs.models as sqs

    def messages(self: Any) -> VisibleMessages:
        return VisibleMessages(list(self._messages), sqs.unix_time_millis())

    def approximate_number_of_messages_delayed(self: Any) -> int:
        now = sqs.unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def approximate_number_of_messages_not_visible(self: Any) -> int:
        now = sqs.unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    return {
        "messages": property(messages),
        "approximate_number_of_messages_delayed": property(approximate_number_of_messages_delayed),
        "approximate_number_of_messages_not_visible": property(approximate_number_of_messages_not_visible),
    }


class VisibleMessages:
    """A queue's visible messages at one instant, found as they are asked for.

    moto's ReceiveMessage walks `Queue.messages` only until it has its batch, so the messages
    behind the batch are not looked at; `len()` and truth (GetQueueAttributes, the long-poll
    wait) walk as far as they need. The walk is over a copy of the queue's list taken when the
    view is made (a C-level copy of references), as moto's own list comprehension was."""

    def __init__(self, messages: list[Any], now: float) -> None:
        self._messages = messages
        self._now = now

    def __iter__(self) -> Iterator[Any]:
        now = self._now
        return (m for m in self._messages if now > m.visible_at and not now < m.delayed_until)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(True for _ in self)

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, VisibleMessages) else other)

    __hash__ = None  # type: ignore[assignment]


class _DeduplicationSetting:
    """What SendMessage reads of `Queue.attributes`: the one setting, as moto's dict holds it.

    moto builds every attribute of the queue for it, the three counts among them, each a walk of
    every message. Another key is refused loudly (a later moto reading more here must be seen)."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def get(self, name: str, default: Any = None) -> Any:
        if name != "ContentBasedDeduplication":
            raise LookupError(f"moto's send read the queue attribute {name}, which the speedup does not provide")
        if not self._queue.fifo_queue:
            return default
        value = self._queue.content_based_deduplication
        return str(value).lower() if isinstance(value, bool) else value


_sending = threading.local()


def _queue_attributes(stock: property) -> property:
    def attributes(self: Any) -> Any:
        if getattr(_sending, "queue", None) is self:
            return _DeduplicationSetting(self)
        return stock.fget(self)  # type: ignore[misc]

    return property(attributes)


def _sending_without_counts(stock: Callable[..., Any]) -> Callable[..., Any]:
    def send_message(self: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.queues.get(queue_name)
        outer = getattr(_sending, "queue", None)
        _sending.queue = queue
        try:
            return stock(self, queue_name, *args, **kwargs)
        finally:
            _sending.queue = outer

    return send_message


def _deleting_pending_first(stock: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return
        # A handle is nearly always that of a message received and not yet deleted: look there
        # first, then (a handle of a message moto no longer lists as pending) do as moto does.
        found = next((m for m in self.pending_messages if m.had_receipt_handle(receipt_handle)), None)
        if found is None or found not in self._messages:
            stock(self, receipt_handle)
            return
        self.pending_messages.discard(found)
        self.deleted_messages.update(found.all_receipt_handles)
        self._messages.remove(found)

    return delete_message


def _remembered_per_class(stock: Callable[[Any], list[str]]) -> Callable[[Any], list[str]]:
    names: dict[Any, list[str]] = {}

    def method_names_from_class(clazz: Any) -> list[str]:
        if clazz not in names:
            names[clazz] = stock(clazz)
        return names[clazz]

    return method_names_from_class


def _remembered_possible_keys(stock: Callable[[Any, Any], Iterator[str]]) -> Callable[[Any, Any], Iterator[str]]:
    """moto's response serializer asks, for every member of every value it writes, which keys the
    value might hold it under (aliases from the member's shape, its parent shape and the value's
    class). For a plain dict - every DynamoDB item, record and attribute map - the answer depends
    only on the picker's providers, the member's name, its shape and its parent shape, which do not
    change, so it is worked out once per such combination (the shapes are kept alive with it, so
    their ids stay theirs)."""
    remembered: dict[tuple[Any, ...], tuple[list[str], Any, Any]] = {}

    def get_possible_keys(picker: Any, context: Any) -> Iterator[str]:
        if type(context.obj) is not dict:
            return iter(stock(picker, context))
        shape = context.shape
        parent = getattr(shape, "parent", None)
        key = (type(picker), tuple(picker.alias_providers), context.key, id(shape), id(parent))
        known = remembered.get(key)
        if known is None:
            try:
                known = (list(stock(picker, context)), shape, parent)
            except Exception:  # noqa: BLE001 - leave moto to raise it, lazily, as it would
                return iter(stock(picker, context))
            remembered[key] = known
        return iter(known[0])

    get_possible_keys.remembered = remembered  # type: ignore[attr-defined]
    return get_possible_keys


def _skipping_absent_members(stock: Callable[..., None]) -> Callable[..., None]:
    """For each member of a structure's shape the serializer builds a lookup context and asks the
    value for it, though a DynamoDB attribute value (a plain dict) holds one member of its ten. A
    member none of whose possible keys (remembered above) is in the dict reads as None, which
    moto then leaves out - unless a response transformer is registered for its path, in which
    case, as for anything else, moto's own code runs."""

    def _serialize_structure_member(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        picker = self._value_picker
        if type(value) is dict:
            remembered = getattr(type(picker).get_possible_keys, "remembered", None)
            parent = getattr(shape, "parent", None)
            known = (
                remembered.get((type(picker), tuple(picker.alias_providers), key, id(shape), id(parent)))
                if remembered is not None
                else None
            )
            if known is not None and not any(k in value or "." in k for k in known[0]):
                transformers = getattr(picker, "response_transformers", None)
                if transformers is not None and not transformers:
                    return
        stock(self, serialized, value, shape, key)

    return _serialize_structure_member


_PLAIN_LEAVES = (str, int, float, bool, type(None))
_plain_classes: dict[type, bool] = {}


def _copied_like_deepcopy(cls: type) -> bool:
    """Whether `copy.deepcopy` copies instances of `cls` as a new object with a deep copy of its
    `__dict__` (no hooks of its own, no slots), so that doing just that copies them alike."""
    known = _plain_classes.get(cls)
    if known is None:
        import copyreg

        known = (
            cls.__reduce_ex__ is object.__reduce_ex__
            and cls.__reduce__ is object.__reduce__
            and cls.__getstate__ is object.__getstate__
            and not hasattr(cls, "__setstate__")
            and not hasattr(cls, "__deepcopy__")
            and not hasattr(cls, "__slots__")
            and cls not in copyreg.dispatch_table
            and cls not in copy._deepcopy_dispatch  # type: ignore[attr-defined]
        )
        _plain_classes[cls] = known
    return known


def tree_copy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """`copy.deepcopy` for expression trees, without its generic machinery (a tenth of an update's
    time went to copying the parsed UpdateExpression before validating it). Plain objects, lists
    and immutable leaves are copied here, in deepcopy's order and with its memo (so a node's
    `parent` points at its parent's copy); anything else is handed to `copy.deepcopy` itself."""
    if memo is None:
        memo = {}
    if type(value) in _PLAIN_LEAVES:
        return value
    known = memo.get(id(value))
    if known is not None:
        return known
    if type(value) is list:
        copied: list[Any] = []
        memo[id(value)] = copied
        copied.extend(item if type(item) in _PLAIN_LEAVES else tree_copy(item, memo) for item in value)
        return copied
    if _copied_like_deepcopy(type(value)) and hasattr(value, "__dict__"):
        clone = object.__new__(type(value))
        memo[id(value)] = clone
        state = {
            key: item if type(item) in _PLAIN_LEAVES else tree_copy(item, memo) for key, item in vars(value).items()
        }
        clone.__dict__.update(state)
        return clone
    return copy.deepcopy(value, memo)


def _remembered_update_expressions(stock: Callable[[str], Any]) -> Callable[[str], Any]:
    """moto parses an UpdateExpression's text again for every request; its tree is never changed
    afterwards (the validator works on a deep copy), so one tree per text serves every request."""
    trees: dict[str, Any] = {}

    def make(expression: str) -> Any:
        tree = trees.get(expression)
        if tree is None:
            tree = stock(expression)  # a syntax error raises here, every time, as in moto
            if len(trees) < MAX_REMEMBERED_EXPRESSIONS:
                trees[expression] = tree
                _remember_pickled(tree)
        return tree

    return make


# The remembered UpdateExpression trees (alive for the process's life, so their ids stay theirs),
# each pickled once: the validator copies the tree for every update, and unpickling those bytes
# is the same copy at a fraction of the cost.
_pickled_trees: dict[int, bytes] = {}


def _remember_pickled(tree: Any) -> None:
    try:
        blob = pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a tree pickle cannot copy is copied by tree_copy
        return
    _pickled_trees[id(tree)] = blob


def validator_copy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """What moto's validators deep-copy: a remembered UpdateExpression tree is unpickled from its
    bytes (pickle rebuilds plain objects, lists and shared references exactly as deepcopy does);
    anything else goes to tree_copy."""
    blob = _pickled_trees.get(id(value)) if memo is None else None
    if blob is not None:
        return pickle.loads(blob)  # noqa: S301 - our own bytes, made from moto's parser's tree
    return tree_copy(value, memo)


def _plain_copy(value: Any) -> Any:
    """A copy of request JSON as parsed (dicts, lists, and immutable leaves)."""
    if type(value) is dict:
        return {k: _plain_copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_plain_copy(v) for v in value]
    return value


def _item_copies() -> tuple[Callable[[Any, dict[int, Any]], Any], Callable[[Any, dict[int, Any]], Any]]:
    """moto's own `__deepcopy__` of DynamoType and Item (an update copies the item it changes,
    a transaction each item it touches), with each child copied by calling this directly
    instead of through `copy.deepcopy`'s generic dispatch: the same objects, made in the same
    order, with the same memo (a value shared by two attributes stays shared in the copy)."""
    from moto.dynamodb.models.dynamo_type import DDBType, DynamoType, LimitedSizeDict

    sets = (DDBType.STRING_SET, DDBType.NUMBER_SET, DDBType.BINARY_SET)
    list_type, map_type = DDBType.LIST, DDBType.MAP

    def child(value: Any, memo: dict[int, Any]) -> Any:
        known = memo.get(id(value), memo)
        if known is not memo:
            return known
        if type(value) is DynamoType:
            return dynamo_copy(value, memo)
        return copy.deepcopy(value, memo)

    def dynamo_copy(self: Any, memo: dict[int, Any]) -> Any:
        if id(self) in memo:
            return memo[id(self)]
        result = self.__class__.__new__(self.__class__)
        memo[id(self)] = result
        result.type = self.type
        kind = self.type
        if kind == list_type:
            result.value = [child(v, memo) for v in self.value]
        elif kind == map_type:
            result.value = {k: child(v, memo) for k, v in self.value.items()}
        elif kind in sets:
            result.value = list(self.value)
        else:
            result.value = self.value
        return result

    def item_copy(self: Any, memo: dict[int, Any]) -> Any:
        if id(self) in memo:
            return memo[id(self)]
        result = self.__class__.__new__(self.__class__)
        memo[id(self)] = result
        result.hash_key = child(self.hash_key, memo)
        result.range_key = child(self.range_key, memo)
        # As moto's: the source passed LimitedSizeDict's size check when it was written.
        attrs = LimitedSizeDict.__new__(LimitedSizeDict)
        dict.__init__(attrs)
        for key, value in self.attrs.items():
            dict.__setitem__(attrs, key, child(value, memo))
        result.attrs = attrs
        return result

    return dynamo_copy, item_copy


def _traversal(stock_traverse: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """moto's DepthFirstTraverser.traverse (ten of them run over every UpdateExpression), with
    what it works out again at every node worked out once: each processor's map of node classes
    (a dict literal of the processor's own methods, rebuilt twice per node) and, per node class,
    which of them applies (isinstance against abstract classes). The walk is moto's: children
    first, in order, the pre-child hook before each, the processed node put in its parent's place.
    A traverser that overrides any of the walk's steps is left to moto's code."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]

    stock_steps = (
        DepthFirstTraverser.traverse_node_recursively,
        DepthFirstTraverser.nodes_to_be_processed,
        DepthFirstTraverser.process,
    )
    is_node: dict[type, bool] = {}
    # (traverser class, node class) -> position of the map's first class the node is an instance of.
    matching: dict[tuple[type, type], int] = {}

    def traverse(self: Any, node: Any) -> Any:
        cls = type(self)
        if (cls.traverse_node_recursively, cls.nodes_to_be_processed, cls.process) != stock_steps:
            return stock_traverse(self, node)
        processors = list(self._processing_map().items())
        pre_processing_of_child = self.pre_processing_of_child

        def position(node_type: type) -> int:
            key = (cls, node_type)
            found = matching.get(key)
            if found is None:
                found = next((i for i, (k, _) in enumerate(processors) if issubclass(node_type, k)), -1)
                matching[key] = found
            return found

        def visit(node: Any, child_id: int) -> Any:
            node_type = type(node)
            known = is_node.get(node_type)
            if known is None:
                known = is_node[node_type] = isinstance(node, Node)
            if not known:
                return node
            parent_node = node.parent
            if node.children is not None:
                for i, child_node in enumerate(node.children):
                    pre_processing_of_child(node, i)
                    visit(child_node, i)
            found = position(node_type)
            if found >= 0:
                node = processors[found][1](node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
            return node

        return visit(node, -1)

    return traverse


def _request_id_without_scan(stock: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """moto writes the request id into a reply's `<RequestId>` element with a regular expression
    run over the whole body, JSON replies included (a GetRecords reply carries tens of
    kilobytes). A text without `<RequestId>` cannot match it, so the scan is skipped there;
    moto's own code still makes the id and its header."""

    def _enrich_response(headers: Any, body: Any) -> Any:
        if type(body) is str and "<RequestId>" not in body:
            unchanged = body
            headers, body = stock(headers, "")
            return headers, unchanged
        return stock(headers, body)

    return _enrich_response


def _remembered_conditions(stock: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """moto parses a ConditionExpression (or filter) anew for every request. Its result - a tree
    of operators holding the expression's paths and values - depends only on the text, the
    names and the values, and evaluating it changes nothing, so one tree serves every request
    that gives the same three (with the names and values it found, which the handlers check for
    unused ones). A parse that raises is not remembered: it raises again every time, as in moto."""
    parsed: dict[str, tuple[Any, list[str], list[str]]] = {}

    def parse(self: Any) -> Any:
        if not self.condition_expression:
            # moto answers at once (no condition holds always); every write without a condition
            # asks, and the key below is a repr of the request's values.
            return stock(self)
        try:
            key = repr((self.condition_expression, self.expression_attribute_names, self.expression_attribute_values))
        except Exception:  # noqa: BLE001 - leave it to moto
            return stock(self)
        known = parsed.get(key)
        if known is None:
            names_before, values_before = len(self.expr_attr_names_found), len(self.expr_attr_values_found)
            # The tree keeps parts of the values it was given; a private copy of them keeps what
            # the request does to its own values afterwards out of the remembered tree.
            given = self.expression_attribute_values
            self.expression_attribute_values = _plain_copy(given)
            try:
                op = stock(self)
            finally:
                self.expression_attribute_values = given
            if len(parsed) >= MAX_REMEMBERED_EXPRESSIONS:
                parsed.clear()  # most keys carry a request's own values: keep the recent ones
            parsed[key] = (
                op,
                self.expr_attr_names_found[names_before:],
                self.expr_attr_values_found[values_before:],
            )
            return op
        op, names, values = known
        self.expr_attr_names_found.extend(names)
        self.expr_attr_values_found.extend(values)
        return op

    return parse


def _remembered_json_paths(stock: Callable[..., Any]) -> Callable[..., Any]:
    """moto's EventBridge parses a target's input paths (eight JSONPath texts when the target has
    no InputTransformer) for every event it delivers, and jsonpath_ng builds its whole LR parser
    for each parse. A parsed path is only read afterwards (`find`), so one per text serves all."""
    paths: dict[str, Any] = {}

    def parse(path: Any, debug: bool | None = None) -> Any:
        if debug or not isinstance(path, str):
            return stock(path, debug)
        parsed = paths.get(path)
        if parsed is None:
            parsed = stock(path)  # a malformed path raises here, every time, as in moto
            if len(paths) < MAX_REMEMBERED_EXPRESSIONS:
                paths[path] = parsed
        return parsed

    return parse


def _patch(owner: Any, attribute: str, ours: Any) -> None:
    # A class's own entry is kept as it is (a classmethod stays one) so that it can be put back.
    theirs = vars(owner)[attribute] if isinstance(owner, type) else getattr(owner, attribute)
    originals[attribute] = getattr(owner, attribute)
    _patches.append((owner, attribute, theirs, ours))
    setattr(owner, attribute, ours)


@contextmanager
def without_speedups() -> Iterator[None]:
    """moto exactly as it ships, for the duration (the tests compare the two side by side)."""
    global _generation
    for owner, attribute, theirs, _ in _patches:
        setattr(owner, attribute, theirs)
    try:
        yield
    finally:
        _generation += 1
        for owner, attribute, _, ours in _patches:
            setattr(owner, attribute, ours)


def install() -> None:
    """Patch moto in this process (idempotent)."""
    global _installed
    if _installed:
        return
    import moto.backends
    import moto.core.responses
    from jsonpath_ng import ext as jsonpath_ext
    from moto.core.serialize import AttributePicker, ResponseSerializer, XFormedAttributePicker
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
    from moto.sqs.models import Queue, SQSBackend

    moto_query = Table.query

    def partition_query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is not None:
            return index_query(moto_query, self, hash_key, *args, **kwargs)
        if self.range_key_attr is None:
            return moto_query(self, hash_key, *args, **kwargs)
        partition = list(self.items.get(hash_key, {}).values())
        self.all_items = lambda: partition  # type: ignore[method-assign]
        try:
            return moto_query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    _patch(DynamoDBBackend, "transact_write_items", transact_write_items)
    _patch(Table, "query", partition_query)
    _patch(Table, "put_item", _refreshing_put(Table.put_item))
    _patch(Table, "delete_item", _refreshing_delete(Table.delete_item))
    _patch(DynamoDBBackend, "update_item", _refreshing_update(DynamoDBBackend.update_item))
    # The folders of moto's package and the methods of its response classes do not change while
    # it runs; moto lists both again for every request.
    moto_modules = tuple(moto.backends.list_of_moto_modules())
    _patch(moto.backends, "list_of_moto_modules", lambda: moto_modules)
    _patch(
        moto.core.responses,
        "method_names_from_class",
        _remembered_per_class(moto.core.responses.method_names_from_class),
    )
    _patch(SQSBackend, "is_message_valid_based_on_retention_period", sqs_message_within_retention)
    for name, scan in _queue_scans().items():
        _patch(Queue, name, scan)
    _patch(Queue, "attributes", _queue_attributes(vars(Queue)["attributes"]))
    _patch(SQSBackend, "send_message", _sending_without_counts(SQSBackend.send_message))
    _patch(Queue, "delete_message", _deleting_pending_first(Queue.delete_message))
    # XFormedAttributePicker's own method calls AttributePicker's through super(): remembering
    # the subclass's answer covers both, and the base class's is remembered for other pickers.
    _patch(AttributePicker, "get_possible_keys", _remembered_possible_keys(AttributePicker.get_possible_keys))
    _patch(
        XFormedAttributePicker, "get_possible_keys", _remembered_possible_keys(XFormedAttributePicker.get_possible_keys)
    )
    _patch(
        ResponseSerializer,
        "_serialize_structure_member",
        _skipping_absent_members(ResponseSerializer._serialize_structure_member),
    )
    _patch(validators, "deepcopy", validator_copy)
    _patch(UpdateExpressionParser, "make", staticmethod(_remembered_update_expressions(UpdateExpressionParser.make)))
    # moto's events module imports `parse` from here inside the function, for every event.
    _patch(jsonpath_ext, "parse", _remembered_json_paths(jsonpath_ext.parse))
    _install_dynamodb_json()
    from pointbridge.sandbox import moto_writes

    for owner, attribute, ours in moto_writes.patches(_pickled_trees):
        _patch(owner, attribute, ours)
    moto_streams.install()  # stream records packed, trimmed after 24 hours
    _installed = True


def _install_dynamodb_json() -> None:
    """DynamoDB's requests parsed and replies written by walks compiled per shape (moto_dynamodb)."""
    from moto.core.responses import ActionResult, BaseResponse
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]

    from pointbridge.sandbox import moto_dynamodb

    _patch(ConditionExpressionParser, "parse", _remembered_conditions(ConditionExpressionParser.parse))
    _patch(DepthFirstTraverser, "traverse", _traversal(DepthFirstTraverser.traverse))
    dynamo_copy, item_copy = _item_copies()
    _patch(DynamoType, "__deepcopy__", dynamo_copy)
    _patch(Item, "__deepcopy__", item_copy)
    _patch(BaseResponse, "_enrich_response", staticmethod(_request_id_without_scan(BaseResponse._enrich_response)))
    _patch(ActionResult, "execute_result", moto_dynamodb.execute_result(ActionResult.execute_result))
    _patch(BaseResponse, "parse_parameters", moto_dynamodb.parse_parameters(BaseResponse.parse_parameters))
