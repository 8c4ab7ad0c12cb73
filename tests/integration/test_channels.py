"""Channels end to end in-process under moto: every adapter's events, the SQS ingest handler with
poison messages, the webhook receiver and the file splitter."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from functions.services import reset, services
from shared.access.keys import Principal, PrincipalKind
from shared.earning.queue import envelope
from shared.ledger.audit import audit
from tests.integration.channel_fixtures import (
    MERCHANT,
    NOW,
    SHOP,
    SOURCES,
    acme,
    channel_events,
    shopify_headers,
    square_headers,
)
from tests.integration.ingest_support import balances, wire
from tests.support.aws import create_table
from tests.support.iam import template_name
from tests.support.services import table_services
from tests.unit.adapter_helpers import raw

if TYPE_CHECKING:
    from collections.abc import Iterator

    from functions.services import Services

EVENTS = channel_events()


def _ingest_all(services: Services, order: list[int]) -> dict[str, tuple[int, int]]:
    ingest = wire(services, acme())
    for i in order:
        ingest.handle(EVENTS[i % len(EVENTS)])
    assert audit(*services.ledger_store.ledger_records()).ok
    return balances(services.ledger_store)


@pytest.fixture(scope="module")
def once_in_order() -> dict[str, tuple[int, int]]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "baseline")
        return _ingest_all(table_services("baseline", client), list(range(len(EVENTS))))


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(list(range(3 * len(EVENTS)))))
def test_every_channel_delivered_three_times_in_any_order_gives_the_same_balances(
    order: list[int], once_in_order: dict[str, tuple[int, int]]
) -> None:
    # Given every channel's events (refunds included), each delivered three times, shuffled
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        table = create_table(client, f"t-{uuid.uuid4().hex[:8]}")
        # When they are all ingested
        result = _ingest_all(table_services(table, client), order)
    # Then every member holds what one in-order delivery gives
    assert result == once_in_order
    assert len(result) >= 5


# --- Handlers under mock_aws -------------------------------------------------------------------


@dataclass
class FakeContext:
    function_name: str = "test"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "req-1"


@dataclass
class Stack:
    services: Services  # what the handlers get: built from the environment, as in a container
    sqs: Any
    s3: Any
    queue: str
    dlq: str
    bucket: str

    def messages(self, url: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            if not got.get("Messages"):
                return found
            found += got["Messages"]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with mock_aws():
        ddb = boto3.client("dynamodb")
        create_table(ddb, "points-test")
        sqs, s3 = boto3.client("sqs"), boto3.client("s3")
        dlq = sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
        queue = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        # The file splitter's policy names its bucket (pointbridge-<stage>-files-<account>), not a Ref.
        bucket = template_name("FilesBucket")
        s3.create_bucket(Bucket=bucket)
        for name, value in {
            "TABLE_NAME": "points-test",
            "INGEST_QUEUE_URL": queue,
            "INGEST_DLQ_URL": dlq,
            "IDENTITY_HASH_KEY": "identity-key",
            "SOURCES": json.dumps(SOURCES),
        }.items():
            monkeypatch.setenv(name, value)
        from shared.infra.settings import get_settings

        get_settings.cache_clear()
        reset()
        built = services()
        built.programs.publish(acme())
        yield Stack(built, sqs, s3, queue, dlq, bucket)
        reset()


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"rh-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def test_a_batch_with_two_poison_messages_commits_the_rest_and_dead_letters_those(stack: Stack) -> None:
    from functions.ingest.app import handler

    # Given 8 good events (refunds after their orders; one bare, without the envelope) and 2 poison ones
    good = [envelope(e) for e in EVENTS[:8]]
    good[0] = json.dumps(json.loads(good[0])["event"])
    unknown_program = json.loads(envelope(EVENTS[0]))
    unknown_program["event"]["program"] = "nosuch"
    bodies = good[:4] + ["{not json"] + good[4:] + [json.dumps(unknown_program)]

    # When the ingest handler processes the batch
    reply = handler(sqs_event(bodies), FakeContext())

    # Then nothing is retried, 8 entries are committed and the DLQ holds the 2 with their reasons
    assert reply == {"batchItemFailures": []}
    entries, *_ = stack.services.ledger_store.ledger_records()
    assert len(entries) == 8
    dead = stack.messages(stack.dlq)
    codes = {m["MessageAttributes"]["code"]["StringValue"]: m for m in dead}
    assert set(codes) == {"malformed_event", "unknown_program"}
    assert codes["malformed_event"]["MessageAttributes"]["original_message_id"]["StringValue"] == "msg-4"
    assert "nosuch" in codes["unknown_program"]["MessageAttributes"]["reason"]["StringValue"]


def test_an_event_after_the_program_stopped_earning_is_dead_lettered_with_its_reason(stack: Stack) -> None:
    from datetime import timedelta

    from functions.ingest.app import handler
    from shared.program.config import Sunset

    # Given acme stopped earning a day before these events were made (announced 40 days earlier)
    stop = NOW - timedelta(days=1)
    sunset = Sunset(announced_at=stop - timedelta(days=40), earning_ends_at=stop, ends_at=stop + timedelta(days=3650))
    stack.services.programs.publish(acme().model_copy(update={"version": 2, "sunset": sunset}))

    # When the ingest function receives an order from after the stop
    reply = handler(sqs_event([envelope(EVENTS[0])]), FakeContext())

    # Then it is not retried, nothing is posted, and the DLQ holds it with the code and the reason
    assert reply == {"batchItemFailures": []}
    assert stack.services.ledger_store.ledger_records()[0] == []
    [dead] = stack.messages(stack.dlq)
    assert dead["MessageAttributes"]["code"]["StringValue"] == "earning_closed"
    assert "stopped earning" in dead["MessageAttributes"]["reason"]["StringValue"]


def test_transient_failures_are_reported_for_retry(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.ingest.app import handler
    from shared.earning.ingest import Ingest
    from shared.errors import ContentionError

    real = Ingest.handle

    def busy_for_the_first(self: Ingest, event: Any) -> Any:
        if event.external_id == EVENTS[0].external_id:
            raise ContentionError("busy")
        return real(self, event)

    # Given a batch whose first event meets a busy account
    monkeypatch.setattr(Ingest, "handle", busy_for_the_first)
    # When it is processed
    reply = handler(sqs_event([envelope(EVENTS[0]), envelope(EVENTS[2])]), FakeContext())
    # Then only that record goes back for a retry, and nothing is dead-lettered
    assert reply == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert stack.messages(stack.dlq) == []


def api_event(path: str, body: bytes, headers: dict[str, str], principal: Principal | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"resourcePath": path, "httpMethod": "POST", "stage": "Prod", "requestId": "r"}
    if principal is not None:  # what API Gateway's authorizer passes on (app events are behind it)
        context["authorizer"] = {**principal.to_context(), "principalId": principal.key}
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": headers,
        "body": body.decode(),
        "isBase64Encoded": False,
        "requestContext": context,
    }


APP_BACKEND = Principal(kind=PrincipalKind.CHANNEL, id="app", programs=("acme",), authenticates_members=True)


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Any:
    from functions.webhooks import app

    monkeypatch.setattr(app, "_now", lambda: NOW)
    return lambda path, body, headers, principal=None: app.handler(
        api_event(path, body, headers, principal), FakeContext()
    )


def test_a_signed_shopify_order_is_queued_normalised(stack: Stack, webhook: Any) -> None:
    body = raw("shopify_orders_paid.json")
    reply = webhook(f"/webhooks/shopify/{SHOP}", body, shopify_headers(body, "orders/paid"))
    assert reply["statusCode"] == 200, reply
    queued = stack.messages(stack.queue)
    assert len(queued) == 1
    assert json.loads(queued[0]["Body"])["event"]["external_id"] == "820982911946154508"


def test_shopifys_retry_hours_after_a_failed_first_delivery_still_earns_once(
    stack: Stack, webhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from functions.ingest.app import handler
    from functions.webhooks import app

    # Given an order whose first delivery failed (a deploy), triggered four hours before the retry
    body = raw("shopify_orders_paid.json")
    headers = shopify_headers(body, "orders/paid", NOW - timedelta(hours=4))
    # When Shopify retries it with the original X-Shopify-Triggered-At, and retries again later
    # (a success it did not see), the second a day after the first attempt
    first = webhook(f"/webhooks/shopify/{SHOP}", body, headers)
    monkeypatch.setattr(app, "_now", lambda: NOW + timedelta(hours=20))
    second = webhook(f"/webhooks/shopify/{SHOP}", body, headers)
    assert (first["statusCode"], second["statusCode"]) == (200, 200), (first, second)
    queued = [m["Body"] for m in stack.messages(stack.queue)]
    handler(sqs_event(queued), FakeContext())
    # Then the order earned, once
    entries, *_ = stack.services.ledger_store.ledger_records()
    assert [e.entry_id for e in entries] == [f"shopify:{SHOP}:820982911946154508"]


def test_a_square_payment_is_queued(stack: Stack, webhook: Any) -> None:
    body = raw("square_payment_updated.json")
    reply = webhook(f"/webhooks/square/{MERCHANT}", body, square_headers(body))
    assert reply["statusCode"] == 200, reply
    assert len(stack.messages(stack.queue)) == 1


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("bad_signature", 401, "bad_signature"),
        ("malformed", 400, "malformed_payload"),
        ("unknown_shop", 400, "unknown_source"),
        ("absurd_amount", 400, "amount_out_of_range"),
    ],
)
def test_bad_webhooks_are_refused_as_problems_and_nothing_is_queued(
    stack: Stack, webhook: Any, case: str, status: int, code: str
) -> None:
    body = raw("shopify_orders_paid.json")
    shop = SHOP
    headers = shopify_headers(body, "orders/paid")
    if case == "bad_signature":
        headers["X-Shopify-Hmac-Sha256"] = "AAAA" + headers["X-Shopify-Hmac-Sha256"][4:]
    elif case == "malformed":
        body = b'{"id": 1, "line_items": "oops"'
        headers = shopify_headers(body, "orders/paid")
    elif case == "unknown_shop":
        shop = "other.myshopify.com"
    else:
        order = json.loads(body)
        for line in order["line_items"]:
            line["price"] = "99999999999"
            line["price_set"] = {
                "shop_money": {"amount": "99999999999", "currency_code": "EUR"},
                "presentment_money": {"amount": "99999999999", "currency_code": "EUR"},
            }
        body = json.dumps(order).encode()
        headers = shopify_headers(body, "orders/paid")
    reply = webhook(f"/webhooks/shopify/{shop}", body, headers)
    assert reply["statusCode"] == status, reply
    assert reply["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    assert json.loads(reply["body"])["code"] == code
    assert stack.messages(stack.queue) == []


def test_app_events_are_queued(stack: Stack, webhook: Any) -> None:
    reply = webhook("/app-events", raw("app_review.json"), {"Content-Type": "application/json"}, APP_BACKEND)
    assert reply["statusCode"] == 200, reply
    assert len(stack.messages(stack.queue)) == 1


@pytest.mark.parametrize(
    "principal",
    [
        None,  # no key reached the function (a misrouted request)
        Principal(kind=PrincipalKind.CHANNEL, id="till", programs=("acme",)),  # a till does not log members in
        Principal(kind=PrincipalKind.CHANNEL, id="app", programs=("other",), authenticates_members=True),
        Principal(kind=PrincipalKind.MEMBER, id="mbr_01JD8XK3", programs=("acme",)),
        Principal(kind=PrincipalKind.PARTNER, id="skyair", programs=("acme",)),
    ],
)
def test_app_events_only_from_the_app_backend(stack: Stack, webhook: Any, principal: Principal | None) -> None:
    reply = webhook("/app-events", raw("app_review.json"), {"Content-Type": "application/json"}, principal)
    assert reply["statusCode"] == 403, reply
    assert json.loads(reply["body"])["code"] == "forbidden"
    assert stack.messages(stack.queue) == []


def test_a_till_file_with_broken_rows_queues_the_good_ones_and_reports_the_rest(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.files import app

    # Given the till's end-of-day file, with broken rows among the good ones, dropped in the bucket
    stack.s3.put_object(Bucket=stack.bucket, Key="till/eod-2026-11-24.csv", Body=raw("till_eod.csv"))
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": stack.bucket}, "object": {"key": "till/eod-2026-11-24.csv", "size": 1}},
            }
        ]
    }
    monkeypatch.setattr(app, "datetime", _FrozenDatetime)

    # When the splitter runs
    app.handler(event, FakeContext())  # type: ignore[arg-type]

    # Then one message per accepted row, and a report naming each refused line and why
    report = json.loads(
        stack.s3.get_object(Bucket=stack.bucket, Key="reports/till/eod-2026-11-24.csv.json")["Body"].read()
    )
    assert report["accepted"] == 3
    assert len(stack.messages(stack.queue)) == 3
    rejected = {r["line"]: r["code"] for r in report["rejected"]}
    assert rejected[6] == "malformed_payload"  # no UTC offset
    assert rejected[7] == "amount_out_of_range"  # negative amount
    assert all(r["reason"] for r in report["rejected"])


class _FrozenDatetime:
    @staticmethod
    def now(tz: Any = None) -> Any:
        return NOW
