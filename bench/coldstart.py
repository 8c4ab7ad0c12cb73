"""Cold-start cost: how long each function's handler module takes to import in a fresh interpreter.

The import is what a Lambda user waits for on a cold start (before the first request is served).
Measured side by side with `import boto3` alone, the two alternating for each function, since machines
here are noisy: each function's ratio is to the boto3 imports taken between its own.
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
    """One fresh interpreter's import of `module` (then boto3), in seconds."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / code_dir),
        "PYTHONDONTWRITEBYTECODE": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "pointbridge",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "TABLE_NAME": "bench",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        env=env,
        cwd=ROOT / code_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    figures: dict[str, float | int] = {}
    boto3_samples: list[float] = []
    ratios = []
    for logical_id, props in sorted(template_functions().items()):
        module = props["Handler"].rsplit(".", 1)[0]
        code_dir = props.get("CodeUri", ".").rstrip("/") or "."
        # boto3 alone and the handler alternate, so a busy moment of the machine weighs on both.
        baseline, handler = [], []
        for _ in range(RUNS):
            baseline.append(import_seconds("boto3", "."))
            handler.append(import_seconds(module, code_dir))
        seconds = statistics.median(handler)
        figures[f"{logical_id}_import_ms"] = round(seconds * 1000, 2)
        ratios.append(seconds / statistics.median(baseline))
        boto3_samples += baseline
    figures["boto3_import_ms"] = round(statistics.median(boto3_samples) * 1000, 2)
    figures["max_import_vs_boto3"] = round(max(ratios), 3)
    figures["runs_per_median"] = RUNS
    write_results("coldstart", figures)


if __name__ == "__main__":
    main()
