"""A fault layer at the store: what DynamoDB does and moto never does, raised on a real moto client.

Hooks on the boto3 client's own event system (botocore's `before-call` / `before-send` /
`needs-retry`), so every request still goes through botocore and moto; nothing of boto3 is faked.

- `conflict`: a TransactWriteItems refused as a whole with `TransactionCanceledException`, one of
  its items `TransactionConflict` (another transaction had the item), before it reaches moto.
- `throttle`: `ProvisionedThroughputExceededException` or `ThrottlingException` on any call, as
  botocore surfaces it once its own retries are spent.
- `lost_reply`: the write reaches moto and commits, then the connection drops before the reply
  (a `ConnectionClosedError` raised in `before-send`, after moto's stubber answered), so botocore's
  retry sends the same request again, exactly as a lost reply does against DynamoDB.

Faults are drawn from a seeded `random.Random`, so a seed replays the same faults in the same order
of requests; `counts` says how many of each were injected.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ConnectionClosedError

if TYPE_CHECKING:
    from botocore.model import OperationModel

WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
READS = frozenset({"GetItem", "Query", "BatchGetItem", "Scan"})


class LostReplyError(ConnectionClosedError):
    """The request committed; its reply never arrived."""


class FaultLayer:
    def __init__(self, client: Any, seed: int, rate: float = 0.04) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.rate = rate
        self.enabled = False
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._just_lost = False  # never lose the reply of a retry: the request must get through
        events = client.meta.events
        events.register("before-call.dynamodb", self._before_call, unique_id="reliability-faults-call")
        events.register("before-send.dynamodb", self._after_moto, unique_id="reliability-faults-send")
        events.register_first("needs-retry.dynamodb", self._retry_at_once, unique_id="reliability-faults-retry")

    @property
    def injected(self) -> int:
        return sum(self.counts.values())

    def _draw(self) -> float:
        with self._lock:
            return self.rng.random()

    def _before_call(self, model: OperationModel, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not self.enabled or model.name not in WRITES | READS:
            return None
        roll = self._draw()
        if model.name == "TransactWriteItems" and roll < self.rate / 2:
            self.counts["transaction_conflict"] += 1
            return _refusal(
                "TransactionCanceledException",
                "Transaction cancelled, please refer cancellation reasons for specific reasons"
                " [None, TransactionConflict]",
                CancellationReasons=[
                    {"Code": "None"},
                    {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
                ],
            )
        if self.rate / 2 <= roll < self.rate:
            if model.name in READS or roll < 0.75 * self.rate:
                self.counts["throughput_exceeded"] += 1
                return _refusal(
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded.",
                )
            self.counts["throttling"] += 1
            return _refusal("ThrottlingException", "Rate of requests exceeds the allowed throughput.")
        return None

    def _after_moto(self, request: Any, event_name: str, **_: Any) -> None:
        if not self.enabled or event_name.rsplit(".", 1)[-1] not in WRITES:
            return
        with self._lock:
            if self._just_lost:
                self._just_lost = False
                return
            lose = self.rng.random() < self.rate / 2
            self._just_lost = lose
        if lose:
            self.counts["lost_reply"] += 1
            raise LostReplyError(endpoint_url=request.url)

    @staticmethod
    def _retry_at_once(caught_exception: Exception | None = None, **_: Any) -> int | None:
        # botocore would sleep a back-off first; the test's time is simulated, so it retries now.
        return 0 if isinstance(caught_exception, LostReplyError) else None


def _refusal(code: str, message: str, **more: Any) -> tuple[AWSResponse, dict[str, Any]]:
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400, "RetryAttempts": 0},
        **more,
    }
    return AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", 400, HTTPHeaders(), None), parsed
