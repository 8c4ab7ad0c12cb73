"""The sandbox's IAM engine: policy evaluation, what a request needs, AWS's refusals, the template's policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from pointbridge.sandbox.iam import (
    ALLOW,
    DENY,
    Enforcer,
    PolicySet,
    Principal,
    Statement,
    evaluate,
    function_credentials,
    function_principal,
    function_statements,
    parse_statement,
)
from pointbridge.sandbox.iam_requests import Authorization, AwsRequest, Described, access_denied, describe
from pointbridge.sandbox.template import Resolver, TemplateError, load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/points"


def statement(effect: str = ALLOW, actions: tuple[str, ...] = ("dynamodb:GetItem",), **kw: Any) -> Statement:
    return Statement(where="test", effect=effect, actions=actions, resources=kw.pop("resources", (TABLE,)), **kw)


def principal(*statements: Statement) -> Principal:
    key, secret = function_credentials("stack", "Fn")
    return Principal("Fn", key, secret, f"arn:aws:sts::{ACCOUNT}:assumed-role/r/fn", statements)


def signed(key: str, service: str, target: str = "", body: Any = None, **kw: Any) -> AwsRequest:
    headers = {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host, Signature=abc",
        "Content-Type": "application/x-amz-json-1.0",
    }
    if target:
        headers["X-Amz-Target"] = target
    payload = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    return AwsRequest.from_url(
        kw.pop("method", "POST"), kw.pop("url", f"https://{service}.amazonaws.com/"), headers, payload
    )


def needs(request: AwsRequest) -> list[tuple[str, str]]:
    credential = request.credential()
    assert credential is not None
    described = describe(request, credential[2], credential[1], ACCOUNT)
    assert described.unmapped is None, described.unmapped
    return [(a.action, a.resource) for a in described.authorizations]


# --- evaluation ---------------------------------------------------------------------------------


def test_allow_matches_actions_without_case_and_resources_with_wildcards() -> None:
    # Given a statement with wildcards in both
    who = principal(statement(actions=("DynamoDB:Get*", "dynamodb:Query"), resources=(TABLE, f"{TABLE}/index/GSI?")))
    # Then actions match case-insensitively, resources by their own wildcards only
    assert evaluate(who, Authorization("dynamodb:GetItem", TABLE)).allowed
    assert evaluate(who, Authorization("dynamodb:Query", f"{TABLE}/index/GSI1")).allowed
    assert not evaluate(who, Authorization("dynamodb:Query", f"{TABLE}/index/GSI10")).allowed
    assert not evaluate(who, Authorization("dynamodb:PutItem", TABLE)).allowed
    assert not evaluate(who, Authorization("dynamodb:GetItem", f"{TABLE}-other")).allowed


def test_an_explicit_deny_wins_over_any_allow() -> None:
    who = principal(
        statement(actions=("dynamodb:*",), resources=("*",)),
        statement(effect=DENY, actions=("dynamodb:DeleteItem",)),
    )
    verdict = evaluate(who, Authorization("dynamodb:DeleteItem", TABLE))
    assert (verdict.allowed, verdict.explicit_deny) == (False, True)
    assert evaluate(who, Authorization("dynamodb:PutItem", TABLE)).allowed


def test_not_action_and_not_resource_allow_everything_else() -> None:
    who = principal(
        statement(actions=("dynamodb:DeleteItem",), not_action=True, resources=(f"{TABLE}/index/*",), not_resource=True)
    )
    assert evaluate(who, Authorization("dynamodb:PutItem", TABLE)).allowed
    assert not evaluate(who, Authorization("dynamodb:DeleteItem", TABLE)).allowed
    assert not evaluate(who, Authorization("dynamodb:Query", f"{TABLE}/index/GSI1")).allowed


def test_the_grants_that_allowed_a_call_are_named() -> None:
    who = principal(statement(actions=("dynamodb:GetItem", "dynamodb:Get*")))
    verdict = evaluate(who, Authorization("dynamodb:GetItem", TABLE))
    assert sorted(g.action for g in verdict.grants) == ["dynamodb:Get*", "dynamodb:GetItem"]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {}}, "Condition"),
        ({"Effect": "allow", "Action": "s3:GetObject", "Resource": "*"}, "Effect"),
        ({"Effect": "Allow", "Action": "a:b", "NotAction": "a:c", "Resource": "*"}, "exactly one"),
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${aws:username}"}, "variables"),
        ({"Effect": "Allow", "Action": [], "Resource": "*"}, "list of strings"),
        ({"Effect": "Allow", "Principal": "*", "Action": "a:b", "Resource": "*"}, "Principal"),
    ],
)
def test_a_statement_the_sandbox_would_not_evaluate_faithfully_is_refused(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(TemplateError, match=problem):
        parse_statement(raw, "Fn.Policies[0].Statement[0]")


# --- the template's policies -----------------------------------------------------------------------


def resolver() -> Resolver:
    names = {"PointsTable": "points", "IngestDeadLetterQueue": "dlq", "NotificationsBus": "bus"}

    def get_att(logical_id: str, attribute: str) -> str:
        return f"arn:{logical_id}:{attribute}"

    return Resolver({"Stage": "t"}, "us-east-1", ref=lambda i: names.get(i, i), get_att=get_att)


def test_a_functions_policy_is_its_statements_and_what_sam_attaches() -> None:
    template = load_template(TEMPLATE)
    statements = function_statements(template, "IngestFunction", resolver().resolve)
    declared = [s for s in statements if s.declared]
    assert "arn:PointsTable:Arn" in declared[0].resources and "dynamodb:ConditionCheckItem" in declared[0].actions
    assert declared[1].actions == ("sqs:SendMessage",) and declared[1].resources == ("arn:IngestDeadLetterQueue:Arn",)
    implicit = {s.where.split("(")[-1].rstrip(")") for s in statements if not s.declared}
    # Basic execution always, X-Ray for Tracing: Active (Globals), the SQS poller's for its queue
    assert implicit == {"AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess", "AWSLambdaSQSQueueExecutionRole"}
    watch = function_statements(template, "WatchFunction", resolver().resolve)
    assert any("dynamodb:GetRecords" in s.actions for s in watch if not s.declared)


@pytest.mark.parametrize(
    ("policies", "outcome"),
    [
        (["AWSLambdaBasicExecutionRole"], ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")),
        (["arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"], "sqs:ReceiveMessage"),
        (["AmazonS3FullAccess"], TemplateError),
        ([{"DynamoDBCrudPolicy": {"TableName": "t"}}], TemplateError),
    ],
)
def test_managed_policies_by_content_and_policy_templates_refused(policies: list[Any], outcome: Any) -> None:
    template: dict[str, Any] = {
        "Resources": {
            "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "a.b", "Policies": policies}}
        }
    }
    if outcome is TemplateError:
        with pytest.raises(TemplateError):
            function_statements(template, "Fn", resolver().resolve)
        return
    [named, _basic] = function_statements(template, "Fn", resolver().resolve)
    assert named.declared and (named.actions == outcome or outcome in named.actions)


def test_a_role_given_outright_is_refused() -> None:
    template = {"Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Role": "arn:x"}}}}
    with pytest.raises(TemplateError, match="Role"):
        function_statements(template, "Fn", resolver().resolve)


def test_each_function_has_its_own_stable_key_and_the_set_crosses_as_json() -> None:
    template = load_template(TEMPLATE)
    functions = ("ApiFunction", "IngestFunction", "HoldLapseFunction")
    keys = {function_credentials(stack, f)[0] for f in functions for stack in ("a", "b")}
    assert len(keys) == 6 and all(k.startswith("ASIA") and len(k) == 20 for k in keys)
    assert function_credentials("a", "ApiFunction") == function_credentials("a", "ApiFunction")
    policies = PolicySet()
    policies.add(function_principal(template, "ApiFunction", "api", "stack", resolver().resolve))
    assert PolicySet.from_json(policies.to_json()).principals == policies.principals


# --- what a request needs ------------------------------------------------------------------------


def test_a_transaction_needs_each_of_its_actions_and_no_transact_action() -> None:
    body = {
        "TransactItems": [
            {"Put": {"TableName": "points", "Item": {}}},
            {"Update": {"TableName": "points", "Key": {}, "UpdateExpression": "SET a = :a"}},
            {"Delete": {"TableName": "other", "Key": {}}},
            {"ConditionCheck": {"TableName": "points", "Key": {}, "ConditionExpression": "x"}},
            {"Put": {"TableName": "points", "Item": {}}},
        ]
    }
    assert needs(signed("K", "dynamodb", "DynamoDB_20120810.TransactWriteItems", body)) == [
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
        ("dynamodb:DeleteItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/other"),
        ("dynamodb:ConditionCheckItem", TABLE),
    ]
    gets = {"TransactItems": [{"Get": {"TableName": "points", "Key": {}}}]}
    assert needs(signed("K", "dynamodb", "DynamoDB_20120810.TransactGetItems", gets)) == [("dynamodb:GetItem", TABLE)]


def test_batches_need_their_action_on_every_table_and_index_queries_the_index() -> None:
    batch: dict[str, Any] = {"RequestItems": {"points": [], "other": []}}
    assert needs(signed("K", "dynamodb", "DynamoDB_20120810.BatchWriteItem", batch)) == [
        ("dynamodb:BatchWriteItem", TABLE),
        ("dynamodb:BatchWriteItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/other"),
    ]
    query = {"TableName": "points", "IndexName": "GSI1"}
    assert needs(signed("K", "dynamodb", "DynamoDB_20120810.Query", query)) == [
        ("dynamodb:Query", f"{TABLE}/index/GSI1")
    ]
    stream = {"StreamArn": f"{TABLE}/stream/1"}
    assert needs(signed("K", "dynamodb", "DynamoDBStreams_20120810.DescribeStream", stream)) == [
        ("dynamodb:DescribeStream", f"{TABLE}/stream/1")
    ]


def test_sqs_ssm_and_events_name_their_resources() -> None:
    url = f"http://127.0.0.1:5000/{ACCOUNT}/ingest"
    batch = {"QueueUrl": url, "Entries": []}
    queue = f"arn:aws:sqs:us-east-1:{ACCOUNT}:ingest"
    assert needs(signed("K", "sqs", "AmazonSQS.SendMessageBatch", batch)) == [("sqs:SendMessage", queue)]
    form = f"Action=DeleteMessageBatch&QueueUrl={url}".encode()
    assert needs(signed("K", "sqs", body=form)) == [("sqs:DeleteMessage", queue)]
    parameter = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/pointbridge/x"
    assert needs(signed("K", "ssm", "AmazonSSM.GetParameter", {"Name": "/pointbridge/x"})) == [
        ("ssm:GetParameter", parameter)
    ]
    names = {"Names": ["plain", "/pointbridge/x"]}
    assert needs(signed("K", "ssm", "AmazonSSM.GetParameters", names)) == [
        ("ssm:GetParameters", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/plain"),
        ("ssm:GetParameters", parameter),
    ]
    entries = {"Entries": [{"EventBusName": "notices"}, {}]}
    assert needs(signed("K", "events", "AWSEvents.PutEvents", entries)) == [
        ("events:PutEvents", f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/notices"),
        ("events:PutEvents", f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default"),
    ]


@pytest.mark.parametrize(
    ("method", "url", "headers", "body", "expected"),
    [
        ("GET", "https://files.s3.amazonaws.com/till/a%20b.csv", {}, b"", [("s3:GetObject", "files/till/a b.csv")]),
        ("HEAD", "http://127.0.0.1:5000/files/till/a.csv", {}, b"", [("s3:GetObject", "files/till/a.csv")]),
        ("PUT", "http://127.0.0.1:5000/files/reports/r.json", {}, b"{}", [("s3:PutObject", "files/reports/r.json")]),
        (
            "GET",
            "https://files.s3.us-east-1.amazonaws.com/k?versionId=3",
            {},
            b"",
            [("s3:GetObjectVersion", "files/k")],
        ),
        (
            "PUT",
            "http://127.0.0.1:5000/files/copy",
            {"x-amz-copy-source": "/other/src%2Bx"},
            b"",
            [("s3:PutObject", "files/copy"), ("s3:GetObject", "other/src+x")],
        ),
        (
            "POST",
            "http://127.0.0.1:5000/files?delete",
            {},
            b"<Delete><Object><Key>a</Key></Object><Object><Key>b/c</Key></Object></Delete>",
            [("s3:DeleteObject", "files/a"), ("s3:DeleteObject", "files/b/c")],
        ),
        ("GET", "http://127.0.0.1:5000/files?list-type=2&prefix=till/", {}, b"", [("s3:ListBucket", "files")]),
    ],
)
def test_s3_requests_by_method_path_and_subresource(
    method: str, url: str, headers: dict[str, str], body: bytes, expected: list[tuple[str, str]]
) -> None:
    request = signed("K", "s3", body=body, method=method, url=url)
    request = AwsRequest(
        request.method, request.host, request.path, request.query, {**request.headers, **headers}, body
    )
    assert needs(request) == [(action, f"arn:aws:s3:::{resource}") for action, resource in expected]


def test_what_cannot_be_mapped_says_so() -> None:
    for request, service in (
        (signed("K", "s3", method="GET", url="http://127.0.0.1:5000/files?tagging"), "s3"),
        (
            signed("K", "lambda", method="POST", url="https://lambda.amazonaws.com/2015-03-31/functions/f/invocations"),
            "lambda",
        ),
        (signed("K", "dynamodb", "DynamoDB_20120810.GetRecords", {"ShardIterator": "x"}), "dynamodb"),
    ):
        assert describe(request, service, "us-east-1", ACCOUNT).unmapped


# --- AWS's refusal, protocol by protocol --------------------------------------------------------------


def refusal(
    service: str, protocol: str, content_type: str = "", method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    request = AwsRequest(method, "h", "/", "", {"content-type": content_type} if content_type else {})
    reply = access_denied(Described(service, "Op", protocol), request, "no")
    return reply.status, reply.headers, reply.body


def test_refusals_take_each_protocols_shape() -> None:
    status, _, body = refusal("dynamodb", "json", "application/x-amz-json-1.0")
    assert status == 400 and json.loads(body) == {
        "__type": "com.amazon.coral.service#AccessDeniedException",
        "Message": "no",
    }
    status, headers, body = refusal("sqs", "json", "application/x-amz-json-1.0")
    assert status == 403 and headers["x-amzn-query-error"] == "AccessDenied;Sender"
    status, _, body = refusal("ssm", "json", "application/x-amz-json-1.1")
    assert status == 400 and json.loads(body) == {"__type": "AccessDeniedException", "message": "no"}
    status, _, body = refusal("s3", "rest-xml")
    error = ElementTree.fromstring(body)
    assert status == 403 and (error.tag, error.findtext("Code"), error.findtext("Message")) == (
        "Error",
        "AccessDenied",
        "no",
    )
    assert refusal("s3", "rest-xml", method="HEAD")[::2] == (403, b"")
    status, _, body = refusal("sqs", "query")
    assert status == 403 and ElementTree.fromstring(body).findtext("Error/Code") == "AccessDenied"
    status, headers, _ = refusal("lambda", "rest-json")
    assert status == 403 and headers["x-amzn-ErrorType"] == "AccessDeniedException"


# --- the enforcer ------------------------------------------------------------------------------------


def test_the_enforcer_checks_only_functions_and_reports_what_they_used() -> None:
    who = principal(statement(actions=("dynamodb:GetItem", "dynamodb:PutItem")))
    policies = PolicySet()
    policies.add(who)
    enforcer = Enforcer(policies)
    get = {"TableName": "points", "Key": {}}
    # The operator's key is not a function's: not checked, not recorded
    assert enforcer.check(signed("testing", "dynamodb", "DynamoDB_20120810.DeleteItem", get)) is None
    assert enforcer.check(signed(who.access_key_id, "dynamodb", "DynamoDB_20120810.GetItem", get)) is None
    refused = enforcer.check(signed(who.access_key_id, "dynamodb", "DynamoDB_20120810.DeleteItem", get))
    assert refused is not None and refused.status == 400
    report = enforcer.report()
    assert [(g["action"], g["count"]) for g in report["used_grants"]] == [("dynamodb:GetItem", 1)]
    assert [(r["action"], r["count"]) for r in report["requested"]] == [
        ("dynamodb:DeleteItem", 1),
        ("dynamodb:GetItem", 1),
    ]
    assert report["denied"] == enforcer.denied == 1
    assert report["denials"][0]["message"].endswith(
        "because no identity-based policy allows the dynamodb:DeleteItem action"
    )


def test_an_audit_reports_every_missing_permission_and_refuses_nothing() -> None:
    who = principal(statement(actions=("dynamodb:PutItem",)))
    policies = PolicySet()
    policies.add(who)
    enforcer = Enforcer(policies, refuse=False)
    body = {
        "TransactItems": [
            {"Delete": {"TableName": "points", "Key": {}}},
            {"Update": {"TableName": "points", "Key": {}}},
        ]
    }
    assert enforcer.check(signed(who.access_key_id, "dynamodb", "DynamoDB_20120810.TransactWriteItems", body)) is None
    assert [d.action for d in enforcer.recent_denials(5)] == ["dynamodb:DeleteItem", "dynamodb:UpdateItem"]


def test_remembered_verdicts_answer_as_evaluation_and_a_new_policy_set_forgets_them() -> None:
    def enforcer_for(*statements: Statement) -> tuple[Enforcer, Principal]:
        who = principal(*statements)
        policies = PolicySet()
        policies.add(who)
        return Enforcer(policies), who

    enforcer, who = enforcer_for(
        statement(actions=("dynamodb:*Item",)), statement(effect="Deny", actions=("dynamodb:DeleteItem",))
    )
    bodies = {
        "GetItem": {"TableName": "points", "Key": {}},
        "DeleteItem": {"TableName": "points", "Key": {}},
        "Query": {"TableName": "points", "IndexName": "by-day"},
        "TransactWriteItems": {
            "TransactItems": [{"Put": {"TableName": "points"}}, {"Delete": {"TableName": "points"}}]
        },
    }
    first: dict[str, Any] = {}
    for round_number in range(3):
        for operation, body in bodies.items():
            request = signed(who.access_key_id, "dynamodb", f"DynamoDB_20120810.{operation}", body)
            refusal = enforcer.check(request)
            answer = None if refusal is None else (refusal.status, refusal.body)
            fresh = [evaluate(who, need) for need in describe(request, "dynamodb", "us-east-1", ACCOUNT).authorizations]
            assert (answer is None) == all(v.allowed for v in fresh), operation
            assert first.setdefault(operation, answer) == answer, (operation, round_number)
    assert enforcer.report()["denied"] == 3 * 3  # DeleteItem, Query, the transaction's Delete
    assert [g["count"] for g in enforcer.report()["used_grants"]] == [3 * 2]  # GetItem, the transaction's Put
    # The same key with another policy: the remembered verdicts are not used.
    stricter, same_key = enforcer_for(statement(actions=("dynamodb:Query",), resources=(f"{TABLE}/index/*",)))
    enforcer.configure(stricter.policies)
    get = signed(same_key.access_key_id, "dynamodb", "DynamoDB_20120810.GetItem", bodies["GetItem"])
    query = signed(same_key.access_key_id, "dynamodb", "DynamoDB_20120810.Query", bodies["Query"])
    assert enforcer.check(get) is not None
    assert enforcer.check(query) is None


def test_a_function_is_not_given_another_functions_remembered_verdict() -> None:
    # The ingest function may delete; the watch function, asking the same thing next, may not.
    key, secret = function_credentials("stack", "Ingest")
    allowed = Principal(
        "Ingest",
        key,
        secret,
        f"arn:aws:sts::{ACCOUNT}:assumed-role/r/ingest",
        (statement(actions=("dynamodb:DeleteItem",)),),
    )
    key, secret = function_credentials("stack", "Watch")
    refused = Principal("Watch", key, secret, f"arn:aws:sts::{ACCOUNT}:assumed-role/r/watch", (statement(),))
    policies = PolicySet()
    policies.add(allowed)
    policies.add(refused)
    enforcer = Enforcer(policies)
    body = {"TableName": "points", "Key": {}}
    for _ in range(2):
        assert enforcer.check(signed(allowed.access_key_id, "dynamodb", "DynamoDB_20120810.DeleteItem", body)) is None
        refusal = enforcer.check(signed(refused.access_key_id, "dynamodb", "DynamoDB_20120810.DeleteItem", body))
        assert refusal is not None and refusal.status == 400 and b"AccessDenied" in refusal.body
