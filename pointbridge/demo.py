"""`pointbridge demo` (`make demo`): the platform's main job, on the local sandbox.

One shopper, Alice, earns in every channel: an online order (a signed Shopify webhook over HTTP),
a store visit (the till's end-of-day CSV dropped in the files bucket), a partner airline (its feed
file), and an app review (a normalised event sent straight to the ingest queue). Her identities
are then linked, and the HTTP API shows one balance and a statement that explains every entry.
The API stays up until Ctrl-C (DEMO_EXIT=1: run the scenario and exit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointbridge.cli import register

if TYPE_CHECKING:
    import argparse

    from pointbridge.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
PROGRAM_SEED = ROOT / "seeds" / "demo-program.json"
SHOP = "demo-outfitters.myshopify.com"
SHOP_SECRET = "demo-shop-webhook-secret"
PARTNER = "skyair"
ALICE_EMAIL = "alice@example.com"
ALICE_CARD = "6001 2345 6789"
ALICE_AIRLINE_ID = "AIR-778812"


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument(
        "--exit",
        action="store_true",
        default=os.environ.get("DEMO_EXIT", "0") not in ("", "0"),
        help="run the scenario and exit (also DEMO_EXIT=1)",
    )


def _channels() -> list[dict[str, Any]]:
    """The demo's channels, as an operator creates them (POST /admin/channels)."""
    return [
        {"kind": "shopify", "id": SHOP, "program": "demo", "secret": SHOP_SECRET},
        {"kind": "app", "id": "app", "program": "demo"},
        {"kind": "till", "id": "default", "program": "demo", "settings": {"phone_region": "US"}},
        {"kind": "partner", "id": PARTNER, "program": "demo"},
    ]


def shopify_order(now: datetime) -> dict[str, Any]:
    """An orders/paid webhook body in Shopify's documented shape (the fields the adapter reads)."""
    line = {
        "id": 1,
        "sku": "TENT-2P",
        "title": "Two-person tent",
        "product_type": "Camping",
        "quantity": 1,
        "price": "180.00",
        "price_set": {
            "shop_money": {"amount": "180.00", "currency_code": "USD"},
            "presentment_money": {"amount": "180.00", "currency_code": "USD"},
        },
        "gift_card": False,
        "discount_allocations": [
            {
                "amount": "20.00",
                "amount_set": {
                    "shop_money": {"amount": "20.00", "currency_code": "USD"},
                    "presentment_money": {"amount": "20.00", "currency_code": "USD"},
                },
            }
        ],
        "tax_lines": [],
    }
    return {
        "id": 5001,
        "name": "#5001",
        "email": ALICE_EMAIL,
        "created_at": (now - timedelta(minutes=2)).isoformat(),
        "processed_at": (now - timedelta(minutes=2)).isoformat(),
        "currency": "USD",
        "presentment_currency": "USD",
        "financial_status": "paid",
        "taxes_included": False,
        "test": False,
        "total_price": "172.50",
        "total_tax": "12.50",
        "total_shipping_price_set": {
            "shop_money": {"amount": "4.50", "currency_code": "USD"},
            "presentment_money": {"amount": "4.50", "currency_code": "USD"},
        },
        "customer": {"id": 77, "email": ALICE_EMAIL},
        "line_items": [line],
    }


def _shopify_headers(body: bytes, now: datetime) -> dict[str, str]:
    signature = base64.b64encode(hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": now.isoformat(),
    }


def _till_file(now: datetime) -> bytes:
    at = (now - timedelta(hours=3)).isoformat(timespec="seconds")
    rows = [
        "store_id,till_id,receipt_no,occurred_at,card_number,phone,currency,amount,type,original_receipt_no",
        f"S01,T1,R1001,{at},{ALICE_CARD},,USD,64.00,sale,",
        f"S01,T1,R1002,{at},6001 9999 0000,,USD,25.00,sale,",
        f"S01,T2,R2001,{at},,,USD,12.00,sale,",  # no card or phone: rejected with its reason
    ]
    return ("\n".join(rows) + "\n").encode()


