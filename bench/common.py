"""Helpers shared by the benchmarks: where results go, and the template's functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pointbridge.sandbox.template import function_properties, load_template

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# What the benchmarks' sandbox functions print goes here, not between the figures.
FUNCTION_LOGS = ROOT / ".pointbridge" / "bench-logs"
TEMPLATE = ROOT / "template.yaml"


def write_results(name: str, figures: dict[str, float | int]) -> Path:
    """Print the figures and write them as a flat JSON object to bench/results/NAME.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    width = max(len(k) for k in figures)
    for key, value in sorted(figures.items()):
        print(f"  {key:<{width}}  {value:,.4g}" if isinstance(value, float) else f"  {key:<{width}}  {value:,}")
    print(f"  -> {path.relative_to(ROOT)}")
    return path


def template_functions() -> dict[str, dict[str, Any]]:
    """Logical id -> properties (with Globals.Function merged) of every function in template.yaml."""
    template = load_template(TEMPLATE)
    return {
        logical_id: function_properties(template, logical_id)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
