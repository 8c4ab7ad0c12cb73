from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from functions.services import reset
from shared.infra.settings import get_settings
from shared.program.config import ProgramConfig
from tests.conftest import T0
from tests.support.aws import create_table
from tests.support.iam import template, template_name
from tests.support.outbound import capture
from tests.support.services import services_on

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from shared.program.store import ProgramRepository

TABLE = "points-test"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Iterator[Services]:
    """Everything on a fresh moto table, with the test's clock, installed for in-process handlers."""
    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, TABLE)
        monkeypatch.setenv("TABLE_NAME", TABLE)
        # The bus the template names for the test stage: the functions' roles (enforced in-process) name it
        monkeypatch.setenv("NOTIFICATIONS_BUS", template_name("NotificationsBus"))
        get_settings.cache_clear()
        # The bus as the template makes it, and a subscriber: whatever a test's code publishes must
        # match the committed schemas (docs/events/).
        published = capture(boto3.client("events"), boto3.client("sqs"), template_name("NotificationsBus"))
        yield services_on(TABLE, client, clock)
        reset()
        published.drain()


@pytest.fixture
def draw_key(services: Services, monkeypatch: pytest.MonkeyPatch) -> str:
    """The draws' signing key, made in moto as template.yaml declares it, and given to the services and
    to the API function's environment (its role's kms:Sign names the key's ARN)."""
    spec = template()["Resources"]["DrawSigningKey"]["Properties"]
    made = boto3.client("kms").create_key(KeySpec=spec["KeySpec"], KeyUsage=spec["KeyUsage"])
    arn = str(made["KeyMetadata"]["Arn"])
    monkeypatch.setenv("DRAW_SIGNING_KEY", arn)
    services.settings = services.settings.model_copy(update={"draw_signing_key": arn})
    return arn


@pytest.fixture
def store(services: Services) -> DynamoLedgerStore:
    return services.ledger_store


@pytest.fixture
def programs(services: Services) -> ProgramRepository:
    services.programs.publish(ProgramConfig(program="demo", name="Demo rewards"))
    return services.programs


@pytest.fixture
def ledger(services: Services, programs: ProgramRepository) -> Ledger:
    return services.ledger
