"""Pure parts of the sandbox: schedule expressions, proxy replies, batch replies, intrinsics."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from pointbridge.sandbox.apigw import (
    AUTHORIZER_FAILURE,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    UNAUTHORIZED,
    Route,
    Throttle,
    gateway_reply,
    method_throttle,
    select_route,
    translate_reply,
)
from pointbridge.sandbox.core import gateway_response
from pointbridge.sandbox.schedules import (
    ScheduleRunner,
    ScheduleSpec,
    aws_cron_to_croniter,
    next_fire,
    scheduled_event,
)
from pointbridge.sandbox.sources import FilterPatternError, event_filter, failed_item_ids
from pointbridge.sandbox.template import Resolver, TemplateError, parameter_values


@pytest.mark.parametrize(
    ("aws", "expected"),
    [
        ("15 0 * * ? *", ("15 0 * * *", "*")),
        ("0 12 ? * MON-FRI *", ("0 12 * * MON-FRI", "*")),
        ("0 8 ? * 2-6 2027", ("0 8 * * 1-5", "2027")),
        ("0 10 ? * 6#3 *", ("0 10 * * 5#3", "*")),
    ],
)
def test_aws_cron_becomes_croniter(aws: str, expected: tuple[str, str]) -> None:
    # When / Then
    assert aws_cron_to_croniter(aws) == expected


def test_next_fire_follows_timezone_rate_and_year() -> None:
    # Given a moment in winter (Paris is UTC+1)
    after = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)

    # When / Then
    assert next_fire("cron(15 0 * * ? *)", "UTC", after) == datetime(2026, 1, 11, 0, 15, tzinfo=UTC)
    assert next_fire("cron(0 2 * * ? *)", "Europe/Paris", after) == datetime(2026, 1, 11, 1, 0, tzinfo=UTC)
    assert next_fire("rate(5 minutes)", "UTC", after) == datetime(2026, 1, 10, 12, 5, tzinfo=UTC)
    assert next_fire("cron(0 0 1 1 ? 2028)", "UTC", after) == datetime(2028, 1, 1, tzinfo=UTC)


def test_scheduled_event_without_input_is_the_scheduler_envelope() -> None:
    # Given a ScheduleV2 without Input
    spec = ScheduleSpec("Fn", "Nightly", "ScheduleV2", "n", "arn:s", "rate(1 day)", "UTC", None, True)

    # When
    event = scheduled_event(spec, "arn:fn", "eu-west-1", datetime(2026, 5, 1, 0, 15))

    # Then
    assert event["source"] == "aws.scheduler" and event["detail-type"] == "Scheduled Event"
    assert event["time"] == "2026-05-01T00:15:00Z"
    assert event["resources"] == ["arn:s"] and event["region"] == "eu-west-1" and event["detail"] == {}


@pytest.mark.parametrize(
    "reply",
    [
        "text",
        {"body": "x"},
        {"statusCode": 200, "body": {"a": 1}},
        {"statusCode": 200, "unexpected": 1},
        {"statusCode": True},
    ],
)
def test_malformed_proxy_replies_are_rejected(reply: object) -> None:
    assert translate_reply(reply) is None


def test_proxy_reply_headers_and_base64() -> None:
    # When
    status, headers, body = translate_reply(
        {
            "statusCode": "200",
            "headers": {"A": "1"},
            "multiValueHeaders": {"B": ["x", "y"]},
            "body": "aGk=",
            "isBase64Encoded": True,
        }
    ) or (0, {}, b"")

    # Then
    assert (status, headers, body) == (200, {"B": ["x", "y"], "A": ["1"]}, b"hi")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (None, set()),
        ({"batchItemFailures": []}, set()),
        ({}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "a"}]}, {"a"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, None),
        ({"batchItemFailures": "a"}, None),
        ([1], None),
    ],
)
def test_batch_reply_rules(reply: object, expected: set[str] | None) -> None:
    assert failed_item_ids(reply, {"a", "b"}) == expected


def test_resolver_handles_ref_getatt_sub_and_parameters() -> None:
    # Given
    resolver = Resolver(
        {"Stage": "local"},
        "eu-west-1",
        ref=lambda name: f"ref:{name}",
        get_att=lambda name, attribute: f"{name}.{attribute}!",
    )

    # When / Then
    assert (
        resolver.resolve({"Fn::Sub": "pb-${Stage}-${AWS::Region}-${Q.Arn}-${T}"}) == "pb-local-eu-west-1-Q.Arn!-ref:T"
    )
    assert resolver.resolve({"Fn::GetAtt": ["Q", "Arn"]}) == "Q.Arn!"
    assert resolver.resolve([{"Ref": "Stage"}, {"Fn::Sub": ["${x}-1", {"x": {"Ref": "T"}}]}]) == [
        "local",
        "ref:T-1",
    ]


def test_resolver_evaluates_conditions_if_and_no_value() -> None:
    # Given a template's Conditions over parameters (a Number default stays a number)
    template = {
        "Parameters": {
            "Email": {"Type": "String", "Default": ""},
            "Reserve": {"Type": "Number", "Default": 0},
            "Stage": {"Type": "String", "Default": "dev"},
        },
        "Conditions": {
            "HasEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Email"}, ""]}]},
            "Reserves": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Reserve"}, 0]}]},
            "Both": {"Fn::And": [{"Condition": "HasEmail"}, {"Condition": "Reserves"}]},
            "Either": {"Fn::Or": [{"Condition": "HasEmail"}, {"Condition": "Reserves"}]},
        },
    }
    values = parameter_values(template, {"Reserve": "5"})
    assert values == {"Email": "", "Reserve": 5, "Stage": "dev"}
    resolver = Resolver(values, "us-east-1", ref=str, get_att=lambda n, a: n, conditions=template["Conditions"])
    # Then conditions, Fn::If and AWS::NoValue resolve as CloudFormation's do
    assert (resolver.condition("HasEmail"), resolver.condition("Reserves")) == (False, True)
    assert (resolver.condition("Both"), resolver.condition("Either")) == (False, True)
    props = {
        "Reserved": {"Fn::If": ["Reserves", {"Ref": "Reserve"}, {"Ref": "AWS::NoValue"}]},
        "Email": {"Fn::If": ["HasEmail", {"Ref": "Email"}, {"Ref": "AWS::NoValue"}]},
        "List": ["a", {"Ref": "AWS::NoValue"}, "b"],
    }
    assert resolver.resolve(props) == {"Reserved": 5, "List": ["a", "b"]}
    with pytest.raises(TemplateError):
        resolver.condition("Nope")
    with pytest.raises(TemplateError):
        parameter_values(template, {"Unknown": "x"})


def test_the_most_specific_resource_wins_then_its_method_as_in_api_gateway() -> None:
    # Given the API's greedy route and the reveal's resource on a second function
    reveal = "/admin/programs/{program}/draws/{draw_id}/reveal"
    routes = [
        Route("ApiFunction", "ANY", "/{proxy+}", "api", "Prod"),
        Route("ApiFunction", "GET", "/health", "api", "Prod"),
        Route("DrawFunction", "POST", reveal, "api", "Prod"),
        Route("PageFunction", "ANY", "/page", "api", "Prod"),
        Route("PageReader", "GET", "/page", "api", "Prod"),
    ]

    def picked(method: str, path: str) -> tuple[str, dict[str, str]] | None:
        found = select_route(routes, method, path)
        return (found[0].function, found[1]) if found is not None else None

    # Then the reveal goes to the draw function, whatever order the routes came in
    assert picked("POST", "/admin/programs/club/draws/d-1/reveal") == (
        "DrawFunction",
        {"program": "club", "draw_id": "d-1"},
    )
    assert select_route(routes[::-1], "POST", "/admin/programs/club/draws/d-1/reveal") is not None
    assert picked("POST", "/admin/programs/club/draws/d-1") == (
        "ApiFunction",
        {"proxy": "admin/programs/club/draws/d-1"},
    )
    # And a method the chosen resource lacks is refused, not passed to the greedy route (API Gateway's 403)
    assert picked("GET", "/admin/programs/club/draws/d-1/reveal") is None
    assert picked("POST", "/health") is None
    # And on one resource its own method beats its ANY
    assert picked("GET", "/page") == ("PageReader", {})
    assert picked("DELETE", "/page") == ("PageFunction", {})
    # And a path no resource matches has no route
    assert select_route(routes[2:], "GET", "/nothing") is None


def test_method_throttle_picks_the_methods_own_setting_else_the_stages() -> None:
    settings = [
        {"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 50},
        {"ResourcePath": "/~1hooks~1{shop}", "HttpMethod": "POST", "ThrottlingRateLimit": 5, "ThrottlingBurstLimit": 2},
    ]
    own = method_throttle(settings, "/hooks/{shop}", "POST")
    stage = method_throttle(settings, "/{proxy+}", "ANY")
    assert own is not None and (own.rate, own.burst) == (5, 2)
    assert stage is not None and (stage.rate, stage.burst) == (100, 50)
    assert method_throttle([], "/x", "GET") is None


def test_throttle_is_a_token_bucket() -> None:
    # Given a bucket of 2 refilled at 1 a second, on a clock the test moves
    now = [0.0]
    bucket = Throttle(rate=1, burst=2, clock=lambda: now[0])
    # Then a burst of 2 passes, the third waits for a refill, and the bucket never holds more than 2
    assert [bucket.admit() for _ in range(3)] == [True, True, False]
    now[0] = 1.0
    assert [bucket.admit() for _ in range(2)] == [True, False]
    now[0] = 100.0
    assert [bucket.admit() for _ in range(3)] == [True, True, False]


def test_schedule_runner_fires_enabled_schedules_at_their_time() -> None:
    # Given a clock that jumps a minute after start, an enabled and a disabled rate(1 minute)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    readings = iter([t0])
    enabled = ScheduleSpec("On", "E", "ScheduleV2", "on", "arn:on", "rate(1 minute)", "UTC", None, True)
    disabled = ScheduleSpec("Off", "E", "ScheduleV2", "off", "arn:off", "rate(1 minute)", "UTC", None, False)
    fired: list[tuple[str, datetime]] = []
    done = threading.Event()

    def run(spec: ScheduleSpec, when: datetime) -> None:
        fired.append((spec.function, when))
        done.set()

    runner = ScheduleRunner([enabled, disabled], run, clock=lambda: next(readings, t0 + timedelta(minutes=1)))

    # When it runs until the first fire
    runner.start()
    assert done.wait(10)
    runner.stop()

    # Then only the enabled schedule fired, at its scheduled time
    assert fired == [("On", t0 + timedelta(minutes=1))]


# --- FilterCriteria, as Lambda applies them ----------------------------------------------------

ENTRY_ONLY = {
    "Filters": [{"Pattern": '{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": ["entry"]}}}}'}]
}


def _stream_record(event_name: str, item_type: str | None) -> dict[str, object]:
    image = {"PK": {"S": "p"}} | ({"type": {"S": item_type}} if item_type else {})
    return {"eventName": event_name, "dynamodb": {"Keys": {"PK": {"S": "p"}}, "NewImage": image}}


@pytest.mark.parametrize(
    ("record", "kept"),
    [
        (_stream_record("INSERT", "entry"), True),
        (_stream_record("MODIFY", "entry"), False),
        (_stream_record("INSERT", "balance"), False),
        (_stream_record("INSERT", None), False),
        ({"eventName": "REMOVE", "dynamodb": {"Keys": {}}}, False),
    ],
)
def test_the_templates_stream_filter_keeps_only_new_entries(record: dict[str, object], kept: bool) -> None:
    keeps = event_filter(ENTRY_ONLY)
    assert keeps is not None and keeps(record) is kept


def test_filter_operators_and_any_filter_matching() -> None:
    # Given two filters (either keeps a record) using Lambda's operators
    keeps = event_filter(
        {
            "Filters": [
                {"Pattern": json.dumps({"body": {"amount": [{"numeric": [">", 10, "<=", 100]}], "kind": ["earn"]}})},
                {"Pattern": json.dumps({"body": {"source": [{"prefix": "shop"}], "note": [{"exists": False}]}})},
                {"Pattern": json.dumps({"body": {"channel": [{"anything-but": ["till", "app"]}]}})},
            ]
        }
    )
    assert keeps is not None
    # Then
    assert keeps({"body": {"amount": 50, "kind": "earn"}})
    assert not keeps({"body": {"amount": 500, "kind": "earn"}})
    assert not keeps({"body": {"amount": "50", "kind": "earn"}})  # a string is not a number
    assert keeps({"body": {"source": "shopify"}})
    assert not keeps({"body": {"source": "shopify", "note": "x"}})
    assert keeps({"body": {"channel": "online"}})
    assert not keeps({"body": {"channel": "till"}})
    assert keeps({"body": {"tags": ["x", "earn"], "amount": 11, "kind": ["a", "earn"]}})  # any element of a list


@pytest.mark.parametrize(
    "pattern",
    [
        '{"a": [{"wildcard": "x*"}]}',
        '{"a": "not a list"}',
        '{"a": []}',
        "[1]",
        "{not json",
        '{"a": [{"numeric": ["~", 1]}]}',
    ],
)
def test_a_filter_the_sandbox_cannot_apply_fails_at_start(pattern: str) -> None:
    with pytest.raises(FilterPatternError):
        event_filter({"Filters": [{"Pattern": pattern}]})


def test_no_filter_criteria_keeps_everything() -> None:
    assert event_filter(None) is None and event_filter({"Filters": []}) is None


def test_gateway_responses_replace_api_gateways_refusals_with_the_apis_own() -> None:
    # Given an API with a custom UNAUTHORIZED (static) and ACCESS_DENIED (from the authorizer's context)
    custom = {
        "UNAUTHORIZED": gateway_response(
            {
                "StatusCode": "401",
                "ResponseParameters": {"Headers": {"Content-Type": "'application/problem+json'"}},
                "ResponseTemplates": {"application/json": '{"code": "key_missing"}'},
            }
        ),
        "ACCESS_DENIED": gateway_response(
            {
                "StatusCode": "401",
                "ResponseTemplates": {
                    "application/json": '{"code": "$context.authorizer.refusal", "why": "$context.error.message", '
                    '"id": "$context.requestId", "unknown": "$context.authorizer.nothing"}'
                },
            }
        ),
        "DEFAULT_5XX": gateway_response(
            {"ResponseTemplates": {"application/json": '{"type": "$context.error.responseType"}'}}
        ),
    }
    route = Route("Fn", "GET", "/x", "api", "Prod", gateway_responses=custom)
    # Then each refusal reads as the API says, its variables filled in
    status, headers, body = gateway_reply(route, UNAUTHORIZED, {}, "r-1")
    assert (status, headers["Content-Type"], json.loads(body)) == (
        401,
        ["application/problem+json"],
        {"code": "key_missing"},
    )
    status, _, body = gateway_reply(route, EXPLICIT_DENY, {"refusal": "key_revoked"}, "r-2")
    assert (status, json.loads(body)) == (
        401,
        {"code": "key_revoked", "why": EXPLICIT_DENY[2], "id": "r-2", "unknown": ""},
    )
    status, _, body = gateway_reply(route, AUTHORIZER_FAILURE, {}, "r-3")
    assert (status, json.loads(body)) == (500, {"type": "AUTHORIZER_FAILURE"})
    # And without a gateway response an API keeps API Gateway's defaults
    plain = Route("Fn", "GET", "/x", "api", "Prod")
    assert gateway_reply(plain, IMPLICIT_DENY, {}, "r-4") == (
        403,
        {"Content-Type": ["application/json"]},
        json.dumps({"message": IMPLICIT_DENY[2]}).encode(),
    )


def test_only_static_gateway_response_headers_are_emulated() -> None:
    with pytest.raises(TemplateError, match="static"):
        gateway_response({"ResponseParameters": {"Headers": {"X-Key": "method.request.header.x-api-key"}}})
