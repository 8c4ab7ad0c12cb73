"""In a Lambda process the garbage collector is paused while a handler module imports, and resumed after.

`functions.handler_loaded()` (the last line of every handler module) resumes it; a handler module
that forgot it would leave a function collecting no cyclic garbage for its whole life.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pointbridge.sandbox.template import function_properties, load_template

ROOT = Path(__file__).resolve().parents[2]

# For each handler module: pause as `functions` does in Lambda, import it, report the collector.
PROBE = """
import gc, importlib, json, sys
import functions
first = (gc.isenabled(), gc.get_freeze_count() > 0)
states = {}
for module in sys.argv[1:]:
    gc.disable()
    functions._paused = True
    importlib.import_module(module)
    states[module] = gc.isenabled()
print(json.dumps({"paused_at_first_import": not first[0], "states": states}))
"""


def _handler_modules() -> list[str]:
    template = load_template(ROOT / "template.yaml")
    return sorted(
        function_properties(template, logical_id)["Handler"].rsplit(".", 1)[0]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    )


def _probe(env: dict[str, str], modules: list[str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_every_handler_module_resumes_the_collector_it_was_imported_without() -> None:
    modules = _handler_modules()
    assert len(modules) >= 13 and "functions.api.app" in modules
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "probe", "AWS_DEFAULT_REGION": "us-east-1", "TABLE_NAME": "t"}
    # Given a Lambda process: importing `functions` pauses the collector
    report = _probe(env, modules)
    assert report["paused_at_first_import"] is True
    # Then every handler module resumes it once imported
    assert report["states"] == dict.fromkeys(modules, True)


def test_outside_lambda_the_collector_is_left_alone() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_NAME"}
    out = subprocess.run(
        [sys.executable, "-c", "import gc, functions; print(gc.isenabled(), functions._paused)"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["True", "False"]
