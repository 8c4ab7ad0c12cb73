"""What moto works out again for every DynamoDB write that gives the same answer every time.

1. **An UpdateExpression is validated by ten walks of its tree**, and most of them give the same
   answer for every request with the same expression and attribute names. moto's validator runs,
   in order: the clause counts and overlapping paths (both ask every clause node for the actions
   under it), the key-attribute check, the values put in (`:v`), the paths resolved against the
   item, the functions, the check for paths missing from the item, the arithmetic, the key types,
   the empty key strings. The first three read only the tree, the names and the table's key
   attributes, and return every node as it is. The fifth to seventh read the item - but for an
   expression without functions whose every path is a single attribute being written (`SET a =
   :v`, `ADD #n :one`, `REMOVE b`, `DELETE s :x`: the paths the ingest and watch transactions
   write), they only check that the name is defined and no reserved word, and return every node
   as it is, whatever the item and the values. So once moto's full validation has passed for an
   expression (one of the trees remembered per text), its names and its table's key attributes,
   later validations of the same three run only the four walks that read the values or the
   table (values, arithmetic, key types, empty key strings): the same tree, or the same first
   error, as the ten walks give. Each of the four is replayed at the places where it processes
   nodes in the parsed tree (`value_walk_plan`), instead of walking every node. Any other
   expression (a path read on the value side, as in `SET n = n + :one`; `if_not_exists`; `a.b`
   or `l[0]`) is validated by all ten walks, always.
2. **A remembered expression tree's clauses are listed again for every request** (the request
   handler asks for its attribute names and values). The tree never changes, so the lists are
   worked out once per tree and clause types (a new list each time, of the same nodes).
3. **A new item's size is summed again for every attribute put in it.** moto's item keeps its
   attributes in a dict that, on every assignment, sums the size of every attribute already in
   it (to refuse an item over DynamoDB's limit), so building an item of n attributes sizes
   n(n+1)/2 of them. Building an item here sizes each attribute once, with moto's own size
   functions, and keeps the running sum: the sums compared with the limit, and so the item or
   the error, are moto's. Later assignments (an update's) go through moto's dict as before.

4. **A set's size is summed by making a DynamoType of each member** (and that size is taken
   for every attribute assigned to an item holding the set: an update of a tally with a growing
   set of marks sized the whole set several times). A number, a string and a set are sized here
   as those DynamoTypes would size them: a number by its text's length, a string by its UTF-8
   bytes (moto's `bytesize`), a set member alike (a boolean, were one there, as 1). Lists, maps
   and everything else are sized by moto's own code.

`patches()` names each patch; moto_speedups.install() applies them, and without_speedups() puts
moto's code back. tests/integration/test_moto_writes.py runs random updates, transactions and
items through both and compares replies, errors, cancellation reasons, items and stream records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Callable, Container

MAX_REMEMBERED = 10_000
# Where a validator keeps the tree it was given (it holds only its own copy of it).
SOURCE = "_pointbridge_source_tree"
# The walks (positions in moto's list of processors) that read the values or the table.
VALUE_WALKS = (3, 7, 8, 9)
# moto's LimitedSizeDict refuses an item whose attributes' sizes sum above this.
ITEM_SIZE_LIMIT = 405_000


def independent_of_item(tree: Any) -> bool:
    """Whether the item-reading walks (resolve paths, functions, missing paths) leave `tree` as it
    is and raise only for what the tree and names decide, whatever the item: no function, and
    every path the first operand of an action and a single attribute (name or `#placeholder`).
    Every node's parent is the node holding it, so a walk putting a node back where it was
    changes nothing."""
    from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
        DDBTypedValue,
        ExpressionAttribute,
        ExpressionAttributeName,
        Node,
        NoneExistingPath,
        UpdateExpressionAddAction,
        UpdateExpressionDeleteAction,
        UpdateExpressionFunction,
        UpdateExpressionPath,
        UpdateExpressionRemoveAction,
        UpdateExpressionSetAction,
    )

    actions = (
        UpdateExpressionSetAction,
        UpdateExpressionRemoveAction,
        UpdateExpressionDeleteAction,
        UpdateExpressionAddAction,
    )
    refused = (UpdateExpressionFunction, NoneExistingPath, DDBTypedValue)

    def fits(node: Any, parent: Any, position: int) -> bool:
        if not isinstance(node, Node):
            return True
        if node.parent is not parent or isinstance(node, refused):
            return False
        if isinstance(node, UpdateExpressionPath):
            children = node.children or []
            return (
                position == 0
                and isinstance(parent, actions)
                and len(children) == 1
                and type(children[0]) in (ExpressionAttribute, ExpressionAttributeName)
                and children[0].parent is node
            )
        return all(fits(child, node, i) for i, child in enumerate(node.children or []))

    return fits(tree, None, -1)


def _processor_types() -> tuple[type, ...]:
    from moto.dynamodb.parsing import validators as v

    return (
        v.ActionCountValidator,
        v.OverlappingPathsValidator,
        v.UpdateHashRangeKeyValidator,
        v.ExpressionAttributeValueProcessor,
        v.ExpressionAttributeResolvingProcessor,
        v.UpdateExpressionFunctionEvaluator,
        v.NoneExistingPathChecker,
        v.ExecuteOperations,
        v.TypeMismatchValidator,
        v.EmptyStringKeyValueValidator,
    )


# A walk replayed: for each node it processes, in its order, the node's place (child positions from
# the root) and the class of the processor's map it answers to.
Steps = list[tuple[tuple[int, ...], type]]


def value_walk_plan(source: Any, processors: list[Any]) -> list[Steps] | None:
    """Where the four value walks process nodes of `source`'s copies, or None if that could differ.

    The walks of an item-independent tree change it only where they process a node: the values
    walk puts a DDBTypedValue in each value leaf's place; the arithmetic walk puts a DDBTypedValue
    (its result, or the value it held) in each UpdateExpressionValue's place; the two key walks
    return their SET actions as they are. So the nodes each walk processes are at the places the
    walk finds them in the parsed tree, in its order (children first), whatever the values, as
    long as no walk's nodes lie under or at the places an earlier walk replaced, no replacement is
    a node a later walk processes, and a value holds nothing but values and operators. Each walk
    is then its processor's own functions called at those places, in that order, each result put
    in its node's place as moto's traversal puts it; a refusal stops the walk where moto's stops."""
    stages = [_walk_steps(source, processor) for processor in processors]
    if any(steps is None for steps in stages):
        return None
    plan = cast("list[Steps]", stages)
    return plan if _places_hold(source, plan) else None


