"""`pointbridge keys`: mint, list and revoke API keys straight in the table (the first admin key too).

Against the running sandbox (from .pointbridge/sandbox.json) by default, or against a deployed
stack's table with `--table NAME` and the standard AWS environment (credentials, region). The API
does the same for operators (`POST /admin/keys`, `GET /admin/keys`, `.../revoke`, `.../rotate`);
this is how the first key, an operator's, comes to exist:

    pointbridge keys create --role admin --id alice
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pointbridge.cli import register, table_target

if TYPE_CHECKING:
    import argparse

ROLES = ("admin", "operator", "support", "auditor", "member", "channel", "partner")


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="mint a key; it is printed once and only its hash is stored")
    create.add_argument("--role", required=True, choices=ROLES, help="admin is an operator (it can mint keys)")
    create.add_argument("--id", help="who the key stands for (member id, channel id, partner id, admin's name)")
    create.add_argument("--program", action="append", default=[], help="a program it may touch (repeat)")
    create.add_argument("--agreement", action="append", default=[], help="a partner's agreement (repeat)")
    create.add_argument("--authenticates-members", action="store_true", help="a channel that logs members in")
    create.add_argument("--expires-in-days", type=int, default=365)
    listing = actions.add_parser("list", help="every key: id, principal, status, expiry, last use (never the key)")
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason", required=True)
    for sub in (create, listing, revoke):
        sub.add_argument("--table", help="a deployed stack's points table (default: the running sandbox's)")
        sub.add_argument("--json", action="store_true", help="print JSON")


def _principal(args: argparse.Namespace) -> Any:
    from shared.access.keys import AdminRole, Principal, PrincipalKind

    admin = args.role in ("admin", "operator", "support", "auditor")
    ident = args.id or ("bootstrap" if admin else None)
    if ident is None:
        raise ValueError(f"a {args.role} key needs --id")
    return Principal(
        kind=PrincipalKind.ADMIN if admin else PrincipalKind(args.role),
        id=ident,
        programs=tuple(args.program),
        role=(AdminRole.OPERATOR if args.role == "admin" else AdminRole(args.role)) if admin else None,
        agreements=tuple(args.agreement),
        authenticates_members=args.authenticates_members,
    )


def _info(record: Any, now: datetime) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "principal": record.principal.model_dump(mode="json", exclude_defaults=True),
        "status": record.status(now),
        "created_at": record.created_at.isoformat(),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "last_used_at": record.last_used_at.isoformat() if record.last_used_at else None,
    }


def _run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from functions.services import Services
    from shared.access.keys import mint_key

    target = table_target(args.table)
    if target is None:
        print("no running sandbox (start one with `pointbridge sandbox`), and no --table given", file=sys.stderr)
        return 2
    table, client = target
    items = Services(table_name=table, client=client).access_items
    now = datetime.now(UTC)
    if args.action == "create":
        try:
            principal = _principal(args)
        except (ValueError, ValidationError) as invalid:
            print(f"error: {invalid}", file=sys.stderr)
            return 2
        issued = mint_key(
            items, principal, now=now, expires_at=now + timedelta(days=args.expires_in_days), created_by="cli"
        )
        if args.json:
            print(json.dumps({"key": issued.key, **_info(issued.record, now)}, indent=2))
        else:
            expires = f"{issued.record.expires_at:%Y-%m-%d}"
            print(f"key {issued.record.key_id} for {principal.key} in {table}, expires {expires}")
            print(f"  {issued.key}")
            print("  shown once: only its hash is stored. Send it in the x-api-key header.")
        return 0
    if args.action == "list":
        found: list[Any] = []
        cursor = ""
        while True:
            page, next_cursor = items.keys_page(cursor, 100)
            found += page
            if next_cursor is None:
                break
            cursor = next_cursor
        infos = [_info(record, now) for record in found]
        if args.json:
            print(json.dumps(infos, indent=2))
        for info in [] if args.json else infos:
            who = json.dumps(info["principal"])
            print(f"{info['key_id']}  {info['status']:<8} {who}  last used {info['last_used_at']}")
        return 0
    revoked = items.revoke_key(args.key_id, now, "cli", args.reason)
    if revoked is None:
        print(f"no key {args.key_id} in {table}", file=sys.stderr)
        return 1
    print(json.dumps(_info(revoked, now), indent=2) if args.json else f"revoked {args.key_id}")
    return 0


register("keys", "mint, list and revoke API keys (the first admin key too)", _configure, _run)
