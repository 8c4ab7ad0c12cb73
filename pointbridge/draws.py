"""`pointbridge draw verify`: check a revealed draw from what it publishes, trusting nobody's word.

Give it the draw as `GET /programs/{program}/draws/{draw}` answers it (a file, or - for stdin). It
recomputes the entrants' Merkle root from the published tickets, checks the signature over
(program, draw, root) with the draw key's public key (RSASSA-PKCS1-v1_5 SHA-256), derives the
randomness from the signature and the winners from the randomness, and says which step fails.
The public key it trusts: --public-key (a file with the base64 DER key, as KMS GetPublicKey and the
deployment docs give it), else the running sandbox's DrawSigningKey (KMS GetPublicKey), else only
the key the draw itself publishes, which it says (a forger who rewrote the draw item could have
put his own key there). Exit 0: verified; 1: it fails; 2: nothing to verify.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointbridge.cli import live_sandbox, register
from shared.rewards.draws import entrants_root, pick_winners, randomness_of, signed_message

if TYPE_CHECKING:
    import argparse


def verify_draw(published: dict[str, Any], trusted_public_key: bytes | None) -> list[str]:
    """Every way the published draw fails to verify (empty: it verifies)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    if not published.get("revealed_at") or not published.get("signature"):
        return ["the draw is not revealed: nothing to verify yet"]
    problems: list[str] = []
    tickets = {str(member): int(count) for member, count in published["tickets"].items()}
    root = entrants_root(tickets)
    if root != published["entrants_root"]:
        problems.append(
            f"the published tickets give the entrants root {root}, the draw says {published['entrants_root']}: "
            "the entrants were changed after the freeze"
        )
    published_key = base64.b64decode(published["public_key"])
    if trusted_public_key is not None and trusted_public_key != published_key:
        problems.append("the draw's public key is not the draw signing key's")
    key = load_der_public_key(trusted_public_key if trusted_public_key is not None else published_key)
    signature = base64.b64decode(published["signature"])
    if not isinstance(key, RSAPublicKey):
        problems.append("the draw signing key is not an RSA key")
    else:
        try:
            key.verify(signature, signed_message(published["program"], published["id"], root), PKCS1v15(), SHA256())
        except InvalidSignature:
            problems.append(
                "the signature does not verify over (program, draw, entrants root) with the draw signing key"
            )
    randomness = randomness_of(signature)
    if randomness != published["randomness"]:
        problems.append(f"the signature gives the randomness {randomness}, the draw says {published['randomness']}")
    winners = pick_winners(randomness, tickets, int(published["winners"]))
    if winners != published["winner_ids"]:
        problems.append(f"the randomness and the tickets draw {winners}, the draw says {published['winner_ids']}")
    return problems


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["verify"])
    parser.add_argument("draw", help="the draw as the API returns it (a JSON file, or - for stdin)")
    parser.add_argument("--public-key", type=Path, help="a file with the draw signing key's base64 DER public key")


def _trusted_key(args: argparse.Namespace) -> tuple[bytes | None, str]:
    if args.public_key is not None:
        return base64.b64decode(args.public_key.read_text(encoding="utf-8").strip()), str(args.public_key)
    live = live_sandbox()
    key = live["resources"].get("DrawSigningKey", {}).get("physical_id") if live is not None else None
    if live is None or not key:
        return None, ""
    import boto3

    kms = boto3.client(
        "kms",
        endpoint_url=live["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    return bytes(kms.get_public_key(KeyId=key)["PublicKey"]), f"the sandbox's DrawSigningKey ({key})"


def _run(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.draw == "-" else Path(args.draw).read_text(encoding="utf-8")
    try:
        published = json.loads(text)
    except ValueError as exc:
        print(f"not a draw: {exc}")
        return 2
    trusted, where = _trusted_key(args)
    if trusted is None:
        print("no --public-key and no running sandbox: checking against the key the draw itself publishes")
    else:
        print(f"public key from {where}")
    problems = verify_draw(published, trusted)
    for problem in problems:
        print(f"  FAILED: {problem}")
    if not problems:
        print(
            f"  OK: draw {published['id']} of {published['program']}: {len(published['tickets'])} entrants, "
            f"root {published['entrants_root']}, winners {', '.join(published['winner_ids']) or '(none)'}"
        )
    return 1 if problems else 0


register("draw", "verify a revealed draw: entrants root, signature, randomness and winners", _configure, _run)
