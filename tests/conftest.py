from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from pointbridge.sandbox import iam_inprocess, moto_speedups
from shared.infra.aws import reset_clients
from shared.infra.settings import get_settings
from tests.support import iam

if TYPE_CHECKING:
    from collections.abc import Iterator

# The tests' mock_aws runs moto with the sandbox's speedups, so both answer alike.
moto_speedups.install()
# Handlers called in-process run as their function and get only what its policy in template.yaml
# allows, checked by the sandbox's IAM gate ahead of moto (tests/support/iam.py). The tests' own
# calls (setup, checks) sign as "testing" and are not checked.
iam.bind_handlers()


@pytest.fixture
def expect_iam_denials() -> list[bool]:
    """A test that means to be refused by IAM asks for this; any other test fails on a refusal."""
    return [True]


@pytest.fixture(autouse=True)
def no_iam_denials(request: pytest.FixtureRequest) -> Iterator[None]:
    """A refusal fails the test even when the code under test caught the error and carried on."""
    before = iam_inprocess.enforcer.denied
    yield
    if "expect_iam_denials" in request.fixturenames:
        return
    denials = iam_inprocess.enforcer.recent_denials(iam_inprocess.enforcer.denied - before)
    assert not denials, "IAM refused in-process calls:\n" + "\n".join(d.message for d in denials)


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and powertools settings for every test; nothing may reach real AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "pointbridge-test",
        "POWERTOOLS_METRICS_NAMESPACE": "PointbridgeTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset_clients()
    get_settings.cache_clear()
    yield
    reset_clients()
    get_settings.cache_clear()


T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
