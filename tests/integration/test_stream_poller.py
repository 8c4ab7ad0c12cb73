"""The sandbox's DynamoDB stream poller against moto's streams (mock_aws): what it keeps of the records it reads."""

from __future__ import annotations

import json
from typing import Any

import boto3
from moto import mock_aws

from pointbridge.sandbox.runtime import InvocationError
from pointbridge.sandbox.sources import StreamPoller, event_filter
from tests.support.moto_diff import stream_table

# mock_aws leaves the client's default endpoint for DynamoDB Streams unrouted; this one is routed.
STREAMS_ENDPOINT = "https://streams.dynamodb.us-east-1.amazonaws.com"


def test_a_given_up_batch_names_its_shard_and_records_the_filter_passed_over_leave_nothing_behind() -> None:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        stream_arn = stream_table(ddb)
        batches: list[list[dict[str, Any]]] = []
        given_up: list[dict[str, Any]] = []

        def failing_invoke(logical_id: str, event: Any, source: str, batch_size: int) -> Any:
            batches.append(event["Records"])
            raise InvocationError(logical_id, "Boom", "the handler failed")

        poller = StreamPoller(
            streams=boto3.client("dynamodbstreams", region_name="us-east-1", endpoint_url=STREAMS_ENDPOINT),
            function="Consumer",
            stream_arn=stream_arn,
            region="us-east-1",
            invoke=failing_invoke,
            max_retries=0,
            keep=event_filter(
                {"Filters": [{"Pattern": json.dumps({"dynamodb": {"NewImage": {"kind": {"S": ["keep"]}}}})}]}
            ),
            on_failure=given_up.append,
        )
        poller.position_at_latest()
        for i in range(6):
            ddb.put_item(TableName="t", Item={"pk": {"S": f"k{i}"}, "kind": {"S": "keep" if i % 2 else "drop"}})

        assert poller.poll_once()

        assert [[r["dynamodb"]["Keys"]["pk"]["S"] for r in batch] for batch in batches] == [["k1", "k3", "k5"]]
        (record,) = given_up
        info = record["DDBStreamBatchInfo"]
        assert info["shardId"].startswith("shardId-") and info["batchSize"] == 3
        # Past the batch, the poller holds nothing: not the batch's records, nor the ones the filter passed over.
        assert poller.pending == [] and poller._shard_of == {}  # noqa: SLF001 - the checkpoint's bookkeeping