def _partner_file(now: datetime) -> bytes:
    at = (now - timedelta(days=1)).isoformat(timespec="seconds")
    return (
        "partner_member_id,external_id,occurred_at,points,amount,currency,reason\n"
        f"{ALICE_AIRLINE_ID},flight-0001,{at},250,,,flight JFK-SFO\n"
    ).encode()


def _app_review(now: datetime, member: str) -> dict[str, Any]:
    return {
        "event": {
            "kind": "behaviour",
            "program": "demo",
            "channel": "app",
            "source": "app",
            "external_id": "review-tent-2p",
            "identity": {"kind": "member", "value": member},
            "occurred_at": now.isoformat(),
            "action": "review",
            "subject": "TENT-2P",
        }
    }


class DemoClient:
    """The demo's view of the API: plain HTTP with an admin key, as an operator would call it."""

    def __init__(self, base_url: str, key: str) -> None:
        import requests

        self._session = requests.Session()
        self._session.headers["x-api-key"] = key
        self._base = base_url

    def get(self, path: str) -> Any:
        reply = self._session.get(f"{self._base}{path}", timeout=30)
        reply.raise_for_status()
        return reply.json()


def run_scenario(sb: Sandbox) -> dict[str, Any]:
    import requests

    from functions.services import Services
    from shared.access.keys import Principal, PrincipalKind, issue_key
    from shared.events.identity import hash_card, hash_email
    from shared.events.model import Identity, IdentityKind
    from shared.program.config import load_program

    now = datetime.now(UTC)
    stack = Services(table_name=sb.resource("PointsTable"), client=sb.client("dynamodb"), config_cache_seconds=0)
    program = load_program(PROGRAM_SEED)
    stack.programs.publish(program)
    admin_key = issue_key(stack.access_items, Principal(kind=PrincipalKind.ADMIN, id="demo-operator"))
    for channel in _channels():
        created = requests.post(
            f"{sb.api_url}/admin/channels", json=channel, headers={"x-api-key": admin_key}, timeout=30
        )
        if created.status_code not in (201, 409):  # 409: kept from an earlier run of the demo
            raise RuntimeError(f"channel {channel['kind']} {channel['id']} refused: {created.text}")
    identity_key = sb.client("secretsmanager").get_secret_value(SecretId=sb.resource("IdentityHashKey"))["SecretString"]
    print(f"program {program.program!r} v{program.version}: {program.name}, {len(program.tiers)} tiers")

    print("\n1. Online: a signed Shopify orders/paid webhook over HTTP")
    body = json.dumps(shopify_order(now)).encode()
    reply = requests.post(
        f"{sb.api_url}/webhooks/shopify/{SHOP}", data=body, headers=_shopify_headers(body, now), timeout=30
    )
    print(f"   POST /webhooks/shopify/{SHOP} -> {reply.status_code}")
    forged = requests.post(
        f"{sb.api_url}/webhooks/shopify/{SHOP}",
        data=body.replace(b"180.00", b"980.00"),
        headers=_shopify_headers(body, now),
        timeout=30,
    )
    print(f"   the same webhook with a forged amount -> {forged.status_code} {forged.json().get('code')}")

    print("2. In store: the till's end-of-day CSV dropped in the files bucket")
    bucket = sb.resource("FilesBucket")
    sb.client("s3").put_object(Bucket=bucket, Key="till/eod-S01.csv", Body=_till_file(now))
    print("3. Partner: SkyAir's feed file")
    sb.client("s3").put_object(Bucket=bucket, Key=f"partners/{PARTNER}/feed.csv", Body=_partner_file(now))
    sb.wait_for_idle(timeout=60)

    directory = stack.members
    ingest = stack.ingest
    email = Identity(kind=IdentityKind.EMAIL, value=hash_email(identity_key.encode(), ALICE_EMAIL))
    card = Identity(kind=IdentityKind.CARD, value=hash_card(identity_key.encode(), ALICE_CARD))
    airline = Identity(kind=IdentityKind.PARTNER, value=ALICE_AIRLINE_ID, scope=PARTNER)
    member = directory.member_for(email.key)
    if member is None:
        raise RuntimeError("the online order did not reach the ledger; see the sandbox's invocations")

    print("4. App: a product review, sent as a normalised event straight to the ingest queue (SQS)")
    sb.client("sqs").send_message(QueueUrl=sb.resource("IngestQueue"), MessageBody=json.dumps(_app_review(now, member)))
    sb.wait_for_idle(timeout=60)
    report = json.loads(sb.client("s3").get_object(Bucket=bucket, Key="reports/till/eod-S01.csv.json")["Body"].read())
    print(f"   till file report: {report.get('accepted')} rows accepted, rejected: {report.get('rejected')}")

    print("\n5. Alice's card and airline id are linked to her online account (merged by ledger entries)")
    for other in (card, airline):
        ingest.link("demo", email, other)

    api = DemoClient(sb.api_url, admin_key)
    balance = api.get(f"/programs/demo/members/{member}/balance")
    statement = api.get(f"/programs/demo/members/{member}/statement")
    print(f"\nGET /programs/demo/members/{member}/balance")
    print("   " + json.dumps(balance))
    print(f"GET /programs/demo/members/{member}/statement")
    for line in statement.get("entries", []):
        points = line.get("points", line.get("amount"))
        print(
            f"   {str(line.get('recorded_at', ''))[:19]}  {points:>+6}  {line.get('explanation', line.get('reason'))}"
        )
    from pointbridge.audit import run_audit

    result = run_audit(sb.resource("PointsTable"), sb.client("dynamodb"))
    print(f"\naudit: {'OK' if result['ok'] else 'FAILED'} ({result['entries']} entries, chains and zero sums checked)")
    figures = show_figures(sb, api, result)
    return {
        "member": member,
        "balance": balance,
        "statement": statement,
        "audit": result,
        "admin_key": admin_key,
        "figures": figures,
    }


