"""The deployed functions get exactly the runtime dependencies the tests ran with."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _requirements(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return sorted(line for line in lines if line)


def test_sam_build_requirements_match_the_pinned_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirements(ROOT / "requirements.txt") == sorted(project["dependencies"])


def test_every_runtime_dependency_is_pinned_exactly() -> None:
    for requirement in _requirements(ROOT / "requirements.txt"):
        assert "==" in requirement, requirement
