"""The ingest function's idea of the last delivery is the queue's (template.yaml)."""

from __future__ import annotations

from pathlib import Path

from cfnlint.decode import decode

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_the_functions_last_delivery_is_the_queues_max_receive_count() -> None:
    template, _ = decode(str(TEMPLATE))
    assert template is not None
    resources = template["Resources"]
    redrive = resources["IngestQueue"]["Properties"]["RedrivePolicy"]
    variables = resources["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert int(variables["INGEST_MAX_RECEIVES"]) == int(redrive["maxReceiveCount"])