def show_figures(sb: Sandbox, api: DemoClient, audited: dict[str, Any]) -> dict[str, Any]:
    """The program's figures as the operator console shows them (the stream watcher's projection)."""
    sb.wait_for_idle(timeout=60)  # the watcher has seen every entry
    figures: dict[str, Any] = api.get("/admin/programs/demo/figures")
    to_date = figures["to_date"]
    print(f"\nGET /admin/programs/demo/figures ({figures['requests']} DynamoDB requests for {figures['days']} days)")
    print(f"   issued {to_date['issued']}, partner-funded {to_date['partner_funded']}", end="")
    print(f", redeemed {to_date['redeemed']}, expired {to_date['expired']}")
    print(f"   outstanding liability {to_date['liability']}", end="")
    print(f" (available {to_date['available']}, pending {to_date['pending']}, held {to_date['held']})")
    rate = to_date["redemption_rate"]
    print(f"   redemption rate {rate if rate is not None else '-'}, members {figures['members']}")
    print("   tiers: " + ", ".join(f"{t['name']} {t['count']}" for t in figures["tiers"]))
    print("   channels: " + ", ".join(f"{c['name']} {c['count']} ({c['share']})" for c in to_date["channels"]))
    members = ("available", "pending", "held")
    program_side = -sum(v for k, v in audited["totals"].get("demo", {}).items() if k not in members)
    verdict = "matches" if program_side == to_date["liability"] else "DIFFERS"
    print(f"   liability as the ledger's program-side accounts say it: {program_side} ({verdict})")
    return figures


def _run(args: argparse.Namespace) -> int:
    from pointbridge.cli import LOG_DIR
    from pointbridge.sandbox import Sandbox

    with Sandbox(template=args.template, stage="local", schedules=not args.exit, log_dir=LOG_DIR) as sb:
        print(f"sandbox up: API {sb.api_url}, emulator {sb.endpoint_url}")
        print(f"function logs (what each Lambda printed): {LOG_DIR}/<Function>.log\n")
        result = run_scenario(sb)
        if args.exit:
            return 0 if result["audit"]["ok"] and not result["figures"]["to_date"]["unexplained"] else 1
        print(f"\nThe API is up at {sb.api_url} (OpenAPI at {sb.api_url}/docs).")
        print(f"Operator console: {sb.api_url}/console (admin key: {result['admin_key']})")
        print(
            f'Try: curl -H "x-api-key: {result["admin_key"]}" '
            f"{sb.api_url}/programs/demo/members/{result['member']}/balance"
        )
        print("Ctrl-C to stop.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass
    return 0


register("demo", "run the platform locally and show its main job", _configure, _run)
