"""IAM for handlers called in-process under mock_aws: they run as their function, with its policy only."""

from __future__ import annotations

import copy
import importlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pointbridge.sandbox.iam import ALLOW, Principal, Statement, function_credentials, template_functions
from pointbridge.sandbox.iam_inprocess import acting_as
from pointbridge.sandbox.template import function_properties
from shared.ledger.commands import Authorise, Earn
from tests.conftest import T0
from tests.integration.api.conftest import FakeContext
from tests.support import iam

if TYPE_CHECKING:
    from collections.abc import Callable

    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore

ACCOUNT = "123456789012"


def code(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_every_handler_in_the_template_runs_as_its_function() -> None:
    template = iam.template()
    for function in template_functions(template):
        module_name, _, attribute = str(function_properties(template, function)["Handler"]).rpartition(".")
        handler = getattr(importlib.import_module(module_name), attribute)
        assert handler.iam_function == function


def test_the_policy_follows_the_resources_the_test_wired_the_function_to(store: DynamoLedgerStore) -> None:
    # Given the table the tests' environment names (TABLE_NAME=points-test)
    declared = [s for s in iam.principal("HoldLapseFunction").statements if s.declared]
    # Then the function's policy is on that table (and its indexes), as the template's Ref makes it on AWS
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/points-test"
    resources = [r for s in declared for r in s.resources if r.startswith("arn:aws:dynamodb:")]
    assert table in resources and all(r == table or r.startswith(f"{table}/index/") for r in resources)
    # And what no environment names has the template's own name for the stage
    assert iam.template_name("FilesBucket") == f"pointbridge-test-files-{ACCOUNT}"


def test_a_function_gets_aws_refusals_and_the_tests_own_calls_do_not(
    store: DynamoLedgerStore, expect_iam_denials: list[bool]
) -> None:
    # Given one resource of each service and a function allowed none of them
    sqs, s3, ssm, events = boto3.client("sqs"), boto3.client("s3"), boto3.client("ssm"), boto3.client("events")
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    s3.create_bucket(Bucket="bkt")
    ssm.put_parameter(Name="/p", Value="v", Type="String")
    key, secret = function_credentials("test", "Nobody")
    nobody = Principal("Nobody", key, secret, f"arn:aws:sts::{ACCOUNT}:assumed-role/r/nobody", ())
    calls: dict[str, Callable[[], Any]] = {
        "dynamodb": lambda: store.table.client.get_item(
            TableName="points-test", Key={"PK": {"S": "a"}, "SK": {"S": "b"}}
        ),
        "sqs": lambda: sqs.send_message(QueueUrl=queue, MessageBody="x"),
        "s3": lambda: s3.put_object(Bucket="bkt", Key="k", Body=b"x"),
        "ssm": lambda: ssm.get_parameter(Name="/p"),
        "events": lambda: events.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}]),
    }
    # When it calls them, through clients built before it ran
    with acting_as(nobody):
        refused = {service: code(call) for service, call in calls.items()}
    # Then each service refuses as it does on AWS
    assert refused == {
        "dynamodb": ("AccessDeniedException", 400),
        "sqs": ("AccessDenied", 403),
        "s3": ("AccessDenied", 403),
        "ssm": ("AccessDeniedException", 400),
        "events": ("AccessDeniedException", 400),
    }
    # And the same clients, outside the function, sign as the tests and are not checked
    for call in calls.values():
        call()


def test_a_statement_lets_through_exactly_what_it_grants(
    store: DynamoLedgerStore, expect_iam_denials: list[bool]
) -> None:
    key, secret = function_credentials("test", "Reader")
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/points-test"
    grant = Statement("Reader.Policies[0].Statement[0]", ALLOW, ("dynamodb:GetItem",), (table,))
    reader = Principal("Reader", key, secret, f"arn:aws:sts::{ACCOUNT}:assumed-role/r/reader", (grant,))
    item = {"PK": {"S": "a"}, "SK": {"S": "b"}}
    with acting_as(reader):
        assert "Item" not in store.table.client.get_item(TableName="points-test", Key=item)
        error, status = code(lambda: store.table.client.put_item(TableName="points-test", Item=item))
    assert (error, status) == ("AccessDeniedException", 400)


def test_without_delete_item_the_hold_lapse_handler_cannot_release_a_hold(
    ledger: Ledger, store: DynamoLedgerStore, services: Services, expect_iam_denials: list[bool]
) -> None:
    from functions.holds import app

    # Given a hold that lapsed, and HoldLapseFunction's policy from a copy of the template without DeleteItem
    earned = T0 - timedelta(days=1)
    ledger.earn(
        Earn(program="demo", member="m1", points=1000, source="s", external_id="o", reason="r", event_time=earned),
        at=earned,
    )
    hold = Authorise(
        program="demo",
        member="m1",
        points=70,
        source="web",
        external_id="h-1",
        reason="checkout",
        lapses_at=T0 + timedelta(minutes=1),
    )
    ledger.authorise(hold, at=T0)
    services.programs.register_holds("demo")
    template = copy.deepcopy(iam.template())
    statement = template["Resources"]["HoldLapseFunction"]["Properties"]["Policies"][0]["Statement"][0]
    statement["Action"].remove("dynamodb:DeleteItem")
    # When the handler runs as that function
    event = {"scheduled_time": (T0 + timedelta(minutes=10)).isoformat(), "simulate": True}
    with acting_as(iam.principal("HoldLapseFunction", tpl=template)), pytest.raises(ClientError) as refused:
        unbound = app.handler.__wrapped__  # type: ignore[attr-defined]
        unbound(event, FakeContext())
    # Then the release's transaction is refused for the delete, and the points stay held
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:DeleteItem" in refused.value.response["Error"]["Message"]
    account = store.get_account("demo", "m1")
    assert account is not None and (account.available, account.held) == (930, 70)
    # And the handler as bound, with the template's own policy, releases it
    assert app.handler(event, FakeContext())["released"] == 1  # type: ignore[arg-type]
