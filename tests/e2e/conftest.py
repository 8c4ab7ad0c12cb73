"""What every e2e module shares: its replies are checked against the committed OpenAPI document."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.openapi_contract import OBSERVED, undeclared

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module", autouse=True)
def replies_are_declared_in_the_document() -> Iterator[None]:
    """Every status and problem code this module saw through HttpApi is declared for its operation.

    Checked when the module ends: under pytest-xdist `--dist loadfile` a module runs whole in one
    process, so its observations are all here.
    """
    first = len(OBSERVED)
    yield
    found = undeclared(OBSERVED[first:])
    assert not found, "replies that openapi.json does not declare:\n" + "\n".join(found)
