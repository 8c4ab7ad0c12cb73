"""IAM in the sandbox: each function may do what template.yaml grants it, nothing more, and needs all of it.

- A day of traffic through every function (webhooks, files, the ingest queue, the API, every job,
  the stream) is refused nothing, and uses every grant the template writes: a grant no call needs
  (a widened permission) fails the test unless it is in UNEXERCISED with its reason.
- A refusal looks as the service sends it (status, error code, message), for every protocol the
  functions use, transactions and batches included.
- The negative control: the same stack with one permission taken out of a copy of the template
  (HoldLapseFunction's dynamodb:DeleteItem) fails the operation that needs it, and changes nothing.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from botocore.exceptions import ClientError

from pointbridge.sandbox import InvocationError, Sandbox
from pointbridge.sandbox.iam import Grant, unused_grants
from pointbridge.sandbox.template import ACCOUNT_ID, load_template
from shared.access.keys import AdminRole, Principal, PrincipalKind, issue_key
from shared.events.identity import hash_email
from shared.events.model import Channel, Identity, IdentityKind, PurchaseEvent, RefundEvent
from shared.ledger.commands import Earn
from shared.ledger.models import Account
from shared.members import activity
from shared.program.config import ExpiryPolicy, ProgramConfig, QualifyingBasis, Tier, TierQualification
from shared.rewards.catalogue import Catalogue, Reward, RewardKind, publish_catalogue
from tests.integration.channel_fixtures import SHOP, SOURCES, acme, shopify_headers
from tests.support.channels import create_channels, identity_key
from tests.support.jobs import Clock
from tests.support.services import sandbox_services
from tests.unit.adapter_helpers import raw

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
STAGE = "iam"
# Grants the day of traffic cannot exercise, keyed (function, action, resource), each with why it
# stays. Empty: every grant in the template is used.
UNEXERCISED: dict[tuple[str, str, str], str] = {}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(
        template=TEMPLATE,
        stage=STAGE,
        pool_size=1,
        schedules=False,
        queue_overrides={"IngestQueue": {"VisibilityTimeout": 2}},
    ) as sandbox:
        yield sandbox


# --- a day of traffic ---------------------------------------------------------------------------


MINUTES_5 = timedelta(minutes=5)


class Day:
    """One sandbox, driven as its clients and schedules would drive it, with what each step should do."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.services = sandbox_services(sb, config_cache_seconds=0, sleep=lambda _: None)
        self.programs = self.services.programs
        self.now = datetime.now(UTC)
        self.admin = {"x-api-key": issue_key(self.services.access_items, Principal(kind=PrincipalKind.ADMIN, id="ops"))}

    def http(self, method: str, path: str, body: Any = None, key: dict[str, str] | None = None) -> Any:
        reply = requests.request(method, self.sb.api_url + path, json=body, headers=key or self.admin, timeout=60)
        assert reply.status_code in (200, 201), f"{method} {path}: {reply.status_code} {reply.text}"
        return reply.json()

    def webhook(self, name: str, topic: str) -> None:
        body = raw(name)
        reply = requests.post(
            f"{self.sb.api_url}/webhooks/shopify/{SHOP}",
            data=body,
            headers=shopify_headers(body, topic, self.now),
            timeout=60,
        )
        assert reply.status_code == 200, reply.text

    def queue(self, event: PurchaseEvent | RefundEvent) -> None:
        body = json.dumps({"event": event.model_dump(mode="json")})
        self.sb.client("sqs").send_message(QueueUrl=self.sb.resource("IngestQueue"), MessageBody=body)
        self.sb.wait_for_idle(timeout=60)

    def purchase(
        self, program: str, member: str, order: str, amount: str, source: str = "shop", ago: timedelta = MINUTES_5
    ) -> None:
        currency = self.programs.get(program).currency
        self.queue(
            PurchaseEvent(
                program=program,
                channel=Channel.ONLINE,
                source=source,
                external_id=order,
                identity=Identity(kind=IdentityKind.MEMBER, value=member),
                occurred_at=self.now - ago,
                currency=currency,
                eligible_amount=Decimal(amount),
            )
        )

    def refund(self, program: str, member: str, order: str, amount: str) -> None:
        currency = self.programs.get(program).currency
        self.queue(
            RefundEvent(
                program=program,
                channel=Channel.ONLINE,
                source="shop",
                external_id=f"refund-{order}",
                order_external_id=order,
                identity=Identity(kind=IdentityKind.MEMBER, value=member),
                occurred_at=self.now - timedelta(minutes=1),
                currency=currency,
                refunded_amount=Decimal(amount),
            )
        )

    def channels(self) -> None:
        """Channels set up by an operator, then webhooks, files and the ingest queue (acme: purchases wait
        30 days for returns); a partner drops a file through an upload URL and reads its report."""
        self.programs.publish(acme().model_copy(update={"return_window_days": 30}))
        create_channels(self.sb, SOURCES, self.admin["x-api-key"])
        self.webhook("shopify_orders_paid.json", "orders/paid")
        self.webhook("shopify_refunds_create.json", "refunds/create")  # waits for the order's return window
        at = (self.now - timedelta(hours=2)).isoformat()
        files, bucket = self.sb.client("s3"), self.sb.resource("FilesBucket")
        till = (
            "store_id,till_id,receipt_no,occurred_at,card_number,currency,amount,type\n"
            f"S001,T1,R1001,{at},6012 3456 78,EUR,42.50,sale\n"
        )
        files.put_object(Bucket=bucket, Key="till/eod.csv", Body=till.encode())
        feed = f"partner_member_id,external_id,occurred_at,points,reason\nAIR-778812,tx-1,{at},250,flight\n"
        files.put_object(Bucket=bucket, Key="partners/skyair/feed.csv", Body=feed.encode())
        self.sb.client("sqs").send_message(QueueUrl=self.sb.resource("IngestQueue"), MessageBody="{not json")
        self.refund("acme", "rita", "o-9", "20")  # before its order: parked until the order comes
        self.purchase("acme", "rita", "o-9", "20")
        # An order that arrives after a later one is rated from the member's history (GSI2)
        self.purchase("acme", "rita", "o-8", "10", ago=timedelta(hours=2))
        report = json.loads(files.get_object(Bucket=bucket, Key="reports/till/eod.csv.json")["Body"].read())
        assert report["accepted"] == 1
        self.partner_file(at)
        dead = self.sb.client("sqs").receive_message(QueueUrl=self.sb.resource("IngestDeadLetterQueue"))
        assert [m["Body"] for m in dead["Messages"]] == ["{not json"]
        # Support merges the till's card into the online shopper (neither registered: a merge, with a reason)
        email = Identity(
            kind=IdentityKind.EMAIL, value=hash_email(identity_key(self.sb).encode(), "jon.snow@example.com")
        )
        online = self.services.members.member_for(email.key)
        support = Principal(kind=PrincipalKind.ADMIN, id="desk", role=AdminRole.SUPPORT)
        linked = self.http(
            "POST",
            f"/admin/programs/acme/members/{online}/merges",
            {"kind": "card", "value": "6012345678", "reason": "same shopper, confirmed at the till"},
            key={"x-api-key": issue_key(self.services.access_items, support)},
        )
        assert linked["member"] == online

    def partner_file(self, at: str) -> None:
        skyair = {
            "x-api-key": issue_key(
                self.services.access_items, Principal(kind=PrincipalKind.PARTNER, id="skyair", programs=("acme",))
            )
        }
        files = "/partners/skyair/programs/acme/files"
        upload = self.http("POST", files, {"name": "feed-2.csv"}, skyair)
        feed = f"partner_member_id,external_id,occurred_at,points\nAIR-778812,tx-2,{at},40\nAIR-1,tx-3,{at},-1\n"
        sent = requests.put(
            upload["upload"]["url"], data=feed.encode(), headers=upload["upload"]["headers"], timeout=60
        )
        assert sent.status_code == 200, sent.text
        self.sb.wait_for_idle(timeout=60)
        report = self.http("GET", f"{files}/{upload['file_id']}", key=skyair)
        assert (report["file"]["accepted"], report["file"]["rejected"]) == (1, 1)
        assert [line["line"] for line in report["rejected_lines"]] == [3]

    def members(self) -> None:
        """club: a member's points, spent through the API, on hold, and a refund of a live purchase."""
        published = self.now - timedelta(days=3)
        club = ProgramConfig(
            program="club",
            name="Club",
            expiry=ExpiryPolicy(months=12, extend_on_activity=True),
            tier_qualification=TierQualification(basis=QualifyingBasis.POINTS, window_months=1, grace_days=0),
            tiers=(Tier(name="member", rank=0), Tier(name="silver", rank=1, threshold=Decimal(100))),
        )
        sandbox_services(self.sb, config_cache_seconds=0, clock=Clock(published)).programs.publish(club)
        mug = Reward(id="mug", name="Mug", kind=RewardKind.PHYSICAL, points=10, stock=5)
        publish_catalogue(self.services.documents, Catalogue(program="club", version=1, rewards=(mug,)))
        ledger = self.services.ledger
        earned = self.now - timedelta(days=2)
        for points, order, at, expires in (
            (150, "c-1", earned, self.due),  # due in five days, but ann stays active
            (5, "c-2", self.now, self.now + timedelta(days=400)),
        ):
            cmd = Earn(
                program="club",
                member="ann",
                points=points,
                source="shop",
                external_id=order,
                reason="order",
                event_time=at,
                expires_at=expires,
            )
            ledger.earn(cmd, at=at, tallies=[activity.tally("club", "ann", activity.change(club, at, points))])
        assert self.services.tiers.on_earn("club", "ann", earned) is not None
        ann = {
            "x-api-key": issue_key(
                self.services.access_items, Principal(kind=PrincipalKind.MEMBER, id="ann", programs=("club",))
            )
        }
        assert self.http("GET", "/programs/club/members/ann/balance", key=ann)["available"] == 155
        assert self.http("GET", "/programs/club/members/ann/statement", key=ann)["entries"]
        self.http("POST", "/programs/club/members/ann/redemptions", {"reward_id": "mug", "reference": "r-1"}, ann)
        hold = {"points": 7, "reference": "h-1", "lapses_in_seconds": 60}
        self.http("POST", "/programs/club/members/ann/holds", hold, ann)
        self.http("POST", "/programs/club/members/ann/holds", {"points": 3, "reference": "h-2"}, ann)
        self.http("POST", "/programs/club/members/ann/holds/h-2/release", {}, ann)  # by the placer
        # A one-time code to prove an e-mail goes out on the notifications bus
        self.http(
            "POST",
            "/programs/club/members/ann/identities/verifications",
            {"kind": "email", "value": "ann@example.com"},
            ann,
        )
        assert "club" in self.http("GET", "/admin/programs")["programs"]
        self.http("GET", "/admin/programs/club/figures")
        self.purchase("club", "cy", "o-c", "30")
        self.refund("club", "cy", "o-c", "10")
        # plain: bob's partner points expire in five days, with no activity to keep them
        plain = ProgramConfig(program="plain", name="Plain")
        sandbox_services(self.sb, config_cache_seconds=0, clock=Clock(published)).programs.publish(plain)
        partner_earn = Earn(
            program="plain",
            member="bob",
            points=40,
            source="skyair",
            external_id="p-1",
            reason="flight",
            event_time=earned,
            expires_at=self.due,
            counter=Account.PARTNER,
            counter_owner="skyair",
        )
        ledger.earn(partner_earn, at=self.now)

    def flags(self) -> None:
        """The same order from two channels flags its member; an operator releases the held purchase."""
        self.programs.publish(ProgramConfig(program="watched", name="Watched"))
        for source, order, amount in (("shop-a", "w-1", "10"), ("shop-b", "w-1", "10"), ("shop-a", "w-2", "30")):
            self.purchase("watched", "m-flag", order, amount, source)
        flags = self.http("GET", "/admin/programs/watched/flags")["flags"]
        assert [f["check"] for f in flags] == ["order_two_channels"]
        decided = self.http(
            "POST", "/admin/programs/watched/flags/m-flag/decision", {"decision": "release", "note": "ok"}
        )
        assert decided["released"] == ["shop-a:w-2"]

    def jobs(self) -> None:
        """Every schedule, at the time that gives it work."""
        sb, now = self.sb, self.now
        reminded = sb.run_function("ReminderFunction", now=now + timedelta(hours=1), simulate=True)
        assert _by_program(reminded, "notices_sent") == {"acme": 0, "club": 0, "plain": 1, "watched": 0}
        assert sb.run_function("HoldLapseFunction", now=now + timedelta(minutes=10), simulate=True)["released"] == 1
        expired = sb.run_function("ExpiryFunction", now=self.due + timedelta(hours=1), simulate=True)
        assert _by_program(expired, "points_expired")["plain"] == 40
        assert _by_program(expired, "lots_extended")["club"] == 1
        reviewed = sb.run_function("TierFunction", now=now + timedelta(days=73), simulate=True)
        assert _by_program(reviewed, "details")["club"] == {"moves": ["ann: silver -> member"]}
        assert (
            sb.run_function("ActivationFunction", now=now + timedelta(days=31), simulate=True)["acme"] == 3
        )  # with the late order o-8
        sb.wait_for_idle(timeout=60)
        settled = sb.run_function("SettlementFunction", now=now + timedelta(days=1), simulate=True)
        assert len(settled["reports"]) == 4
        one = sb.invoke(
            "SettlementFunction",
            {
                "scheduled_time": (now + timedelta(days=1)).isoformat(),
                "simulate": True,
                "program": "plain",
                "day": now.date().isoformat(),
            },
        )
        assert one["reports"][0]["details"]["days"][0]["partners"] == 1

    def evidence(self) -> None:
        """A draw revealed (signed with the draw key) and the hourly digest of every account head."""
        closes = datetime.now(UTC) + timedelta(seconds=2)
        spec = {"id": "iam-draw", "prize": "A mug", "ticket_points": 5, "closes_at": closes.isoformat()}
        self.http("POST", "/admin/programs/club/draws", spec)
        # DrawFunction's Idempotency-Key claims: given back when a reveal is refused (a draw still open),
        # kept with the reply when it is done
        later = {**spec, "id": "iam-later", "closes_at": (closes + timedelta(days=1)).isoformat()}
        self.http("POST", "/admin/programs/club/draws", later)
        early = requests.post(
            self.sb.api_url + "/admin/programs/club/draws/iam-later/reveal",
            headers={**self.admin, "Idempotency-Key": "early"},
            timeout=60,
        )
        assert (early.status_code, early.json()["code"]) == (422, "draw_closed"), early.text
        reveal = "/admin/programs/club/draws/iam-draw/reveal"
        time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 0.1)  # the close, not a timing check
        revealed = self.http("POST", reveal, key={**self.admin, "Idempotency-Key": "reveal"})
        assert revealed["signature"] and revealed["public_key"]
        digest = self.sb.run_function("DigestFunction", now=datetime.now(UTC), simulate=True)
        assert digest["accounts"] >= 3

    def deployment(self) -> None:
        """The stack's documentation removed and written again, as a deletion and a deployment do."""
        bucket = self.sb.resource("DocsBucket")
        assert self.sb.send_custom_resource("DocsSite", "Delete")["Status"] == "SUCCESS"
        assert "Contents" not in self.sb.client("s3").list_objects_v2(Bucket=bucket)
        assert self.sb.send_custom_resource("DocsSite", "Update")["Data"] == {"Objects": 4}

    def operations(self) -> None:
        """The operations page's calls: a till's file report, and a dead letter of each queue redriven."""
        [eod] = self.http("GET", "/admin/channels/till/default/files")["files"]
        assert self.http("GET", f"/admin/channels/till/default/files/{eod['file_id']}")["file"]["accepted"] == 1
        sqs = self.sb.client("sqs")
        # An event the ingest queue's redrive moved here bare, and a stream batch the watch gave up on
        event = PurchaseEvent(
            program="acme",
            channel=Channel.ONLINE,
            source="shop",
            external_id="o-dead",
            identity=Identity(kind=IdentityKind.MEMBER, value="rita"),
            occurred_at=self.now - MINUTES_5,
            currency="EUR",
            eligible_amount=Decimal("5"),
        )
        sqs.send_message(
            QueueUrl=self.sb.resource("IngestDeadLetterQueue"),
            MessageBody=json.dumps({"event": event.model_dump(mode="json")}),
        )
        earned = self.services.ledger.earn(
            Earn(program="plain", member="olav", points=5, source="seed", external_id="dead", reason="seed",
                 event_time=self.now),
        )  # fmt: skip
        self.sb.wait_for_idle(timeout=60)
        pk = f"E#plain#{earned.entry_id}"
        self.services.failure_notes.note(pk, "900000000000000000001", "ContentionError: simulated", self.now)
        batch = {"startSequenceNumber": "900000000000000000001", "endSequenceNumber": "900000000000000000001"}
        body = {"DDBStreamBatchInfo": {**batch, "batchSize": 1, "shardId": "shard", "streamArn": "arn"}}
        sqs.send_message(QueueUrl=self.sb.resource("WatchDeadLetterQueue"), MessageBody=json.dumps(body))
        letters = self.http("GET", "/admin/dead-letters")["queues"]
        [bare] = [m for m in letters["ingest"] if "o-dead" in m["body"]]
        [watched] = letters["watch"]
        sent = self.http("POST", f"/admin/dead-letters/ingest/{bare['message_id']}/redrive", {})
        replayed = self.http("POST", f"/admin/dead-letters/watch/{watched['message_id']}/redrive", {})
        assert sent["sent_back"] and replayed["replayed"] == [pk]
        self.sb.wait_for_idle(timeout=60)

    @property
    def due(self) -> datetime:
        return self.now + timedelta(days=5)


