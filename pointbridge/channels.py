"""`pointbridge channels ...`: shops, Square sellers, till feeds, partners and the app, through the admin API.

Every write goes through the API (`/admin/channels`), so the CLI checks nothing itself and refuses
exactly what the API refuses, with the field named. The API is the running sandbox's unless
`--api-url` (or POINTBRIDGE_API_URL) names another; the admin key comes from POINTBRIDGE_API_KEY or
`--key-file`. Secrets are read from a file, standard input or an environment variable, never from
the command line (where `ps` and shell history would keep them).

    pointbridge channels list [--kind shopify]
    pointbridge channels show shopify acme.myshopify.com
    pointbridge channels create shopify acme.myshopify.com --program demo --secret-env SHOPIFY_SECRET
    pointbridge channels create square ML123 --program demo --settings '{"notification_url": "https://..."}' \\
        --secret-file square.key
    pointbridge channels change shopify acme.myshopify.com --secret-stdin    # a rotation
    pointbridge channels disable partner skyair
    pointbridge channels import sources.json   # the former SOURCES document, one record per channel
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointbridge.cli import live_sandbox, register

if TYPE_CHECKING:
    import argparse

KINDS = ("shopify", "square", "till", "partner", "app")
# The former SOURCES document's sections, by kind; its secrets moved out of the settings.
_DOCUMENT_SECTIONS = {"shopify": "shopify", "square": "square", "till": "till", "partners": "partner", "app": "app"}
_SECRET_FIELDS = {"shopify": "webhook_secret", "square": "signature_key"}
_DOCUMENT_ONLY = {"identity_key", "shop_domain", "merchant_id", "partner_id", "app_id"}


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class AdminApi:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.key = key

    def call(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        target = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"x-api-key": self.key, "Content-Type": "application/json"}
        request = urllib.request.Request(target, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            raise ApiError(error.code, parsed) from None

    def path(self, kind: str, channel_id: str, *rest: str) -> str:
        return "/".join(["/admin/channels", kind, urllib.parse.quote(channel_id, safe=""), *rest])


def _api(args: argparse.Namespace) -> AdminApi:
    url = args.api_url or os.environ.get("POINTBRIDGE_API_URL")
    if not url:
        live = live_sandbox()
        if live is None:
            raise SystemExit("no API: pass --api-url (or set POINTBRIDGE_API_URL), or start `pointbridge sandbox`")
        url = live["api_url"]
    if args.key_file:
        key = Path(args.key_file).read_text(encoding="utf-8").strip()
    else:
        key = os.environ.get("POINTBRIDGE_API_KEY", "")
    if not key:
        raise SystemExit("no admin key: set POINTBRIDGE_API_KEY or pass --key-file")
    return AdminApi(str(url), key)


def _secret(args: argparse.Namespace) -> str | None:
    if getattr(args, "secret_file", None):
        return Path(args.secret_file).read_text(encoding="utf-8").strip()
    if getattr(args, "secret_env", None):
        value = os.environ.get(args.secret_env)
        if value is None:
            raise SystemExit(f"environment variable {args.secret_env} is not set")
        return value.strip()
    if getattr(args, "secret_stdin", False):
        return sys.stdin.readline().strip()
    return None


def _settings(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    raw = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
    try:
        settings = json.loads(raw)
    except ValueError as exc:
        raise SystemExit(f"--settings is not JSON: {exc}") from None
    if not isinstance(settings, dict):
        raise SystemExit("--settings must be a JSON object")
    return settings


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-url", help="the API's base URL (default: POINTBRIDGE_API_URL, else the sandbox's)")
    parser.add_argument("--key-file", help="a file holding the admin key (default: POINTBRIDGE_API_KEY)")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every channel, or those of one kind")
    listing.add_argument("--kind", choices=KINDS)
    show = actions.add_parser("show", help="one channel (never its secret)")
    for sub in (show,):
        sub.add_argument("kind", choices=KINDS)
        sub.add_argument("id")
    create = actions.add_parser("create", help="a new channel")
    change = actions.add_parser("change", help="change a channel: the options given replace the stored values")
    for sub in (create, change):
        sub.add_argument("kind", choices=KINDS)
        sub.add_argument("id", help="shop domain, merchant id, till feed, partner id or app id")
        sub.add_argument("--program", required=sub is create)
        sub.add_argument("--settings", help="the adapter's settings as JSON, or @FILE")
        secret = sub.add_mutually_exclusive_group()
        secret.add_argument("--secret-file", help="read the secret from this file")
        secret.add_argument("--secret-env", help="read the secret from this environment variable")
        secret.add_argument("--secret-stdin", action="store_true", help="read the secret from standard input")
    for name, text in (("disable", "refuse a channel's events"), ("enable", "take a disabled channel's events again")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("kind", choices=KINDS)
        sub.add_argument("id")
    imported = actions.add_parser("import", help="create a record for each channel of a former SOURCES document")
    imported.add_argument("file", type=Path)


def _run(args: argparse.Namespace) -> int:
    api = _api(args)
    try:
        if args.action == "import":
            return _import(api, args.file)
        _print(_act(api, args))
    except ApiError as error:
        _print({"status": error.status, "refused": error.body})
        return 1
    return 0


def _act(api: AdminApi, args: argparse.Namespace) -> Any:
    if args.action == "list":
        return api.call("GET", "/admin/channels", query={"kind": args.kind} if args.kind else None)
    if args.action == "show":
        return api.call("GET", api.path(args.kind, args.id))
    if args.action == "create":
        body = {"kind": args.kind, "id": args.id, "program": args.program, "settings": _settings(args.settings) or {}}
        secret = _secret(args)
        if secret is not None:
            body["secret"] = secret
        return api.call("POST", "/admin/channels", body)
    current = api.call("GET", api.path(args.kind, args.id))
    if args.action == "change":
        change: dict[str, Any] = {"version": current["version"]}
        if args.program:
            change["program"] = args.program
        settings = _settings(args.settings)
        if settings is not None:
            change["settings"] = settings
        secret = _secret(args)
        if secret is not None:
            change["secret"] = secret
        return api.call("PUT", api.path(args.kind, args.id), change)
    return api.call("POST", api.path(args.kind, args.id, args.action), {"version": current["version"]})


def _import(api: AdminApi, path: Path) -> int:
    """One record per channel of the document; each refused one is reported and the others still made."""
    document = json.loads(path.read_text(encoding="utf-8"))
    results, failed = [], 0
    for section, kind in _DOCUMENT_SECTIONS.items():
        for channel_id, config in (document.get(section) or {}).items():
            settings = {k: v for k, v in config.items() if k not in _DOCUMENT_ONLY and k != "program"}
            secret = settings.pop(_SECRET_FIELDS.get(kind, ""), None)
            body = {"kind": kind, "id": channel_id, "program": config.get("program"), "settings": settings}
            if secret is not None:
                body["secret"] = secret
            try:
                record = api.call("POST", "/admin/channels", body)
                results.append({"kind": kind, "id": channel_id, "created": record["version"]})
            except ApiError as error:
                failed += 1
                results.append({"kind": kind, "id": channel_id, "refused": error.body})
    _print(results)
    return 1 if failed else 0


register("channels", "manage channel records through the admin API", _configure, _run)
