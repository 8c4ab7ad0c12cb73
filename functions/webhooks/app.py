"""HTTP receiver for webhooks and app events: verify, normalise, queue, answer fast.

The adapters check the signature (and the replay window) before they read the body, and they are
pure and quick, so events are parsed here and queued already normalised: ingest never sees a raw
payload, and a bad signature or malformed body is refused before anything is queued. Sources and
their secrets come from the SOURCES configuration (integrations.sources). App events come from the
brand's app backend through the API's authorizer, with its channel key: the permission table's
row for `POST /app-events` says which keys may send them.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.metrics import MetricUnit

from functions import handler_loaded, problems
from functions.permissions import PERMISSIONS
from functions.services import services
from functions.webhooks.limits import oversized
from integrations.app_events import parse_app_event
from integrations.shopify import parse_shopify_webhook
from integrations.square import parse_square_webhook
from shared.access import permissions
from shared.access.keys import Principal
from shared.errors import ForbiddenError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from shared.earning.core import Event
    from shared.errors import PointbridgeError

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()


def _now() -> datetime:
    return datetime.now(UTC)


def _body() -> bytes:
    # The bytes as sent: signatures are over them, and a body that is not UTF-8 is the adapter's to
    # refuse (powertools' decoded_body would decode it as text first, and fail with a 502).
    event = app.current_event
    raw = event.body or ""
    return base64.b64decode(raw) if event.is_base64_encoded else raw.encode("utf-8", "surrogatepass")


def _headers() -> dict[str, str]:
    return dict(app.current_event.headers or {})


def _accepted(events: Sequence[Event]) -> dict[str, Any]:
    queued = services().ingest_queue.send(events)
    metrics.add_metric(name="EventsQueued", unit=MetricUnit.Count, value=queued)
    return {"queued": queued}


@app.post("/webhooks/shopify/<shop>")
def shopify(shop: str) -> dict[str, Any]:
    return _accepted(parse_shopify_webhook(_body(), _headers(), services().sources.shop(shop), now=_now()))


@app.post("/webhooks/square/<merchant>")
def square(merchant: str) -> dict[str, Any]:
    return _accepted(parse_square_webhook(_body(), _headers(), services().sources.merchant(merchant), now=_now()))


@app.post("/app-events")
def app_events() -> dict[str, Any]:
    # Behind the API's authorizer: only the app backend's channel key, for the app's program. A key
    # of another role is refused before the app's channel is read (nothing about it is revealed).
    rule, who = PERMISSIONS[("POST", "/app-events")], _principal()
    if not permissions.admits(rule, who):
        raise ForbiddenError(f"a {permissions.role_of(who)} key may not send app events")
    config = services().sources.app_config()
    permissions.authorize(rule, who, permissions.Target(program=config.program))
    return _accepted([parse_app_event(_body(), config, now=_now())])


def _principal() -> Principal:
    authorizer = app.current_event.request_context.authorizer
    context = authorizer.raw_event if authorizer else {}
    if not context or "kind" not in context:
        raise ForbiddenError("app events need the app backend's key (x-api-key)")
    return Principal.from_context(dict(context))


def _refused(error: PointbridgeError) -> None:
    logger.info("refused", extra={"code": error.code})
    metrics.add_metric(name=f"Refused_{error.code}", unit=MetricUnit.Count, value=1)


problems.install(app, observe=_refused)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    too_large = oversized(event)
    if too_large is not None:
        _refused(too_large)
        return problems.proxy_reply(too_large)
    return app.resolve(event, context)


handler_loaded()
