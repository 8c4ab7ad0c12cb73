"""moto_requests' replacements give exactly what moto's own code gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from moto.moto_api._internal.moto_random import MotoRandom

from pointbridge.sandbox import moto_requests


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**64),
    calls=st.lists(
        st.tuples(st.integers(min_value=0, max_value=80), st.booleans(), st.booleans()), min_size=1, max_size=5
    ),
)
def test_random_strings_are_moto_s_own_draws(seed: int, calls: list[tuple[int, bool, bool]]) -> None:
    stock, fast = MotoRandom(seed), MotoRandom(seed)
    stock_strings = [MotoRandom.get_random_string(stock, n, digits, lower) for n, digits, lower in calls]
    fast_strings = [moto_requests._random_string(fast, n, digits, lower) for n, digits, lower in calls]  # noqa: SLF001
    assert fast_strings == stock_strings
    assert fast.getstate() == stock.getstate()  # what is drawn next is the same too


def test_installed_for_every_caller_and_removable() -> None:
    stock = MotoRandom.get_random_string
    moto_requests.install()
    try:
        assert MotoRandom.get_random_string is moto_requests._random_string  # noqa: SLF001
        assert len(MotoRandom(1).get_random_string(length=52)) == 52
    finally:
        moto_requests.uninstall()
    assert MotoRandom.get_random_string is stock
