"""The composition root for tests: one `Services` on a table the test made, with the test's clock.

`use()` makes it what every handler and route gets, so in-process handlers see the same table and
clock as the test; `reset()` afterwards, so nothing leaks into the next test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.services import Services, use
from shared.infra.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from pointbridge.sandbox import Sandbox


def table_services(table_name: str, client: Any, clock: Callable[[], datetime] | None = None, **extra: Any) -> Services:
    """Services on a moto table: no back-off sleeps, config read afresh every time (not installed)."""
    options: dict[str, Any] = {"sleep": lambda _: None, "config_cache_seconds": 0, **extra}
    if clock is not None:
        options["clock"] = clock
    return Services(table_name=table_name, client=client, **options)


def services_on(table_name: str, client: Any, clock: Callable[[], datetime] | None = None, **extra: Any) -> Services:
    """`table_services`, installed as current (the caller `reset()`s afterwards)."""
    return use(table_services(table_name, client, clock, **extra))


def sandbox_services(sb: Sandbox, **extra: Any) -> Services:
    """Services on a running sandbox's table (not installed: the sandbox's functions have their own),
    sealing entries with the sandbox's chain key, as its functions do."""
    secret = sb.client("secretsmanager").get_secret_value(SecretId=sb.resource("ChainHashKey"))["SecretString"]
    settings = Settings.from_environment().model_copy(update={"chain_hash_key_text": str(secret)})
    return Services(settings, table_name=sb.resource("PointsTable"), client=sb.client("dynamodb"), **extra)
