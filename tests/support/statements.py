"""What a member must never read on a statement line: the ledger's entry ids, provisional member ids, hashes."""

from __future__ import annotations

import re

INTERNAL = re.compile(
    r"pv-[0-9a-f]{6,}|(shopify|square|till|partner|settle|expiry|ledger|gift):\S|(?=[0-9]*[a-f])[0-9a-f]{16,}"
)
