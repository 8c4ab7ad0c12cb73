"""The identity hash key is the stack's alone and refused when missing in a function; configuration
errors reach the caller as a fixed sentence, their detail only in the log."""

from __future__ import annotations

import json

import pytest

from functions import problems
from integrations.sources import parse_sources
from shared.errors import ChannelUnavailableError, InvalidInputError, ServiceMisconfiguredError
from shared.infra.settings import LOCAL_IDENTITY_KEY, Settings
from tests.integration.channel_fixtures import SHOP, SHOP_SECRET, SOURCES


def test_a_function_without_the_identity_key_is_refused_and_local_code_gets_the_local_key() -> None:
    with pytest.raises(ServiceMisconfiguredError) as refused:
        _ = Settings.model_validate({"AWS_LAMBDA_FUNCTION_NAME": "pointbridge-prod-api"}).identity_hash_key
    assert refused.value.status == 503 and refused.value.internal
    assert Settings.model_validate({}).identity_hash_key == LOCAL_IDENTITY_KEY
    given = {"AWS_LAMBDA_FUNCTION_NAME": "f", "IDENTITY_HASH_KEY": "k"}
    assert Settings.model_validate(given).identity_hash_key == "k"


def test_no_source_brings_its_own_identity_key() -> None:
    own = json.loads(json.dumps(SOURCES))
    own["shopify"][SHOP]["identity_key"] = "the-shops-own-key"
    with pytest.raises(ServiceMisconfiguredError) as refused:
        parse_sources(json.dumps(own), "stack-key")
    assert "identity_key is the stack's" in refused.value.detail and "the-shops-own-key" not in refused.value.detail
    sources = parse_sources(json.dumps(SOURCES), "stack-key")
    assert {
        sources.shop(SHOP).identity_key.get_secret_value(),
        sources.till_config("default").identity_key.get_secret_value(),
    } == {"stack-key"}


def test_a_sources_document_that_does_not_validate_names_no_value() -> None:
    broken = json.loads(json.dumps(SOURCES))
    broken["shopify"][SHOP]["currency"] = {"program_currency": SHOP_SECRET}
    with pytest.raises(ServiceMisconfiguredError) as refused:
        parse_sources(json.dumps(broken), "stack-key-value")
    assert "currency" in refused.value.detail
    assert SHOP_SECRET not in refused.value.detail and "stack-key-value" not in refused.value.detail


@pytest.mark.parametrize(
    "error",
    [
        ServiceMisconfiguredError("no identity hash key: set IDENTITY_HASH_KEY_SECRET", secret="s3cr3t"),
        ChannelUnavailableError("Shopify shop 'x' cannot be used: webhook_secret shpss_abc", source="x"),
    ],
)
def test_an_internal_error_replies_a_fixed_sentence(error: ServiceMisconfiguredError) -> None:
    reply = problems.proxy_reply(error)
    body = json.loads(reply["body"])
    assert reply["statusCode"] == 503 and body["code"] == error.code
    assert body["detail"] == problems.INTERNAL_DETAIL and set(body) == {"type", "title", "status", "detail", "code"}


def test_a_callers_own_error_keeps_its_detail() -> None:
    reply = problems.proxy_reply(InvalidInputError("points must be positive", field="points"))
    assert json.loads(reply["body"])["detail"] == "points must be positive"
