from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from shared.ledger.ledger import Ledger
from shared.ledger.store import DynamoStore, ProgramRepository
from shared.program.config import ProgramConfig
from tests.conftest import T0
from tests.support.aws import create_table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStore]:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, "points-test")
        monkeypatch.setenv("TABLE_NAME", "points-test")
        yield DynamoStore("points-test", client)


@pytest.fixture
def programs(store: DynamoStore) -> ProgramRepository:
    repo = ProgramRepository(store)
    repo.publish(ProgramConfig(program="demo", name="Demo rewards"))
    return repo


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(store: DynamoStore, programs: ProgramRepository, clock: Clock) -> Ledger:
    return Ledger(store, programs, clock=clock, sleep=lambda _: None)
