"""The console's HTML pages (/console, /console/members, /console/operations), served the one way.

Each page is a single static file with one inline script and one inline style; its Content-Security-
Policy lets those two run by their hashes and nothing else, and lets the page call only the API it
came from; the page asks for the admin key and sends it with each call itself.
"""

import base64
import hashlib
from functools import cache
from pathlib import Path

from aws_lambda_powertools.event_handler import Response

PAGES = Path(__file__).resolve().parent


@cache
def _page(name: str, same_origin_scripts: bool) -> tuple[str, str]:
    html = (PAGES / name).read_text(encoding="utf-8")
    sources = []
    for tag in ("script", "style"):
        body = html.split(f"<{tag}>", 1)[1].split(f"</{tag}>", 1)[0]
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        sources.append(f"{tag}-src 'sha256-{digest}'")
    if same_origin_scripts:
        # A vendored library beside the page (console_assets/, loaded with an integrity hash): 'self'.
        sources[0] = sources[0].replace("script-src ", "script-src 'self' ")
    policy = f"default-src 'none'; connect-src 'self'; {'; '.join(sources)}; base-uri 'none'; form-action 'none'"
    return html, policy


def console_page(name: str, *, same_origin_scripts: bool = False) -> Response[str]:
    """The page `name` (a file beside this module), with its policy; never framed, never cached stale."""
    html, policy = _page(name, same_origin_scripts)
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=html,
        headers={
            "Content-Security-Policy": policy + "; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )
