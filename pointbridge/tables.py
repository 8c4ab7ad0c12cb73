"""Create the template's points table under any name (tests, benchmarks), through the sandbox's provisioner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pointbridge.sandbox.provision import Provisioner
from pointbridge.sandbox.template import load_template

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


def create_table(client: Any, name: str, logical_id: str = "PointsTable", region: str = "us-east-1") -> str:
    template = load_template(TEMPLATE)
    template["Resources"][logical_id]["Properties"]["TableName"] = name
    provisioner = Provisioner(template, {"Stage": "test"}, region, client=lambda _service: client)
    return provisioner.ensure(logical_id).physical_id
