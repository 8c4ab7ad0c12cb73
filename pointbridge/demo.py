"""`pointbridge demo` (`make demo`): the product's story, on the local sandbox.

Part 1 (`pointbridge.story`): Demo Outfitters, with an online shop, three stores and an airline
partner, and a few hundred members over several simulated months: they earn in every channel,
redeem, get reminded, lose expired points, move tiers; one is flagged. Then today, at the desk,
over the HTTP API with keys the operator mints: members swap points with SkyAir (an exchange into
its miles, transfers out it confirms or rejects, its transfer in), SkyAir reads its settlement, and
support decides the flag with a reason.
Part 2, today: one shopper, Alice, earns in every channel through the real front doors: an online
order (a signed Shopify webhook over HTTP), a store visit (the till's end-of-day CSV dropped in the
files bucket), a partner airline (its feed file), and an app review (a normalised event sent
straight to the ingest queue). Her identities are then linked, and the HTTP API shows one balance
and a statement that explains every entry.
Then: what a CRM received (the CRM queue's outbound events), the audit, and the console's figures,
which must equal the audit's. The API stays up until Ctrl-C (DEMO_EXIT=1: run it all and exit).
DEMO_MEMBERS and DEMO_WEEKS size part 1 (default 200 members, 12 weeks).
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
    from shared.infra.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PROGRAM_SEED = ROOT / "seeds" / "demo-program.json"
SHOP = "demo-outfitters.myshopify.com"
SHOP_SECRET = "demo-shop-webhook-secret"
PARTNER = "skyair"
ALICE_EMAIL = "alice@example.com"
ALICE_CARD = "6001 2345 6789"
ALICE_AIRLINE_ID = "AIR-778812"
# A loaded machine's sandbox may take a while to answer while the watch works through the story's entries.
REQUEST_TIMEOUT = 180
STORY_MEMBERS = int(os.environ.get("DEMO_MEMBERS", "200"))
STORY_WEEKS = int(os.environ.get("DEMO_WEEKS", "12"))


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
        reply = self._session.get(f"{self._base}{path}", timeout=REQUEST_TIMEOUT)
        reply.raise_for_status()
        return reply.json()


def _stack_keys(sb: Sandbox) -> Settings:
    """Settings with the sandbox's own identity and chain keys: what the demo writes in-process is
    hashed and sealed as the stack's functions would, so links match and the audit verifies it."""
    from shared.infra.settings import Settings

    def secret(name: str) -> str:
        return str(sb.client("secretsmanager").get_secret_value(SecretId=sb.resource(name))["SecretString"])

    return Settings.from_environment().model_copy(
        update={"identity_hash_key_text": secret("IdentityHashKey"), "chain_hash_key_text": secret("ChainHashKey")}
    )


def run_scenario(sb: Sandbox, members: int = STORY_MEMBERS, weeks: int = STORY_WEEKS) -> dict[str, Any]:
    import requests

    from functions.services import Services
    from pointbridge.story import Desk, SimulatedClock, StackApi, run_story, story_start, swap_candidates
    from pointbridge.subscriber import CrmSubscriber
    from shared.access.keys import Principal, PrincipalKind, issue_key
    from shared.events.identity import hash_card, hash_email
    from shared.events.model import Identity, IdentityKind

    now = datetime.now(UTC)
    crm = CrmSubscriber(sb.client("sqs"), sb.resource("CrmQueue"))
    clock = SimulatedClock(story_start(weeks, now))
    months = Services(
        _stack_keys(sb),
        table_name=sb.resource("PointsTable"),
        client=sb.client("dynamodb"),
        config_cache_seconds=3600,  # the story publishes its config once, before anything reads it
        clock=clock,
        sleep=lambda _: None,
    )
    print(f"Part 1: {members} members over {weeks} simulated weeks, from {clock.now.date()}")
    story = run_story(sb, months, clock, members, weeks)
    channels = ", ".join(f"{name} {count}" for name, count in sorted(story.events.items()))
    print(f"   {sum(story.events.values())} events ({channels}), {story.redemptions} rewards redeemed")
    print(f"   {story.job_runs} scheduled job runs (activation, expiry, reminders, tier review) at each week's end")
    # The schedules catch up from the story's last week to now, as they would have run meanwhile.
    for job in ("ActivationFunction", "ExpiryFunction", "ReminderFunction", "TierFunction"):
        sb.run_function(job, now=now)
    stack = Services(
        _stack_keys(sb), table_name=sb.resource("PointsTable"), client=sb.client("dynamodb"), config_cache_seconds=0
    )
    program = stack.programs.get("demo")
    admin_key = issue_key(stack.access_items, Principal(kind=PrincipalKind.ADMIN, id="demo-operator"))
    for channel in _channels():
        created = requests.post(
            f"{sb.api_url}/admin/channels", json=channel, headers={"x-api-key": admin_key}, timeout=REQUEST_TIMEOUT
        )
        if created.status_code not in (201, 409):  # 409: kept from an earlier run of the demo
            raise RuntimeError(f"channel {channel['kind']} {channel['id']} refused: {created.text}")
    print("\nToday, at the desk: people at the API, each with the key the operator mints for them")
    desk = Desk(sb, StackApi(sb.api_url, REQUEST_TIMEOUT), admin_key)
    swapped = desk.run(swap_candidates(stack, "demo", members), now)
    identity_key = sb.client("secretsmanager").get_secret_value(SecretId=sb.resource("IdentityHashKey"))["SecretString"]
    print(
        f"\nPart 2, today: program {program.program!r} v{program.version}: {program.name}, {len(program.tiers)} tiers"
    )

    print("\n1. Online: a signed Shopify orders/paid webhook over HTTP")
    body = json.dumps(shopify_order(now)).encode()
    reply = requests.post(
        f"{sb.api_url}/webhooks/shopify/{SHOP}", data=body, headers=_shopify_headers(body, now), timeout=REQUEST_TIMEOUT
    )
    print(f"   POST /webhooks/shopify/{SHOP} -> {reply.status_code}")
    forged = requests.post(
        f"{sb.api_url}/webhooks/shopify/{SHOP}",
        data=body.replace(b"180.00", b"980.00"),
        headers=_shopify_headers(body, now),
        timeout=REQUEST_TIMEOUT,
    )
    print(f"   the same webhook with a forged amount -> {forged.status_code} {forged.json().get('code')}")

    print("2. In store: the till's end-of-day CSV dropped in the files bucket")
    bucket = sb.resource("FilesBucket")
    sb.client("s3").put_object(Bucket=bucket, Key="till/eod-S01.csv", Body=_till_file(now))
    print("3. Partner: SkyAir's feed file")
    sb.client("s3").put_object(Bucket=bucket, Key=f"partners/{PARTNER}/feed.csv", Body=_partner_file(now))
    sb.wait_for_idle(timeout=600)

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
    sb.wait_for_idle(timeout=600)
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

    sb.wait_for_idle(timeout=600)
    show_crm(crm)
    shown = story_member(crm)
    show_member(api, shown)
    chain_key = sb.client("secretsmanager").get_secret_value(SecretId=sb.resource("ChainHashKey"))["SecretString"]
    result = run_audit(sb.resource("PointsTable"), sb.client("dynamodb"), chain_key=str(chain_key).encode())
    print(f"\naudit: {'OK' if result['ok'] else 'FAILED'} ({result['entries']} entries, keyed chains, sums checked)")
    for problem in result["problems"]:
        print(f"   PROBLEM {problem}")
    figures = show_figures(sb, api, result)
    return {
        "member": member,
        "balance": balance,
        "statement": statement,
        "audit": result,
        "admin_key": admin_key,
        "figures": figures,
        "story": story,
        "desk": swapped,
        "crm": crm,
        "story_member": shown,
    }


