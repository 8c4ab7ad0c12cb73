"""Debian's chromium for the browser tests, driven by Playwright (which never downloads a browser here).

Without /usr/bin/chromium a browser test skips with the reason, unless POINTBRIDGE_REQUIRE_BROWSER
is set (CI sets it: `.ci/run` installs chromium), where it fails.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import BrowserContext

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_skip(what: str) -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is not installed (apt-get install -y chromium); {what} needs it"
    if os.environ.get("POINTBRIDGE_REQUIRE_BROWSER"):
        pytest.fail(reason + ", and POINTBRIDGE_REQUIRE_BROWSER is set")
    pytest.skip(reason)


@contextmanager
def chromium(what: str) -> Iterator[BrowserContext]:
    """A headless chromium with a throwaway profile; skips (or fails, in CI) without chromium."""
    chromium_or_skip(what)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="pb-chromium-") as profile, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()
