"""What each function ships: `sam build`'s artifacts, unzipped and zipped as Lambda receives them.

Runs `make sam-build` (timed: SAM's own virtualenv is installed first if missing, untimed) and
measures .aws-sam/build: every function's code artifact and the dependencies layer, in MB (10^6
bytes). Zipped sizes are deflated in memory as `sam package` zips them.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from typing import TYPE_CHECKING

from bench.common import ROOT, TEMPLATE, template_functions, write_results
from pointbridge.sandbox.template import SERVERLESS_LAYER, load_template

if TYPE_CHECKING:
    from pathlib import Path

BUILD = ROOT / ".aws-sam" / "build"
MB = 1_000_000


def _make(target: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(["make", "--no-print-directory", target], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"make {target} failed")
    return time.perf_counter() - started


def _sizes(folder: Path) -> tuple[float, float]:
    """Unzipped and zipped size of a folder, in MB."""
    raw = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                raw += path.stat().st_size
                archive.write(path, path.relative_to(folder))
    return raw / MB, buffer.getbuffer().nbytes / MB


def main() -> None:
    _make("install-sam")
    figures: dict[str, float | int] = {"sam_build_s": round(_make("sam-build"), 1)}
    total_zip = 0.0
    for logical_id in sorted(template_functions()):
        raw, zipped = _sizes(BUILD / logical_id)
        figures[f"{logical_id}_code_mb"] = round(raw, 3)
        figures[f"{logical_id}_code_zip_mb"] = round(zipped, 3)
        total_zip += zipped
    resources = load_template(TEMPLATE)["Resources"]
    (layer_id,) = (k for k, r in resources.items() if r["Type"] == SERVERLESS_LAYER)
    raw, zipped = _sizes(BUILD / layer_id)
    figures["layer_mb"] = round(raw, 2)
    figures["layer_zip_mb"] = round(zipped, 2)
    # What a deployment uploads: every function's code and the layer once.
    figures["deploy_zip_mb"] = round(total_zip + zipped, 2)
    write_results("package", figures)


if __name__ == "__main__":
    main()