def story_member(crm: Any) -> str:
    """A member of the story whose statement shows much: one who lost points, else one who redeemed, else earned."""
    for kind in ("PointsExpired", "PointsRedeemed", "PointsEarned"):
        for event in crm.received:
            member = str(event["detail"].get("member", ""))
            if event["detail-type"] == kind and member.startswith("m"):
                return member
    return "m001"


def show_crm(crm: Any) -> None:
    """What a CRM received on its queue: counts per event, and one of each in the member's words."""
    crm.poll()
    print(
        f"\nWhat the CRM received (CrmQueue, {sum(crm.counts.values())} events, {crm.duplicates} duplicates dropped):"
    )
    print("   " + ", ".join(f"{kind} {count}" for kind, count in sorted(crm.counts.items())))
    shown: set[str] = set()
    for event in crm.received:
        kind = str(event.get("detail-type"))
        if kind in shown:
            continue
        shown.add(kind)
        print(f"   {crm.describe(event)}")


def show_member(api: DemoClient, member: str) -> None:
    """One member of the story, as the statement tells it (both languages, the last lines)."""
    for language in ("en", "zh-CN"):
        told = api.get(f"/programs/demo/members/{member}/statement?limit=100&lang={language}")
        lines = told.get("entries", [])
        print(f"\nGET /programs/demo/members/{member}/statement?lang={language} (last 5 of {len(lines)} lines)")
        for line in lines[-5:]:
            print(f"   {str(line.get('event_time', ''))[:10]}  {line['points']:>+6}  {line['explanation']}")


def show_figures(sb: Sandbox, api: DemoClient, audited: dict[str, Any]) -> dict[str, Any]:
    """The program's figures as the operator console shows them (the stream watcher's projection)."""
    sb.wait_for_idle(timeout=600)  # the watcher has seen every entry
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
        reconciled = reconciles(result)
        print(f"\nthe console's figures {'equal' if reconciled else 'DIFFER FROM'} the audit's")
        print(f"\nWhere to look ({sb.api_url}):")
        print(f"   operator console     {sb.api_url}/console#program=demo (admin key: {result['admin_key']})")
        print(f"   API docs             {sb.api_url}/docs")
        for member in (result["story_member"], result["member"]):
            print(f"   a member's statement {sb.api_url}/programs/demo/members/{member}/statement?lang=zh-CN")
        print(f'   (the API takes the key as a header: curl -H "x-api-key: {result["admin_key"]}" URL)')
        print("   what a CRM receives  `pointbridge subscriber` reads the same queue (docs/events.md)")
        if args.exit:
            return 0 if reconciled else 1
        print("\nStaying up; new outbound events print below as the CRM gets them. Ctrl-C to stop.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        follower = threading.Thread(target=result["crm"].follow, args=(stop,), daemon=True)
        follower.start()
        while not stop.wait(0.5):
            pass
        follower.join(timeout=5)
    return 0


def reconciles(result: dict[str, Any]) -> bool:
    """The audit passed and the console's liability is the ledger's, with nothing unexplained."""
    figures = result["figures"]["to_date"]
    members = ("available", "pending", "held")
    program_side = -sum(v for k, v in result["audit"]["totals"].get("demo", {}).items() if k not in members)
    return bool(result["audit"]["ok"]) and not figures["unexplained"] and program_side == figures["liability"]


register("demo", "run the platform locally and show its main job", _configure, _run)
