"""Create the template's DynamoDB table under moto's mock_aws, from template.yaml itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


def table_definition(logical_id: str = "PointsTable") -> dict[str, Any]:
    template, problems = decode_str(TEMPLATE.read_text())
    assert not problems, problems
    props = json.loads(json.dumps(template["Resources"][logical_id]["Properties"]))
    return {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "GlobalSecondaryIndexes": props.get("GlobalSecondaryIndexes", []),
        "BillingMode": props["BillingMode"],
        "StreamSpecification": {"StreamEnabled": True, **props["StreamSpecification"]},
    }


def create_table(client: Any, name: str) -> str:
    client.create_table(TableName=name, **table_definition())
    return name
