"""Cold-start cost: how long each function's handler module takes to import in a fresh interpreter.

The import is what a Lambda user waits for on a cold start (before the first request is served).
Measured side by side with `import boto3` alone, in the same run, since machines here are noisy.
Each probe imports the handler and then boto3, so a handler that defers boto3 (or the store) to its
first request is not credited for it: every function needs boto3 before it can do anything.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from bench.common import ROOT, template_functions, write_results

RUNS = 7
PROBE = "import time; t = time.perf_counter(); import {module}; import boto3; print(time.perf_counter() - t)"


def import_seconds(module: str, code_dir: str) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / code_dir),
        "PYTHONDONTWRITEBYTECODE": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "pointbridge",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "TABLE_NAME": "bench",
    }
    samples = []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(module=module)],
            env=env,
            cwd=ROOT / code_dir,
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> None:
    figures: dict[str, float | int] = {}
    boto3_s = import_seconds("boto3", ".")
    figures["boto3_import_ms"] = round(boto3_s * 1000, 2)
    ratios = []
    for logical_id, props in sorted(template_functions().items()):
        module = props["Handler"].rsplit(".", 1)[0]
        seconds = import_seconds(module, props.get("CodeUri", ".").rstrip("/") or ".")
        figures[f"{logical_id}_import_ms"] = round(seconds * 1000, 2)
        ratios.append(seconds / boto3_s)
    figures["max_import_vs_boto3"] = round(max(ratios), 3)
    figures["runs_per_median"] = RUNS
    write_results("coldstart", figures)


if __name__ == "__main__":
    main()
