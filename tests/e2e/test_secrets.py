"""Secrets that are secret (issue 11, item 6): a day on the sandbox that drives every channel with
known raw e-mails, phones, card numbers and secrets, then scans every table item, every S3 object and
every function log the sandbox captured for any of them. It finds none; a planted one it finds.

The day also sends each kind of request that once echoed configuration back (a channel record that
cannot be used, a bad signature, a refused channel record) and checks the replies carry nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from pointbridge.sandbox import Sandbox
from shared.access.keys import Principal, PrincipalKind, issue_key
from shared.channels.records import ChannelRecord
from shared.infra import keys
from tests.integration.channel_fixtures import MERCHANT, SHOP, SHOP_SECRET, SOURCES, SQUARE_KEY, acme, square_headers
from tests.support.channels import create_channels, identity_key
from tests.support.http_api import HttpApi
from tests.support.inbox import code_inbox
from tests.unit.adapter_helpers import load, raw, sign

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BROKEN_SHOP = "broken.myshopify.com"

# What the channels bring, raw: each must end up hashed or nowhere.
EMAILS = ("jon.snow@example.com", "amelia.earhart@example.com", "vera.quill@example.com")
PHONES = ("+14155552671", "4155552671", "415 555 2671", "+447911123456", "07911 123456", "7911123456")
LOYALTY_CARD = "6012345678"  # Square's reference_id, the till's card_number ("6012 3456 78")
PAYMENT_CARD = "4111111111111111"  # a payment card's number a cashier typed into a Square note
CARDS = (LOYALTY_CARD, "6012 3456 78", PAYMENT_CARD, "4111 1111 1111 1111")


@dataclass
class Found:
    where: str
    value: str


@dataclass
class Scanner:
    """Every place the stack writes to that the sandbox holds: tables, buckets, function logs."""

    sandbox: Sandbox
    log_dir: Path
    inputs: set[tuple[str, str]] = field(default_factory=set)  # (bucket, key) the test itself dropped

    def places(self) -> Iterator[tuple[str, str]]:
        dynamodb, s3 = self.sandbox.client("dynamodb"), self.sandbox.client("s3")
        for table in dynamodb.list_tables()["TableNames"]:
            for page in dynamodb.get_paginator("scan").paginate(TableName=table):
                for item in page["Items"]:
                    yield f"table {table} item {item.get('PK')}/{item.get('SK')}", json.dumps(item)
        for bucket in (b["Name"] for b in s3.list_buckets()["Buckets"]):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for entry in page.get("Contents", []):
                    if (bucket, entry["Key"]) in self.inputs:
                        continue
                    body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
                    yield f"s3://{bucket}/{entry['Key']}", entry["Key"] + "\n" + body.decode("utf-8", "replace")
        for log in sorted(self.log_dir.glob("*.log")):
            yield f"log {log.name}", log.read_text(encoding="utf-8", errors="replace")

    def scan(self, values: tuple[str, ...]) -> list[Found]:
        wanted = {value.lower() for value in values}
        return [Found(where, value) for where, text in self.places() for value in wanted if value in text.lower()]


@dataclass
class Day:
    sandbox: Sandbox
    scanner: Scanner
    secrets: tuple[str, ...]
    replies: list[requests.Response]


def _post(sb: Sandbox, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{sb.api_url}{path}", data=body, headers=headers, timeout=30)


def _shopify_headers(secret: str, body: bytes, shop: str, now: datetime) -> dict[str, str]:
    return {
        "X-Shopify-Hmac-Sha256": sign(secret, body),
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Triggered-At": (now - timedelta(seconds=30)).isoformat(),
    }


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    logs = tmp_path_factory.mktemp("function-logs")
    with Sandbox(
        template=ROOT / "template.yaml", schedules=False, log_dir=logs, parameters={"ChannelCacheSeconds": 0}
    ) as sb:
        api = HttpApi(sb)
        services = api.services
        services.programs.publish(acme())
        admin = issue_key(services.access_items, Principal(kind=PrincipalKind.ADMIN, id="ops"))
        create_channels(sb, SOURCES, admin)
        now = datetime.now(UTC)
        files = sb.resource("FilesBucket")
        scanner = Scanner(sb, logs)
        replies: list[requests.Response] = []

        # Shopify: an order under Jon's e-mail (as the shop spells it, mixed case)
        order = raw("shopify_orders_paid.json")
        replies.append(_post(sb, f"/webhooks/shopify/{SHOP}", order, _shopify_headers(SHOP_SECRET, order, SHOP, now)))
        # Square: Amelia's payment (loyalty card in the reference, phone in the note), and a payment whose
        # only identity is a payment card's number typed into its note
        for n, changes in enumerate(({}, {"reference_id": "", "note": f"paid by card {PAYMENT_CARD}"})):
            payment = load("square_payment_updated.json")
            paid = payment["data"]["object"]["payment"]
            paid.update(changes, id=f"pay-secret-{n}")
            payment.update(event_id=f"evt-secret-{n}", created_at=now.isoformat().replace("+00:00", "Z"))
            paid["card_details"]["card"]["fingerprint"] = f"sq-fp-{PAYMENT_CARD}"
            body = json.dumps(payment).encode()
            replies.append(_post(sb, f"/webhooks/square/{MERCHANT}", body, square_headers(body)))
        # The till's file (card and phone), the partner's feed
        at = (now - timedelta(hours=1)).isoformat()
        till = (
            "store_id,till_id,receipt_no,occurred_at,card_number,phone,currency,amount,type\n"
            f"S001,T1,R1,{at},6012 3456 78,,EUR,12.00,sale\n"
            f"S001,T1,R2,{at},,07911 123456,EUR,8.00,sale\n"
            f"S001,T1,R3,{at},4111 1111 1111 1111,,EUR,-1.00,sale\n"
        )
        feed = f"partner_member_id,external_id,occurred_at,points,reason\nAIR-1,tx-1,{at},50,flight\n"
        for key, text in (("till/eod.csv", till), ("partners/skyair/feed.csv", feed)):
            sb.client("s3").put_object(Bucket=files, Key=key, Body=text.encode())
            scanner.inputs.add((files, key))  # the channel's own file, kept as it sent it
        sb.wait_for_idle(timeout=60)
        # The app backend: a sign-in; the API: codes to an e-mail and a phone, a card the till links,
        # support merging by a card number, a card the member tries to link himself
        app = api.key(PrincipalKind.CHANNEL, "app", ("acme",), authenticates_members=True)
        event = {"event_id": "e-1", "member_id": "vera", "action": "sign_in", "occurred_at": now.isoformat()}
        replies.append(api.call("POST", "/app-events", app, event))
        vera = api.key(PrincipalKind.MEMBER, "vera", ("acme",))
        till_key = api.key(PrincipalKind.CHANNEL, "till-s001", ("acme",))
        support = api.key(PrincipalKind.ADMIN, "desk", (), role="support")
        base = "/programs/acme/members/vera"
        inbox = code_inbox(sb.client("events"), sb.client("sqs"), sb.resource("NotificationsBus"))
        for body_ in ({"kind": "email", "value": "Vera.Quill@example.com"}, {"kind": "phone", "value": "+14155552671"}):
            sent = api.call("POST", f"{base}/identities/verifications", vera, body_)
            replies.append(sent)
            code = inbox.code_for(sent.json()["verification_id"])
            confirm = f"{base}/identities/verifications/{sent.json()['verification_id']}/confirm"
            replies.append(api.call("POST", confirm, vera, {"code": code}))
        replies.append(api.call("POST", f"{base}/identities", vera, {"kind": "card", "value": PAYMENT_CARD}))
        replies.append(api.call("POST", f"{base}/identities", till_key, {"kind": "card", "value": "6012 3456 78"}))
        merge = {"kind": "card", "value": "4111-1111-1111-1111", "reason": "ticket 7: her old card"}
        replies.append(
            api.call("POST", f"/admin/programs/acme/members/{base.rsplit('/', 1)[1]}/merges", support, merge)
        )
        sb.wait_for_idle(timeout=60)
        secrets = (SHOP_SECRET, SQUARE_KEY, identity_key(sb), admin, app, vera, till_key, support)
        yield Day(sb, scanner, secrets, replies)


def test_every_channel_was_driven(day: Day) -> None:
    # The day's requests were taken (so the scan below looks at a stack that saw every raw value)
    statuses = [reply.status_code for reply in day.replies]
    assert statuses[:4] == [200, 200, 200, 200], [r.text for r in day.replies[:4]]
    assert statuses[4:8] == [201, 201, 201, 201], [r.text for r in day.replies[4:8]]
    assert statuses[8] == 403 and statuses[9] == 201, [r.text for r in day.replies[8:10]]
    report = day.sandbox.client("s3").get_object(
        Bucket=day.sandbox.resource("FilesBucket"), Key="reports/till/eod.csv.json"
    )
    assert json.loads(report["Body"].read())["accepted"] == 2


def test_no_table_item_object_or_log_holds_a_raw_identity_or_a_secret(day: Day) -> None:
    found = day.scanner.scan(EMAILS + PHONES + CARDS + day.secrets)
    assert not found, "\n".join(f"{f.value!r} in {f.where}" for f in found[:20])
    # And no reply of the day carried one either
    replies = " ".join(reply.text.lower() for reply in day.replies)
    assert not [value for value in EMAILS + PHONES + CARDS + day.secrets if value.lower() in replies]


def test_the_scanner_finds_a_planted_value_in_a_table_an_object_and_a_log(day: Day) -> None:
    sb, planted = day.sandbox, "planted.raw@example.com"
    table = sb.resource("PointsTable")
    sb.client("dynamodb").put_item(
        TableName=table, Item={"PK": {"S": "PLANTED"}, "SK": {"S": "X"}, "n": {"S": planted}}
    )
    sb.client("s3").put_object(Bucket=sb.resource("FilesBucket"), Key="reports/planted.json", Body=f'["{planted}"]')
    log = next(day.scanner.log_dir.glob("*.log"))
    with log.open("a", encoding="utf-8") as out:
        out.write(f'{{"message": "{PAYMENT_CARD[:-1]}9"}}\n')
    try:
        where = {f.where.split(" ")[0] for f in day.scanner.scan((planted.upper(), PAYMENT_CARD[:-1] + "9"))}
        assert where == {"table", "s3://" + sb.resource("FilesBucket") + "/reports/planted.json", "log"}
    finally:
        sb.client("dynamodb").delete_item(TableName=table, Key={"PK": {"S": "PLANTED"}, "SK": {"S": "X"}})
        sb.client("s3").delete_object(Bucket=sb.resource("FilesBucket"), Key="reports/planted.json")
        text = log.read_text(encoding="utf-8")
        log.write_text(text.replace(f'{{"message": "{PAYMENT_CARD[:-1]}9"}}\n', ""), encoding="utf-8")


def test_a_channel_that_cannot_be_used_tells_an_anonymous_caller_nothing_of_its_config(day: Day) -> None:
    # Given a shop record written around the API's checks, whose settings hold the stack's secrets
    sb = day.sandbox
    services = HttpApi(sb).services
    leaked = f"{SHOP_SECRET}|{identity_key(sb)}"
    broken = ChannelRecord(
        kind="shopify",
        id=BROKEN_SHOP,
        program="acme",
        settings={"replay_window": leaked, "identity_key": identity_key(sb)},
        status="active",
        version=1,
        secret_version=None,
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
        updated_by="around-the-checks",
    )
    assert services.channel_items.put_new(broken)
    now = datetime.now(UTC)
    order = raw("shopify_orders_paid.json")
    # When anyone posts a webhook for it, signed or not
    replies = [
        _post(sb, f"/webhooks/shopify/{BROKEN_SHOP}", order, _shopify_headers(SHOP_SECRET, order, BROKEN_SHOP, now)),
        _post(sb, f"/webhooks/shopify/{BROKEN_SHOP}", order, {"X-Shopify-Topic": "orders/paid"}),
    ]
    # Then the shop is unavailable (a status Shopify retries): no setting, secret or reason in the reply
    for reply in replies:
        assert reply.status_code == 503 and reply.json()["code"] == "channel_unavailable", reply.text
        assert set(reply.json()) == {"type", "title", "status", "detail", "code"}
        for value in (SHOP_SECRET, identity_key(sb), "replay_window", "identity_key", "settings"):
            assert value not in reply.text
    # And a bad signature on a working shop names no secret either
    forged = _post(sb, f"/webhooks/shopify/{SHOP}", order, _shopify_headers("not-the-secret", order, SHOP, now))
    assert forged.status_code == 401 and SHOP_SECRET not in forged.text
    # And an operator's refused channel record does not echo the secret it was sent
    api = HttpApi(sb)
    operator = api.key(PrincipalKind.ADMIN, "ops2", ())
    bad = {"kind": "square", "id": "SECRETTEST", "program": "acme", "secret": "short\u00e9" + SQUARE_KEY}
    refused = api.call("POST", "/admin/channels", operator, bad)
    assert refused.status_code == 422 and SQUARE_KEY not in refused.text
    # And the function's log says why, without the values
    sb.wait_for_idle(timeout=30)
    assert "cannot be used" in (day.scanner.log_dir / "WebhookFunction.log").read_text(encoding="utf-8")
    services.table.delete(keys.channel("shopify", BROKEN_SHOP))
    assert not day.scanner.scan((leaked, SHOP_SECRET, identity_key(sb)))
