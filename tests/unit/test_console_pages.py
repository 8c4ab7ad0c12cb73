"""The console's three pages are served one way (functions/api/console_page.py): each lets its own inline
script and style run by their hashes and nothing else, and only the dashboard loads a script from beside it."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from functions.api.routes import figures, operations_desk, support

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.event_handler import Response

PAGES = Path(__file__).resolve().parents[2] / "functions" / "api"
SERVED = [
    (figures.console, "console.html", True),
    (support.members_page, "console_members.html", False),
    (operations_desk.operations_page, "console_operations.html", False),
]


def inline_hash(html: str, tag: str) -> str:
    [body] = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


@pytest.mark.parametrize(("route", "name", "loads_beside_it"), SERVED)
def test_each_page_runs_only_its_own_script_and_style(
    route: Callable[[], Response[str]], name: str, loads_beside_it: bool
) -> None:
    html = (PAGES / name).read_text(encoding="utf-8")
    # When the page is asked for
    reply = route()
    # Then it is the file, as HTML, never framed, never kept stale, sent nowhere as a referrer
    assert (reply.status_code, reply.content_type, reply.body) == (200, "text/html; charset=utf-8", html)
    headers = reply.headers
    assert (headers["X-Content-Type-Options"], headers["Referrer-Policy"], headers["Cache-Control"]) == (
        "nosniff",
        "no-referrer",
        "no-cache",
    )
    # And its policy names its inline script and style by hash, 'self' only for the dashboard's chart library
    self_ = "'self' " if loads_beside_it else ""
    assert headers["Content-Security-Policy"] == (
        "default-src 'none'; connect-src 'self'; "
        f"script-src {self_}{inline_hash(html, 'script')}; style-src {inline_hash(html, 'style')}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
