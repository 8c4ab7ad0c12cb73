"""`make bench`: run every benchmark module under bench/ (or those named) and print their figures."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(names: list[str]) -> int:
    here = Path(__file__).parent
    available = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    for name in names or available:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "main"):
            continue  # a helper module (bench/common.py), not a benchmark
        print(f"== bench/{name}.py", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