def _by_program(reply: dict[str, Any], field: str) -> dict[str, Any]:
    return {report["program"]: report[field] for report in reply["reports"]}


def test_a_day_of_traffic_is_refused_nothing_and_uses_every_grant(sb: Sandbox) -> None:
    # Given a fresh record of what each function asks IAM for
    sb.reset_iam_report()
    # When a day of traffic goes through every function
    day = Day(sb)
    day.channels()
    day.members()
    day.flags()
    day.jobs()
    day.evidence()
    day.deployment()
    day.operations()
    sb.wait_for_idle(timeout=60)
    # Then nothing was refused
    report = sb.iam_report()
    assert report["denials"] == []
    # And every grant the template writes was needed by some call, but for the few it explains
    used = [Grant(g["function"], g["statement"], g["action"], g["resource"]) for g in report["used_grants"]]
    unused = {(g.function, g.action, g.resource) for g in unused_grants(sb.policies, used)}
    assert unused == set(UNEXERCISED), f"grants no call needed (widened permissions): {sorted(unused)}"
    # And every function took part
    assert {g.function for g in used} == set(sb.functions)


# --- what a refusal looks like -------------------------------------------------------------------


def refused(call: Callable[[], Any]) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


def implicit(function: str, action: str, resource: str, stage: str = STAGE) -> str:
    """AWS's message for a call no statement allows, from a function's role session."""
    role = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/pointbridge-{stage}-{function}Role/pointbridge-{stage}-{function}"
    return (
        f"User: {role} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )


def test_dynamodb_refuses_each_action_of_a_transaction_or_batch_as_dynamodb_does(sb: Sandbox) -> None:
    table, table_arn = sb.resource("PointsTable"), sb.arn("PointsTable")
    key = {"PK": {"S": "iam-test"}, "SK": {"S": "x"}}
    authorizer = sb.client_as("AuthorizerFunction", "dynamodb")
    # A plain write by a function that may only read: 400 AccessDeniedException, AWS's wording
    error = refused(lambda: authorizer.put_item(TableName=table, Item=key))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["Error"] == {
        "Code": "AccessDeniedException",
        "Message": implicit("AuthorizerFunction", "dynamodb:PutItem", table_arn),
    }
    # A transaction is checked action by action: HoldLapse may put and delete, but not update
    holds = sb.client_as("HoldLapseFunction", "dynamodb")
    update = {
        "TableName": table,
        "Key": key,
        "UpdateExpression": "SET n = :n",
        "ExpressionAttributeValues": {":n": {"N": "1"}},
    }
    error = refused(
        lambda: holds.transact_write_items(
            TransactItems=[{"Put": {"TableName": table, "Item": key}}, {"Update": update}]
        )
    )
    assert error.response["Error"]["Message"] == implicit("HoldLapseFunction", "dynamodb:UpdateItem", table_arn)
    assert "Item" not in sb.client("dynamodb").get_item(TableName=table, Key=key)  # nothing of it was written
    error = refused(
        lambda: authorizer.transact_write_items(
            TransactItems=[
                {"ConditionCheck": {"TableName": table, "Key": key, "ConditionExpression": "attribute_exists(PK)"}}
            ]
        )
    )
    assert error.response["Error"]["Message"] == implicit(
        "AuthorizerFunction", "dynamodb:ConditionCheckItem", table_arn
    )
    # TransactGetItems needs GetItem, which the authorizer has; batches need their own actions
    assert authorizer.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key}}])["Responses"]
    error = refused(lambda: authorizer.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": key}}]}))
    assert error.response["Error"]["Message"] == implicit("AuthorizerFunction", "dynamodb:BatchWriteItem", table_arn)
    error = refused(lambda: authorizer.batch_get_item(RequestItems={table: {"Keys": [key]}}))
    assert error.response["Error"]["Message"] == implicit("AuthorizerFunction", "dynamodb:BatchGetItem", table_arn)
    # An index is its own resource: ingest may query the table, not its indexes
    ingest = sb.client_as("IngestFunction", "dynamodb")
    by_date = {
        "TableName": table,
        "KeyConditionExpression": "GSI1PK = :p",
        "ExpressionAttributeValues": {":p": {"S": "x"}},
    }
    error = refused(lambda: ingest.query(IndexName="GSI1", **by_date))
    assert error.response["Error"]["Message"] == implicit("IngestFunction", "dynamodb:Query", f"{table_arn}/index/GSI1")
    assert holds.query(IndexName="GSI1", **by_date)["Items"] == []
    # The operator (the sandbox itself, the tests' setup) is not restricted
    sb.client("dynamodb").put_item(TableName=table, Item=key)
    sb.client("dynamodb").delete_item(TableName=table, Key=key)


def test_sqs_s3_ssm_and_eventbridge_refuse_in_their_own_shapes(sb: Sandbox) -> None:
    # SQS (JSON protocol, query-compatible error code): 403 AccessDenied, the action in lower case
    webhook = sb.client_as("WebhookFunction", "sqs")
    dlq = sb.resource("IngestDeadLetterQueue")
    error = refused(lambda: webhook.send_message(QueueUrl=dlq, MessageBody="x"))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error.response["Error"]["Code"] == "AccessDenied"
    assert error.response["Error"]["Message"] == implicit(
        "WebhookFunction", "sqs:sendmessage", sb.arn("IngestDeadLetterQueue")
    )
    # SendMessageBatch is authorised as sqs:SendMessage, which it has on the ingest queue
    batch = webhook.send_message_batch(QueueUrl=sb.resource("IngestQueue"), Entries=[{"Id": "1", "MessageBody": "{}"}])
    assert batch.get("Failed", []) == []
    sb.client("sqs").purge_queue(QueueUrl=sb.resource("IngestQueue"))
    # S3 (REST-XML): 403 AccessDenied, the object's ARN quoted; HEAD has no body to say more
    files, bucket = sb.client_as("FileSplitterFunction", "s3"), sb.resource("FilesBucket")
    error = refused(lambda: files.get_object(Bucket=bucket, Key="reports/secret.json"))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error.response["Error"]["Code"] == "AccessDenied"
    assert error.response["Error"]["Message"] == implicit(
        "FileSplitterFunction", "s3:GetObject", f'"arn:aws:s3:::{bucket}/reports/secret.json"'
    )
    assert (
        refused(lambda: files.head_object(Bucket=bucket, Key="reports/secret.json")).response["Error"]["Code"] == "403"
    )
    assert (
        refused(lambda: files.put_object(Bucket=bucket, Key="till/x.csv", Body=b"x")).response["Error"]["Code"]
        == "AccessDenied"
    )
    # An allowed read goes on to S3, which answers for itself
    assert (
        refused(lambda: files.get_object(Bucket=bucket, Key="till/none.csv")).response["Error"]["Code"] == "NoSuchKey"
    )
    # A request the sandbox cannot map to actions is refused, and says so
    unmapped = refused(lambda: files.get_bucket_tagging(Bucket=bucket)).response["Error"]
    assert unmapped["Code"] == "AccessDenied" and "the sandbox cannot tell which IAM actions" in unmapped["Message"]
    # SSM and EventBridge (JSON 1.1): 400 AccessDeniedException
    parameter = f"/pointbridge/{STAGE}/channels/shopify/acme.myshopify.com"
    error = refused(lambda: sb.client_as("IngestFunction", "ssm").get_parameter(Name=parameter))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["Error"]["Code"] == "AccessDeniedException"
    assert error.response["Error"]["Message"] == implicit(
        "IngestFunction", "ssm:GetParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT_ID}:parameter{parameter}"
    )
    bus = sb.resource("NotificationsBus")
    entry = {"Source": "iam.test", "DetailType": "x", "Detail": "{}", "EventBusName": bus}
    error = refused(lambda: sb.client_as("ExpiryFunction", "events").put_events(Entries=[entry]))
    assert error.response["Error"] == {
        "Code": "AccessDeniedException",
        "Message": implicit("ExpiryFunction", "events:PutEvents", sb.arn("NotificationsBus")),
    }
    assert sb.client_as("ReminderFunction", "events").put_events(Entries=[entry])["FailedEntryCount"] == 0


# --- the negative control --------------------------------------------------------------------------


def test_without_delete_item_a_lapsed_hold_is_never_released(tmp_path: Path) -> None:
    # Given a copy of the template in which HoldLapseFunction lost dynamodb:DeleteItem
    template = load_template(TEMPLATE)
    # The copy lives elsewhere; the code, its Makefile and the dependencies layer do not.
    template["Globals"]["Function"]["CodeUri"] = str(ROOT)
    layer = template["Resources"]["DependenciesLayer"]["Properties"]
    layer["ContentUri"] = str(ROOT / layer["ContentUri"])
    statement = template["Resources"]["HoldLapseFunction"]["Properties"]["Policies"][0]["Statement"][0]
    statement["Action"].remove("dynamodb:DeleteItem")
    copy = tmp_path / "template.json"
    copy.write_text(json.dumps(template), encoding="utf-8")
    with Sandbox(template=copy, stage="control", pool_size=1, schedules=False) as sandbox:
        # And a checkout hold of 30, taken over HTTP, that lapses after a minute
        stack = sandbox_services(sandbox, config_cache_seconds=0, sleep=lambda _: None)
        stack.programs.publish(ProgramConfig(program="demo", name="Demo"))
        now = datetime.now(UTC)
        earn = Earn(
            program="demo", member="ann", points=100, source="shop", external_id="o-1", reason="order", event_time=now
        )
        stack.ledger.earn(earn, at=now)
        ann = {
            "x-api-key": issue_key(
                stack.access_items, Principal(kind=PrincipalKind.MEMBER, id="ann", programs=("demo",))
            )
        }
        hold = {"points": 30, "reference": "h-1", "lapses_in_seconds": 60}
        taken = requests.post(f"{sandbox.api_url}/programs/demo/members/ann/holds", json=hold, headers=ann, timeout=60)
        assert taken.status_code == 201, taken.text
        # When the lapse schedule runs
        with pytest.raises(InvocationError) as failed:
            sandbox.run_function("HoldLapseFunction", now=now + timedelta(minutes=5), simulate=True)
        # Then the release's transaction is refused for the hold's delete, and the points stay held
        assert failed.value.error_type == "ClientError"
        assert "(AccessDeniedException) when calling the TransactWriteItems operation" in failed.value.message
        denial = implicit("HoldLapseFunction", "dynamodb:DeleteItem", sandbox.arn("PointsTable"), stage="control")
        assert denial in failed.value.message
        account = stack.ledger_store.get_account("demo", "ann")
        assert account is not None and (account.available, account.held) == (70, 30)
        assert [d["action"] for d in sandbox.iam_report()["denials"]] == ["dynamodb:DeleteItem"]
