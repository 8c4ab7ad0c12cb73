"""The table's stream as the watch function receives it, built from the entries in a table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeSerializer

if TYPE_CHECKING:
    from shared.infra.table import Table


class LambdaContext:
    function_name, memory_limit_in_mb, invoked_function_arn, aws_request_id = "watch", 128, "arn", "req"


def entry_records(table: Table) -> list[dict[str, Any]]:
    """The INSERT records DynamoDB Streams delivers for every entry item in the table, in scan order."""
    serializer = TypeSerializer()
    records: list[dict[str, Any]] = []
    for item in table.scan():
        if item.get("type") != "entry":
            continue
        image = {k: serializer.serialize(v) for k, v in item.items()}
        keys = {"PK": image["PK"], "SK": image["SK"]}
        records.append(
            {
                "eventID": item["PK"],
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "dynamodb": {"Keys": keys, "NewImage": image, "SequenceNumber": str(len(records) + 1)},
            }
        )
    return records


def deliver(records: list[dict[str, Any]]) -> None:
    """Hand one batch to the watch function; every record must succeed."""
    from functions.watch.app import handler

    reply = handler({"Records": records}, LambdaContext())  # type: ignore[arg-type]
    assert reply["batchItemFailures"] == []
