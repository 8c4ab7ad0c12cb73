"""One person, every channel, over the local sandbox: webhooks over HTTP, files in the bucket, SQS.

They buy online (Shopify), in a store (Square, and the till's end-of-day file) and at a partner
(feed file); purchases stay pending for a 30-day return window. After their identities are linked
one member holds one balance equal to the sum, pending points included; a partial refund waits for
the window and then reduces it; the statement explains every entry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from pointbridge.sandbox import Sandbox
from shared.access.keys import Principal, PrincipalKind, issue_key
from shared.events.identity import hash_card, hash_email
from shared.events.model import Identity, IdentityKind
from shared.ledger.audit import audit
from tests.integration.channel_fixtures import (
    MERCHANT,
    SHOP,
    SOURCES,
    acme,
    shopify_headers,
    square_headers,
)
from tests.support.channels import create_channels, identity_key
from tests.support.inbox import code_inbox
from tests.support.services import sandbox_services
from tests.support.statements import INTERNAL
from tests.unit.adapter_helpers import load, raw

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shared.ledger.store import DynamoLedgerStore

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(
        template=ROOT / "template.yaml", queue_overrides={"IngestQueue": {"VisibilityTimeout": 5}}, schedules=False
    ) as sandbox:
        # The program first, then its channels, as an operator sets them up (docs/deploy.md)
        sandbox_services(sandbox, config_cache_seconds=0).programs.publish(
            acme().model_copy(update={"return_window_days": 30})
        )
        admin = issue_key(sandbox_services(sandbox).access_items, Principal(kind=PrincipalKind.ADMIN, id="ops"))
        create_channels(sandbox, SOURCES, admin)
        yield sandbox


def audit_ok(store: DynamoLedgerStore) -> None:
    report = audit(*store.audit_records())
    assert report.ok, report.problems


def test_one_person_across_every_channel_ends_with_one_explained_balance(sb: Sandbox) -> None:
    services = sandbox_services(sb, config_cache_seconds=0)
    store = services.ledger_store
    directory = services.members
    now = datetime.now(UTC)

    # Given an online order (Shopify webhook over HTTP): 51.50 EUR -> 51 points
    order = raw("shopify_orders_paid.json")
    reply = requests.post(
        f"{sb.api_url}/webhooks/shopify/{SHOP}",
        data=order,
        headers=shopify_headers(order, "orders/paid", now),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    # And a tampered one, refused before anything is queued
    bad = requests.post(
        f"{sb.api_url}/webhooks/shopify/{SHOP}",
        data=order + b" ",
        headers=shopify_headers(order, "orders/paid", now),
        timeout=30,
    )
    assert bad.status_code == 401 and bad.headers["Content-Type"] == "application/problem+json"
    # And an in-store card payment (Square webhook): 12.50 USD at 0.9 -> 11 points
    payment = load("square_payment_updated.json")
    payment["created_at"] = now.isoformat().replace("+00:00", "Z")
    body = json.dumps(payment).encode()
    reply = requests.post(
        f"{sb.api_url}/webhooks/square/{MERCHANT}", data=body, headers=square_headers(body), timeout=30
    )
    assert reply.status_code == 200, reply.text
    # And the till's end-of-day file, same card, with one broken row: 42.50 EUR -> 42 points
    at = (now - timedelta(hours=2)).isoformat()
    till = (
        "store_id,till_id,receipt_no,occurred_at,card_number,currency,amount,type\n"
        f"S001,T1,R1001,{at},6012 3456 78,EUR,42.50,sale\n"
        f"S001,T1,R1002,{at},6012 3456 78,EUR,-3.00,sale\n"
    )
    s3 = sb.client("s3")
    s3.put_object(Bucket=sb.resource("FilesBucket"), Key="till/eod.csv", Body=till.encode())
    # And the partner's feed: 250 points
    feed = f"partner_member_id,external_id,occurred_at,points,reason\nAIR-778812,tx-1,{at},250,flight LHR-CDG\n"
    s3.put_object(Bucket=sb.resource("FilesBucket"), Key="partners/skyair/feed.csv", Body=feed.encode())
    sb.wait_for_idle(timeout=30)

    report = json.loads(
        s3.get_object(Bucket=sb.resource("FilesBucket"), Key="reports/till/eod.csv.json")["Body"].read()
    )
    assert report["accepted"] == 1 and [r["line"] for r in report["rejected"]] == [3]

    # When the person registers (member jon) and proves each identity over HTTP: the e-mail with a
    # one-time code, the card at the till that sees it, the airline id through the airline
    email = Identity(kind=IdentityKind.EMAIL, value=hash_email(identity_key(sb).encode(), "jon.snow@example.com"))
    card = Identity(kind=IdentityKind.CARD, value=hash_card(identity_key(sb).encode(), "6012345678"))
    partner = Identity(kind=IdentityKind.PARTNER, value="AIR-778812", scope="skyair")
    provisional = {directory.member_for(i.key) for i in (email, card, partner)}
    online = directory.member_for(email.key)
    assert None not in provisional and len(provisional) == 3

    def key(kind: PrincipalKind, ident: str) -> dict[str, str]:
        return {"x-api-key": issue_key(services.access_items, Principal(kind=kind, id=ident, programs=("acme",)))}

    jon, till_key, skyair = (
        key(PrincipalKind.MEMBER, "jon"),
        key(PrincipalKind.CHANNEL, "till-s001"),
        key(PrincipalKind.PARTNER, "skyair"),
    )
    member_url = f"{sb.api_url}/programs/acme/members/jon"
    inbox = code_inbox(sb.client("events"), sb.client("sqs"), sb.resource("NotificationsBus"))
    sent = requests.post(
        f"{member_url}/identities/verifications", json={"kind": "email", "value": "Jon.Snow@example.com"}, headers=jon
    )
    assert sent.status_code == 201, sent.text
    verification = sent.json()["verification_id"]
    proofs: list[tuple[str, dict[str, str], dict[str, str]]] = [
        (f"{member_url}/identities/verifications/{verification}/confirm", {"code": inbox.code_for(verification)}, jon),
        # the card as printed on it; the till's file had sent 6012345678
        (f"{member_url}/identities", {"kind": "card", "value": "6012 3456 78"}, till_key),
        (f"{member_url}/identities", {"kind": "partner", "value": "AIR-778812"}, skyair),
    ]
    for url, proof, headers in proofs:
        linked = requests.post(url, json=proof, headers=headers, timeout=30)
        assert linked.status_code == 201, linked.text
        assert linked.json()["member"] == "jon" and linked.json()["merged"] in provisional

    # Then one member holds one balance: the sum of every channel, the purchases' pending points included
    balance = requests.get(f"{member_url}/balance", headers=jon, timeout=30).json()
    assert (balance["available"], balance["pending"]) == (250, 51 + 11 + 42)
    for merged in provisional:
        emptied = store.get_account("acme", str(merged))
        assert emptied is not None and (emptied.available, emptied.pending) == (0, 0)
    audit_ok(store)

    # When part of the online order is refunded (18 of 51.50 EUR)
    refund = raw("shopify_refunds_create.json")
    reply = requests.post(
        f"{sb.api_url}/webhooks/shopify/{SHOP}",
        data=refund,
        headers=shopify_headers(refund, "refunds/create", now),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    sb.wait_for_idle(timeout=30)
    # It waits while the order's points are pending
    waiting = requests.get(f"{member_url}/balance", headers=jon, timeout=30).json()
    assert (waiting["available"], waiting["pending"]) == (250, 104)

    # When the return windows close and the hourly activation function runs (in the sandbox)
    activated = sb.run_function("ActivationFunction", now=now + timedelta(days=31), simulate=True)

    # Then the points activate on the linked member and the refund takes its share
    # (51 x 18 / 51.50 = 17.8 -> 17), and the books balance
    assert activated["acme"] == 3
    balance = requests.get(f"{member_url}/balance", headers=jon, timeout=30).json()
    assert (balance["available"], balance["pending"]) == (354 - 17, 0)
    audit_ok(store)
    # And the statement over HTTP explains every entry in a sentence, and adds up to the balance
    statement = requests.get(f"{member_url}/statement", params={"limit": 100}, headers=jon, timeout=30).json()
    lines = statement["entries"]
    assert statement["next"] is None and lines
    assert all(line["explanation"].strip() for line in lines)
    assert sum(line["points"] for line in lines) == balance["available"] + balance["pending"] + balance["held"]
    clawback = next(line for line in lines if line["kind"] == "clawback")
    assert clawback["points"] == -17 and "refund of 18.00 EUR on order #9999" in clawback["explanation"]
    assert clawback["detail"].endswith("51 points earned x 18.00 / 51.50 refunded")
    assert {line["kind"] for line in lines} >= {"transfer", "clawback"}  # the merges brought the points over
    # And the online account that earned before jon registered still explains its purchase (to an auditor)
    auditor = {
        "x-api-key": issue_key(services.access_items, Principal(kind=PrincipalKind.ADMIN, id="audit", role="auditor"))
    }
    online_url = f"{sb.api_url}/programs/acme/members/{online}/statement"
    earned = requests.get(online_url, headers=auditor, timeout=30).json()
    purchase = next(line for line in earned["entries"] if line["kind"] == "earn_pending")
    assert "how: 51.5 base (1 per EUR) - 0.5 rounding = 51" in purchase["explanation"]
    # Every line of both accounts, in both languages, has a date, an amount and words a person reads: no internal id
    for url, reader in ((f"{member_url}/statement", jon), (online_url, auditor)):
        for language in ("en", "zh-CN"):
            reply = requests.get(url, params={"limit": 100, "lang": language}, headers=reader, timeout=30)
            assert reply.status_code == 200, reply.text
            told = reply.json()["entries"]
            for line in told:
                assert line["event_time"] and line["title"] and isinstance(line["points"], int)
                assert not INTERNAL.search(line["explanation"]), line["explanation"]


def test_a_flagged_members_points_wait_for_an_operator_over_http(sb: Sandbox) -> None:
    from decimal import Decimal

    from shared.events.model import Channel, PurchaseEvent
    from shared.program.config import ProgramConfig

    services = sandbox_services(sb, config_cache_seconds=0)
    store = services.ledger_store
    services.programs.publish(ProgramConfig(program="watched", name="Watched"))
    admin = {"x-api-key": issue_key(services.access_items, Principal(kind=PrincipalKind.ADMIN, id="ops-e2e"))}
    now = datetime.now(UTC)

    def order(source: str, order_id: str, amount: str) -> None:
        event = PurchaseEvent(
            program="watched",
            channel=Channel.ONLINE,
            source=source,
            external_id=order_id,
            identity=Identity(kind=IdentityKind.MEMBER, value="m-flag"),
            occurred_at=now - timedelta(minutes=5),
            currency="USD",
            eligible_amount=Decimal(amount),
        )
        body = json.dumps({"event": event.model_dump(mode="json")})
        sb.client("sqs").send_message(QueueUrl=sb.resource("IngestQueue"), MessageBody=body)
        sb.wait_for_idle(timeout=30)

    def balance() -> tuple[int, int]:
        url = f"{sb.api_url}/programs/watched/members/m-flag/balance"
        reply = requests.get(url, headers=admin, timeout=30).json()
        return reply["available"], reply["pending"]

    # Given the same order id arriving from two channels: it earns once, and the member is flagged
    order("shop-a", "o-1", "10")
    order("shop-b", "o-1", "10")
    flags = requests.get(f"{sb.api_url}/admin/programs/watched/flags", headers=admin, timeout=30)
    assert flags.status_code == 200, flags.text
    assert [(f["member"], f["check"]) for f in flags.json()["flags"]] == [("m-flag", "order_two_channels")]

    # When the member buys again, the points are held
    order("shop-a", "o-2", "30")
    assert balance() == (10, 30)

    # When an operator releases the flag over HTTP
    decided = requests.post(
        f"{sb.api_url}/admin/programs/watched/flags/m-flag/decision",
        json={"decision": "release", "note": "one order, two integrations: a configuration mistake"},
        headers=admin,
        timeout=30,
    )

    # Then the held points are available, and the decision names the operator
    assert decided.status_code == 200, decided.text
    assert decided.json()["released"] == ["shop-a:o-2"] and decided.json()["operator"] == "ops-e2e"
    assert balance() == (40, 0)
    assert requests.get(f"{sb.api_url}/admin/programs/watched/flags", headers=admin, timeout=30).json()["flags"] == []
    audit_ok(store)
