"""Cold-start cost: how long each function's handler module takes to import in a fresh interpreter.

The import is what a Lambda user waits for on a cold start (before the first request is served).
Each function's code is built as `sam build` builds it (the Makefile's build-<Function> rule, into a
scratch folder): the code folders with their bytecode. Lambda's /var/task is read-only, so nothing
is written back here either; the same artifact without its __pycache__ folders is measured too, as
the build shipped it before it compiled (each module compiled at every cold start).
Measured side by side with `import boto3` alone, the three alternating for each function, since
machines here are noisy: each function's ratio is to the boto3 imports taken between its own.
Each probe imports the handler and then boto3, so a handler that defers boto3 (or the store) to its
first request is not credited for it: every function needs boto3 before it can do anything.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, template_functions, write_results

RUNS = 7
PROBE = "import time; t = time.perf_counter(); import {module}; import boto3; print(time.perf_counter() - t)"


def import_seconds(module: str, code_dir: Path) -> float:
    """One fresh interpreter's import of `module` (then boto3) from `code_dir`, in seconds."""
    env = {
        **os.environ,
        # Lambda names the function in every function's environment (`functions` reads it).
        "AWS_LAMBDA_FUNCTION_NAME": "pointbridge-coldstart",
        "PYTHONPATH": str(code_dir),
        # Any non-empty value: Lambda's code folder is read-only, no bytecode is cached there.
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "pointbridge",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "TABLE_NAME": "bench",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        env=env,
        cwd=code_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def build(logical_id: str, into: Path) -> tuple[Path, Path]:
    """The function's artifact as `sam build` makes it, and a copy of it without bytecode."""
    shipped = into / logical_id
    shipped.mkdir()
    subprocess.run(
        ["make", "--no-print-directory", f"build-{logical_id}", f"ARTIFACTS_DIR={shipped}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    source_only = into / f"{logical_id}-source"
    shutil.copytree(shipped, source_only, ignore=shutil.ignore_patterns("__pycache__"))
    return shipped, source_only


def main() -> None:
    figures: dict[str, float | int] = {}
    boto3_samples: list[float] = []
    ratios, source_ratios = [], []
    with tempfile.TemporaryDirectory(prefix="pointbridge-coldstart-") as scratch:
        for logical_id, props in sorted(template_functions().items()):
            module = props["Handler"].rsplit(".", 1)[0]
            shipped, source_only = build(logical_id, Path(scratch))
            # boto3 alone and the handler alternate, so a busy moment of the machine weighs on both.
            baseline, handler, uncompiled = [], [], []
            for _ in range(RUNS):
                baseline.append(import_seconds("boto3", Path(scratch)))
                handler.append(import_seconds(module, shipped))
                uncompiled.append(import_seconds(module, source_only))
            boto3_median = statistics.median(baseline)
            seconds = statistics.median(handler)
            figures[f"{logical_id}_import_ms"] = round(seconds * 1000, 2)
            figures[f"{logical_id}_import_ms_without_bytecode"] = round(statistics.median(uncompiled) * 1000, 2)
            ratios.append(seconds / boto3_median)
            source_ratios.append(statistics.median(uncompiled) / boto3_median)
            boto3_samples += baseline
    figures["boto3_import_ms"] = round(statistics.median(boto3_samples) * 1000, 2)
    figures["max_import_vs_boto3"] = round(max(ratios), 3)
    figures["max_import_vs_boto3_without_bytecode"] = round(max(source_ratios), 3)
    figures["runs_per_median"] = RUNS
    write_results("coldstart", figures)


if __name__ == "__main__":
    main()