def _walk_steps(source: Any, processor: Any) -> Steps | None:
    """The places, in order, where moto's walk of `processor` over `source` processes a node."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]

    walk_steps = ("traverse_node_recursively", "nodes_to_be_processed", "process", "pre_processing_of_child")
    if any(getattr(type(processor), name) is not getattr(DepthFirstTraverser, name) for name in walk_steps):
        return None
    classes = list(processor._processing_map())
    steps: Steps = []

    def walk(node: Any, place: tuple[int, ...]) -> None:
        if not isinstance(node, Node):
            return
        for i, child in enumerate(node.children or []):
            walk(child, (*place, i))
        answers = next((c for c in classes if isinstance(node, c)), None)
        if answers is not None:
            steps.append((place, answers))

    walk(source, ())
    return steps


def _places_hold(source: Any, plan: list[Steps]) -> bool:
    """Whether each walk of the plan finds its nodes where it found them in `source`, once the
    earlier walks replaced theirs (see value_walk_plan)."""
    from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
        DDBTypedValue,
        ExpressionAttributeValue,
        ExpressionValueOperator,
        Node,
        UpdateExpressionValue,
    )

    values, arithmetic, *checks = plan
    replaced: list[tuple[int, ...]] = []
    for stage_number, steps in enumerate(plan):
        if any(issubclass(DDBTypedValue, answers) for _, answers in steps):
            return False
        if any(place[: len(earlier)] == earlier for place, _ in steps for earlier in replaced):
            return False
        if stage_number < 2:
            replaced.extend(place for place, _ in steps)

    def node_at(place: tuple[int, ...]) -> Any:
        node = source
        for i in place:
            node = node.children[i]
        return node

    def only_values(node: Any) -> bool:
        allowed = (ExpressionAttributeValue, ExpressionValueOperator, UpdateExpressionValue)
        return all(not isinstance(c, Node) or (type(c) in allowed and only_values(c)) for c in node.children or [])

    leaves = [node_at(place) for place, _ in values]
    if any(
        type(leaf) is not ExpressionAttributeValue or any(isinstance(c, Node) for c in leaf.children or [])
        for leaf in leaves
    ):
        return False
    for place, answers in arithmetic:
        node = node_at(place)
        if answers is not UpdateExpressionValue or type(node) is not UpdateExpressionValue or not only_values(node):
            return False
    return not any(
        answers in (UpdateExpressionValue, ExpressionAttributeValue) for steps in checks for _, answers in steps
    )


def replay(root: Any, processor: Any, steps: Steps) -> Any:
    """One walk of `processor` over `root`, processing the nodes at the places `steps` names."""
    functions = processor._processing_map()
    for place, answers in steps:
        node = root
        for i in place:
            node = node.children[i]
        parent_node = node.parent
        node = functions[answers](node)
        node.parent = parent_node
        if parent_node:
            parent_node.children[place[-1]] = node
        elif not place:
            root = node
    return root


def keeping_source(stock: Callable[..., None]) -> Callable[..., None]:
    def __init__(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
        stock(self, expression, *args, **kwargs)
        self.__dict__[SOURCE] = expression

    return __init__


def validating_values_only(stock: Callable[[Any], Any], remembered: Container[int]) -> Callable[[Any], Any]:
    """moto's `Validator.validate`, running only VALUE_WALKS once moto's ten walks passed for the
    expression, its names and its table's key attributes (see the module's docstring). Only the
    trees whose ids are in `remembered` are known: kept for the process's life, never changed."""
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator

    expected = _processor_types()
    independent: dict[int, bool] = {}
    plans: dict[int, list[Steps] | None] = {}
    passed: set[tuple[Any, ...]] = set()

    def key_of(validator: Any) -> tuple[Any, ...] | None:
        source = validator.__dict__.get(SOURCE)
        if type(validator) is not UpdateExpressionValidator or source is None or id(source) not in remembered:
            return None
        if tuple(type(p) for p in validator.processors) != expected:
            return None
        fits = independent.get(id(source))
        if fits is None:
            fits = independent[id(source)] = independent_of_item(source)
        if not fits:
            return None
        names = validator.expression_attribute_names
        try:
            return (
                id(source),
                None if names is None else frozenset(names.items()),
                tuple(validator.table.table_key_attrs),
            )
        except (TypeError, AttributeError):
            return None

    def validate(self: Any) -> Any:
        key = key_of(self)
        if key is None or key not in passed:
            validated = stock(self)  # raises as moto does, and then is not remembered
            if key is not None:
                if len(passed) >= MAX_REMEMBERED:
                    passed.clear()
                passed.add(key)
            return validated
        node = self.node_to_validate
        walks = [self.processors[position] for position in VALUE_WALKS]
        source_id = key[0]
        if source_id not in plans:
            plans[source_id] = value_walk_plan(self.__dict__[SOURCE], walks)
        plan = plans[source_id]
        if plan is None:
            for walk in walks:
                node = walk.traverse(node)
            return node
        for walk, steps in zip(walks, plan, strict=True):
            node = replay(node, walk, steps)
        return node

    return validate


