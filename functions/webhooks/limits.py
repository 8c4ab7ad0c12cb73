"""How big a webhook may be: refused before anything is parsed or verified.

API Gateway accepts bodies up to 10 MB and cannot be told less; a Shopify order or a Square
notification is a few kilobytes (a large order some hundreds), so anything over a megabyte is not
a webhook we take, and refusing it early spares the HMAC and the JSON parse.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from shared.errors import PayloadTooLargeError

MAX_WEBHOOK_BYTES = 1024 * 1024


def oversized(event: dict[str, Any]) -> PayloadTooLargeError | None:
    body = event.get("body")
    if not isinstance(body, str):
        return None
    size = len(body.encode())
    if event.get("isBase64Encoded"):
        try:
            size = len(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError):
            size = len(body) * 3 // 4
    if size > MAX_WEBHOOK_BYTES:
        return PayloadTooLargeError(f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
    return None
