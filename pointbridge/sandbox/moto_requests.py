"""Costs moto pays on every request, whatever it asks, made smaller without changing a reply.

Installed in the emulator's process (emulator.py) next to moto_speedups. Each function here gives
exactly what moto's own gives (tests/integration/test_moto_requests.py).

- `get_random_string`: every reply carries a 52-character request id (`x-amzn-requestid`), which
  moto draws one character at a time through `Random.choice` - two method calls and a bounds check
  per character, a sixth of a small request's time in moto. The same draws are made here in one
  loop: `Random.choice(seq)` is `seq[_randbelow(len(seq))]`, and for a generator that has
  `getrandbits` (moto's `MotoRandom` does) `_randbelow(n)` draws `getrandbits(n.bit_length())` until
  it is below n. Same generator, same calls to it, same characters: a seeded moto still makes the
  same ids.
"""

from __future__ import annotations

import string
from typing import Any

_installed: dict[str, Any] = {}


def _random_string(self: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False) -> str:
    pool = string.ascii_letters + string.digits if include_digits else string.ascii_letters
    size = len(pool)
    bits = size.bit_length()
    getrandbits = self.getrandbits
    drawn = []
    for _ in range(length):
        index = getrandbits(bits)
        while index >= size:
            index = getrandbits(bits)
        drawn.append(pool[index])
    text = "".join(drawn)
    return text.lower() if lower_case else text


def install() -> None:
    from random import Random

    from moto.moto_api._internal.moto_random import MotoRandom

    if _installed:
        return
    # The loop above is what Random.choice does only where _randbelow draws with getrandbits.
    if MotoRandom._randbelow is not Random._randbelow_with_getrandbits:  # type: ignore[attr-defined]
        return
    _installed["get_random_string"] = MotoRandom.get_random_string
    setattr(MotoRandom, "get_random_string", _random_string)  # noqa: B010


def uninstall() -> None:
    from moto.moto_api._internal.moto_random import MotoRandom

    stock = _installed.pop("get_random_string", None)
    if stock is not None:
        setattr(MotoRandom, "get_random_string", stock)  # noqa: B010