def remembered_clauses(
    stock: Callable[[Any, Any], list[Any]], remembered: Container[int]
) -> Callable[[Any, Any], list[Any]]:
    """`Node.find_clauses`, worked out once per remembered tree (see above) and clause types."""
    found: dict[tuple[int, tuple[type, ...]], list[Any]] = {}

    def find_clauses(self: Any, clause_types: Any) -> list[Any]:
        if id(self) not in remembered:
            return stock(self, clause_types)
        try:
            key = (id(self), tuple(clause_types))
        except TypeError:
            return stock(self, clause_types)
        clauses = found.get(key)
        if clauses is None:
            clauses = stock(self, clause_types)
            if len(found) < MAX_REMEMBERED:
                found[key] = clauses
        return list(clauses)

    return find_clauses


def building_items_sized_once(stock: Callable[..., None]) -> Callable[..., None]:
    """moto's `Item.__init__`, with the size of what is already in the item carried along."""
    from moto.dynamodb.models import dynamo_type

    DynamoType, LimitedSizeDict = dynamo_type.DynamoType, dynamo_type.LimitedSizeDict  # noqa: N806
    bytesize, too_large = dynamo_type.bytesize, dynamo_type.ItemSizeTooLarge

    def __init__(self: Any, hash_key: Any, range_key: Any, attrs: Any) -> None:
        if type(attrs) is not dict or LimitedSizeDict.__setitem__ is not limited_set:
            stock(self, hash_key, range_key, attrs)
            return
        self.hash_key = hash_key
        self.range_key = range_key
        held = self.attrs = LimitedSizeDict()
        held_size = 0  # what moto's dict sums over its keys and values before each assignment
        for key, value in attrs.items():
            converted = DynamoType(value)
            value_size = converted.size()
            if held_size + bytesize(key) + value_size > ITEM_SIZE_LIMIT:
                raise too_large
            dict.__setitem__(held, key, converted)
            held_size += bytesize(str(key)) + value_size

    limited_set = LimitedSizeDict.__setitem__
    return __init__


def sizing_scalars_and_sets_directly(stock: Callable[[Any], int]) -> Callable[[Any], int]:
    """`DynamoType.size` for numbers, strings and sets; moto's own for the rest."""
    from moto.dynamodb.models import dynamo_type

    DynamoType, bytesize = dynamo_type.DynamoType, dynamo_type.bytesize  # noqa: N806

    def size(self: Any) -> int:
        kind = self.type
        if type(self) is not DynamoType or type(kind) is not str:
            return stock(self)
        if kind == "N":
            return len(str(self.value))
        if kind == "S":
            value = self.value
            return 1 if isinstance(value, bool) else bytesize(value)
        if kind in ("SS", "BS"):
            return sum([1 if isinstance(member, bool) else bytesize(member) for member in self.value])
        if kind == "NS":
            return sum([len(str(member)) for member in self.value])
        return stock(self)

    return size


def patches(remembered_trees: Container[int]) -> list[tuple[Any, str, Any]]:
    """(owner, attribute, ours) for moto_speedups.install(); `remembered_trees` holds the ids of the
    UpdateExpression trees remembered per text."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.validators import Validator

    return [
        (Validator, "__init__", keeping_source(Validator.__init__)),
        (Validator, "validate", validating_values_only(Validator.validate, remembered_trees)),
        (Node, "find_clauses", remembered_clauses(Node.find_clauses, remembered_trees)),
        (Item, "__init__", building_items_sized_once(Item.__init__)),
        (DynamoType, "size", sizing_scalars_and_sets_directly(DynamoType.size)),
    ]
