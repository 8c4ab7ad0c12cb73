from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from pointbridge.sandbox import moto_speedups
from shared.infra.aws import reset_clients
from shared.infra.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

# The tests' mock_aws runs moto with the sandbox's speedups, so both answer alike.
moto_speedups.install()


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
