"""The emulator freezes what outlives a full collection: later full collections skip it, and
garbage made afterwards is still collected."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import pytest

from pointbridge.sandbox.emulator import freeze_survivors_of_full_collections

if TYPE_CHECKING:
    from collections.abc import Iterator


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a


@pytest.fixture
def frozen() -> Iterator[None]:
    callback = freeze_survivors_of_full_collections()
    try:
        yield
    finally:
        gc.callbacks.remove(callback)
        gc.unfreeze()


def test_survivors_of_a_full_collection_are_frozen(frozen: None) -> None:
    kept = [Node() for _ in range(1000)]
    before = gc.get_freeze_count()
    gc.collect()  # a full collection: what survives it is frozen
    assert gc.get_freeze_count() >= before + len(kept)
    assert all(gc.is_tracked(node) for node in kept)


def test_garbage_made_after_a_freeze_is_still_collected(frozen: None) -> None:
    gc.collect()
    for _ in range(50):
        cycle()
    assert gc.collect() >= 100  # the fifty cycles' hundred nodes
