"""`pointbridge cards hash`: rewrite card numbers stored before card numbers were hashed.

Identity links written by earlier versions keep a loyalty card's number in their key (`ID#card#<number>`)
and in their member's identity set. Run once after deploying the version that hashes cards, against
the running sandbox by default, or a deployed stack's table with `--table NAME --secret ID` (the
stack's IdentityHashKey secret, `pointbridge/<stage>/identity-hash-key`) and the standard AWS
environment. It prints how many cards it rewrote and any it left for support (docs/security.md).

    pointbridge cards hash --table pointbridge-prod-points --secret pointbridge/prod/identity-hash-key
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pointbridge.cli import live_sandbox, register, table_target

if TYPE_CHECKING:
    import argparse


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    hashing = actions.add_parser("hash", help="rewrite stored card numbers as their keyed hashes")
    hashing.add_argument("--table", help="a deployed stack's points table (default: the running sandbox's)")
    hashing.add_argument("--secret", help="with --table: the stack's identity hash key secret (name or ARN)")


def _identity_key(args: argparse.Namespace) -> str | None:
    import boto3

    if args.table:
        if not args.secret:
            return None
        client: Any = boto3.client("secretsmanager")
        secret = args.secret
    else:
        live = live_sandbox()
        if live is None:
            return None
        client = boto3.client(
            "secretsmanager",
            endpoint_url=live["endpoint_url"],
            region_name="us-east-1",
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",
        )
        secret = live["resources"]["IdentityHashKey"]["physical_id"]
    return str(client.get_secret_value(SecretId=secret)["SecretString"])


def _run(args: argparse.Namespace) -> int:
    from functions.services import Services
    from shared.events.identity import hash_card

    target = table_target(args.table)
    key = _identity_key(args)
    if target is None or key is None:
        print("no running sandbox, or --table without --secret (the stack's identity hash key)", file=sys.stderr)
        return 2
    table, client = target
    done = Services(table_name=table, client=client).members.hash_stored_cards(lambda n: hash_card(key.encode(), n))
    print(f"{done.hashed} card(s) rewritten as keyed hashes in {table}")
    for member, holder in done.conflicts:
        print(f"left for support: {member}'s card is also {holder}'s (merge them, then run this again)")
    return 1 if done.conflicts else 0


register("cards", "rewrite card numbers stored before cards were hashed", _configure, _run)
