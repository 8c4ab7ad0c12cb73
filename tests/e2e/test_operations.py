"""The operations shell of template.yaml: every entry point on a named API, every function's logs kept
for a while and alarmed, every asynchronous path with a dead-letter destination; then the same
stack in the sandbox, which creates and honours what the template declares."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from pointbridge.sandbox import Sandbox
from pointbridge.sandbox.template import SERVERLESS_FUNCTION, load_template
from shared.access.keys import Principal, PrincipalKind, issue_key
from tests.integration.channel_fixtures import SOURCES, acme
from tests.support.channels import create_channels
from tests.support.services import sandbox_services

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = sorted(k for k, r in RESOURCES.items() if r["Type"] == SERVERLESS_FUNCTION)
ASYNC_EVENTS = {"S3", "ScheduleV2", "Schedule"}


def _events(function: str) -> dict[str, Any]:
    events: dict[str, Any] = RESOURCES[function]["Properties"].get("Events", {})
    return events


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in RESOURCES.items() if r["Type"] == kind}


def _ref(value: Any) -> str:
    """The logical id a Ref, GetAtt or Sub of one resource names."""
    if isinstance(value, dict):
        ((key, arg),) = value.items()
        if key == "Ref":
            return str(arg)
        if key == "Fn::GetAtt":
            return str(arg[0] if isinstance(arg, list) else arg.split(".")[0])
        if key == "Fn::Sub":
            return str(arg).split("${", 1)[1].split("}", 1)[0]
    raise AssertionError(f"not a reference: {value!r}")


def test_every_entry_point_is_on_the_named_api() -> None:
    # No event on SAM's implicit API, whose URL no output names
    for function in FUNCTIONS:
        for event_id, event in _events(function).items():
            if event["Type"] == "Api":
                assert _ref(event["Properties"].get("RestApiId", {"Ref": "?"})) == "PointsApi", (function, event_id)
    # Shopify and Square sign their requests; they carry no API key
    for event_id in ("Shopify", "Square"):
        assert _events("WebhookFunction")[event_id]["Properties"]["Auth"] == {"Authorizer": "NONE"}
    api = RESOURCES["PointsApi"]["Properties"]
    stage_wide = [s for s in api["MethodSettings"] if s["ResourcePath"] == "/*" and s["HttpMethod"] == "*"]
    assert stage_wide and "ThrottlingRateLimit" in stage_wide[0] and "ThrottlingBurstLimit" in stage_wide[0]


def test_every_url_an_outsider_is_given_is_an_output() -> None:
    outputs = {k: json.dumps(v["Value"]) for k, v in TEMPLATE["Outputs"].items()}
    for path in ("/webhooks/shopify/{shop}", "/webhooks/square/{merchant}", "/app-events", "/console"):
        assert any(path in value and "PointsApi" in value for value in outputs.values()), path
    assert "ApiUrl" in outputs


def test_every_function_has_a_log_group_with_retention_and_alarms_on_errors_and_throttles() -> None:
    groups = {_ref(r["Properties"]["LogGroupName"]): r for r in _of_type("AWS::Logs::LogGroup").values()}
    alarms = list(_of_type("AWS::CloudWatch::Alarm").values())
    for function in FUNCTIONS:
        assert groups[function]["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
        assert groups[function]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        for metric in ("Errors", "Throttles"):
            assert [
                a
                for a in alarms
                if a["Properties"]["MetricName"] == metric
                and _ref(a["Properties"]["Dimensions"][0]["Value"]) == function
            ], (function, metric)
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_every_asynchronous_path_has_a_dead_letter_destination_that_is_alarmed() -> None:
    destinations: set[str] = set()
    for function in FUNCTIONS:
        props = RESOURCES[function]["Properties"]
        for event_id, event in _events(function).items():
            if event["Type"] in ASYNC_EVENTS:
                on_failure = props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
                destinations.add(_ref(on_failure["Destination"]))
            if event["Type"].startswith("Schedule"):
                destinations.add(_ref(event["Properties"]["DeadLetterConfig"]["Arn"]))
            if event["Type"] == "DynamoDB":
                destinations.add(_ref(event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]))
            if event["Type"] == "SQS":
                queue = RESOURCES[_ref(event["Properties"]["Queue"])]["Properties"]
                destinations.add(_ref(queue["RedrivePolicy"]["deadLetterTargetArn"]))
            assert event["Type"] in ASYNC_EVENTS | {"DynamoDB", "SQS", "Api"}, (function, event_id)
    alarmed = {
        _ref(a["Properties"]["Dimensions"][0]["Value"])
        for a in _of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    assert destinations == {"IngestDeadLetterQueue", "AsyncDeadLetterQueue", "WatchDeadLetterQueue"}
    assert destinations <= alarmed


# --- the same stack in the sandbox ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(
        template=ROOT / "template.yaml", stage="ops", pool_size=1, parameters={"AlarmEmail": "ops@x.test"}
    ) as s:
        yield s


def test_the_sandbox_creates_log_groups_alarms_and_the_alarm_subscription(sb: Sandbox) -> None:
    logs = sb.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    retention = {g["logGroupName"]: g.get("retentionInDays") for g in logs}
    assert {retention.get(f"/aws/lambda/{sb.resource(f)}") for f in FUNCTIONS} == {30}
    alarms = sb.client("cloudwatch").describe_alarms(MaxRecords=100)["MetricAlarms"]
    assert len(alarms) == len(_of_type("AWS::CloudWatch::Alarm"))
    assert {tuple(a["AlarmActions"]) for a in alarms} == {(sb.resource("AlarmTopic"),)}
    [subscription] = sb.client("sns").list_subscriptions_by_topic(TopicArn=sb.resource("AlarmTopic"))["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "ops@x.test")


def test_a_file_no_feed_takes_is_refused_with_a_report(sb: Sandbox) -> None:
    # Given a partner file for a partner nobody configured
    key = "partners/nobody/feed.csv"
    sb.client("s3").put_object(Bucket=sb.resource("FilesBucket"), Key=key, Body=b"partner_member_id\n")
    sb.wait_for_idle(timeout=60)
    # Then it is not retried: its report says why (no channel takes it)
    body = sb.client("s3").get_object(Bucket=sb.resource("FilesBucket"), Key=f"reports/{key}.json")["Body"].read()
    report = json.loads(body)
    assert report["status"] == "refused"
    assert report["rejected"][0]["code"] == "unknown_source"


def test_a_file_that_cannot_finish_ends_in_the_async_dead_letter_queue() -> None:
    # (A sandbox of its own: the splitter's workers read their tuning when they start.)
    with Sandbox(template=ROOT / "template.yaml", stage="ops-slow", pool_size=1, schedules=False) as sb:
        _a_file_that_cannot_finish(sb)


def _a_file_that_cannot_finish(sb: Sandbox) -> None:
    # Given a partner's file that needs more invocations than Lambda's three tries of one S3 event
    # (one line a chunk, one chunk a wave, and a time margin no invocation has: one wave each)
    services = sandbox_services(sb, config_cache_seconds=0)
    services.programs.publish(acme())
    operator = issue_key(services.access_items, Principal(kind=PrincipalKind.ADMIN, id="ops"))
    create_channels(sb, {"partners": SOURCES["partners"]}, operator)
    sb.functions["FileSplitterFunction"].environment.update(
        {"FILES_CHUNK_LINES": "1", "FILES_PARALLEL_CHUNKS": "1", "FILES_TIME_MARGIN_S": "100000"}
    )
    at = datetime.now(UTC).isoformat()
    rows = "".join(f"AIR-{i},ft-{i},{at},5\n" for i in range(6))
    key = "partners/skyair/slow.csv"
    body = ("partner_member_id,external_id,occurred_at,points\n" + rows).encode()
    sb.client("s3").put_object(Bucket=sb.resource("FilesBucket"), Key=key, Body=body)
    sb.wait_for_idle(timeout=120)
    # Then after Lambda's two retries, its event and error are in AsyncDeadLetterQueue
    sqs, url = sb.client("sqs"), sb.resource("AsyncDeadLetterQueue")
    deadline, bodies = time.monotonic() + 120, list[dict[str, Any]]()
    while not bodies and time.monotonic() < deadline:
        bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url).get("Messages", [])]
    [record] = bodies
    assert record["requestPayload"]["Records"][0]["s3"]["object"]["key"] == key
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"]["errorType"] == "FileNotFinishedError"
    # And its report says it is incomplete, and why: dropping the same bytes again resumes it
    report = json.loads(
        sb.client("s3").get_object(Bucket=sb.resource("FilesBucket"), Key=f"reports/{key}.json")["Body"].read()
    )
    assert report["status"] == "incomplete"


def test_webhooks_answer_on_the_api_url_without_a_key_and_refuse_a_huge_body(sb: Sandbox) -> None:
    # A webhook reaches the function (no key asked for): an unsigned one is the function's 401 problem
    unsigned = requests.post(f"{sb.api_url}/webhooks/shopify/acme.myshopify.com", data=b"{}", timeout=30)
    assert unsigned.status_code in (400, 401) and unsigned.headers["content-type"] == "application/problem+json"
    # A body over a megabyte is refused before it is read
    huge = requests.post(f"{sb.api_url}/webhooks/square/M1", data=b"x" * (1024 * 1024 + 1), timeout=30)
    assert huge.status_code == 413 and huge.json()["code"] == "payload_too_large"
    # App events are behind the API's key check
    assert requests.post(f"{sb.api_url}/app-events", json={}, timeout=30).status_code == 401


def test_s3_takes_only_signature_version_4_as_buckets_made_since_2020_do(sb: Sandbox) -> None:
    import boto3
    from botocore.config import Config

    legacy = boto3.client(
        "s3",
        endpoint_url=sb.endpoint_url,
        region_name=sb.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(signature_version="s3"),
    )
    url = legacy.generate_presigned_url(
        "put_object", Params={"Bucket": sb.resource("FilesBucket"), "Key": "partners/x/f.csv"}, ExpiresIn=60
    )
    refused = requests.put(url, data=b"x", timeout=30)
    assert refused.status_code == 400 and b"AWS4-HMAC-SHA256" in refused.content


def test_ttl_takes_the_hour_windows_but_keeps_an_orders_window_while_a_copy_can_arrive(sb: Sandbox) -> None:
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from shared.events.model import Channel, Identity, IdentityKind, PurchaseEvent
    from shared.infra.keys import velocity_window
    from shared.members.flags import open_flags
    from shared.program.config import ProgramConfig
    from tests.support.services import sandbox_services

    services = sandbox_services(sb, config_cache_seconds=0)
    services.programs.publish(ProgramConfig(program="watched", name="Watched"))
    now = datetime.now(UTC)

    def purchase(source: str, order: str, member: str) -> None:
        event = PurchaseEvent(
            program="watched",
            channel=Channel.ONLINE,
            source=source,
            external_id=order,
            identity=Identity(kind=IdentityKind.MEMBER, value=member),
            occurred_at=now - timedelta(minutes=5),
            currency="USD",
            eligible_amount=Decimal(10),
        )
        body = json.dumps({"event": event.model_dump(mode="json")})
        sb.client("sqs").send_message(QueueUrl=sb.resource("IngestQueue"), MessageBody=body)
        sb.wait_for_idle(timeout=60)

    # Given an order from one shop, and DynamoDB's TTL three hours later
    purchase("shop-a", "w-7", "m-1")
    sb.sweep_ttl(now + timedelta(hours=3))
    window = services.table.get(velocity_window("watched", "order", "w-7", "all"))
    assert window is not None and int(window["expires"]) > (now + timedelta(days=89)).timestamp()
    # When the same order id comes from another channel, for another member
    purchase("shop-b", "w-7", "m-2")
    # Then the order's window was still there: the second member is flagged
    found = open_flags(services.members, "watched")
    assert [(f.member, f.check) for f in found] == [("m-2", "order_two_channels")]
