"""A sandbox killed outright leaves no function worker behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A process that starts a pool of two workers of a tiny handler, prints their ids and is then
# killed with SIGKILL, so nothing of its own can stop them.
PARENT = """
import json, os, signal, sys, tempfile
from pathlib import Path
from pointbridge.sandbox.runtime import FunctionPool, FunctionSpec

code = Path(tempfile.mkdtemp())
(code / "tiny.py").write_text("def handler(event, context):\\n    return {'ok': True}\\n")
spec = FunctionSpec(
    logical_id="Tiny", name="tiny", arn="arn:aws:lambda:us-east-1:123456789012:function:tiny",
    handler="tiny.handler", code_dir=str(code), environment={}, memory_mb=128, timeout_s=10,
)
pool = FunctionPool(spec, size=2)
assert pool.invoke({}) == {"ok": True}
print(json.dumps(pool.worker_pids()), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent, here init, reaps it).
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))


def test_workers_end_when_their_sandbox_is_killed() -> None:
    parent = subprocess.run(
        [sys.executable, "-c", PARENT], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    pids = json.loads(parent.stdout.strip().splitlines()[0])
    assert parent.returncode == -9
    assert len(pids) >= 1
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [pid for pid in pids if _alive(pid)]
    for pid in survivors:  # clean up before failing
        os.kill(pid, 9)
    assert survivors == []
