"""How the functions are packaged, checked on the template and the Makefile without building.

What `sam build` actually produced is checked by tests/packaging (`make packaging`).
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pointbridge.sandbox.template import (
    SERVERLESS_FUNCTION,
    SERVERLESS_LAYER,
    TemplateError,
    function_code_dir,
    function_layers,
    function_properties,
    load_template,
)

ROOT = Path(__file__).resolve().parents[2]
LAYER_REQUIREMENTS = ROOT / "layers" / "dependencies" / "requirements.txt"
CODE_DIRS = ("functions", "integrations", "shared")


def _requirements(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return sorted(line for line in lines if line)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def _functions(template: dict[str, Any]) -> list[str]:
    return [k for k, r in template["Resources"].items() if r["Type"] == SERVERLESS_FUNCTION]


def _layers(template: dict[str, Any]) -> list[str]:
    return [k for k, r in template["Resources"].items() if r["Type"] == SERVERLESS_LAYER]


def test_the_layer_installs_exactly_the_pinned_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirements(LAYER_REQUIREMENTS) == sorted(project["dependencies"])
    assert not (ROOT / "requirements.txt").exists(), "one requirements file: the layer's"


def test_every_runtime_dependency_is_pinned_exactly() -> None:
    for requirement in _requirements(LAYER_REQUIREMENTS):
        assert "==" in requirement, requirement


def test_phone_numbers_come_from_the_lite_build_without_geodata() -> None:
    # The full `phonenumbers` adds 19 MB of geocoder and carrier data that nothing here reads.
    names = [r.split("==")[0].split("[")[0] for r in _requirements(LAYER_REQUIREMENTS)]
    assert "phonenumberslite" in names and "phonenumbers" not in names


def test_one_layer_built_for_the_functions_runtime_and_architecture(template: dict[str, Any]) -> None:
    # Given the template's only layer
    (layer_id,) = _layers(template)
    layer = template["Resources"][layer_id]
    props = layer["Properties"]

    # Then every function runs on what the layer was built for
    for logical_id in _functions(template):
        fn = function_properties(template, logical_id)
        (architecture,) = fn["Architectures"]
        assert layer["Metadata"]["BuildMethod"] == fn["Runtime"], logical_id
        assert layer["Metadata"]["BuildArchitecture"] == architecture, logical_id
        assert fn["Runtime"] in props["CompatibleRuntimes"], logical_id
        assert architecture in props["CompatibleArchitectures"], logical_id
    assert (ROOT / props["ContentUri"] / "requirements.txt").resolve() == LAYER_REQUIREMENTS


def test_every_function_uses_the_layer_and_is_built_by_the_makefile(template: dict[str, Any]) -> None:
    (layer_id,) = _layers(template)
    functions = _functions(template)
    assert len(functions) >= 12
    for logical_id in functions:
        # SAM reads BuildMethod from each function's Metadata (Globals carry properties only).
        assert template["Resources"][logical_id]["Metadata"] == {"BuildMethod": "makefile"}, logical_id
        assert function_layers(template, logical_id, ROOT) == [layer_id]
        assert function_code_dir(template, logical_id, ROOT) == ROOT


@pytest.mark.parametrize("logical_id", ["IngestFunction", "ApiFunction", "WatchFunction"])
def test_the_makefile_rule_copies_the_three_code_folders_only(logical_id: str, tmp_path: Path) -> None:
    # Given the folders and the Makefile, outside the worktree so nothing else is there to copy
    for name in (*CODE_DIRS, "tests", "docs"):
        (tmp_path / name / "pkg" / "__pycache__").mkdir(parents=True)
        (tmp_path / name / "pkg" / "mod.py").write_text("X = 1\n")
        (tmp_path / name / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"stale")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    artifact = tmp_path / "artifact"
    artifact.mkdir()

    # When SAM's makefile builder runs the function's target
    subprocess.run(
        ["make", "--no-print-directory", "--makefile", "Makefile", f"build-{logical_id}"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "ARTIFACTS_DIR": str(artifact)},
        check=True,
        capture_output=True,
    )

    # Then the artifact is the code folders with their bytecode, compiled there from what it ships
    # (the stale copy here is left behind) and used by Lambda without checking timestamps
    shipped = sorted(str(p.relative_to(artifact)) for p in artifact.rglob("*") if p.is_file())
    pyc = "pkg/__pycache__/mod.cpython-311.pyc"
    assert shipped == sorted(f"{name}/{path}" for name in CODE_DIRS for path in ("pkg/mod.py", pyc))
    for name in CODE_DIRS:
        header = (artifact / name / pyc).read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(header[4:8], "little") == 0b01
        assert header[8:16] == importlib.util.source_hash(b"X = 1\n")


def _broken(template: dict[str, Any], change: str) -> dict[str, Any]:
    broken = copy.deepcopy(template)
    resources = broken["Resources"]
    layers = broken["Globals"]["Function"]["Layers"]
    if change == "layer ref to a missing resource":
        layers[0] = {"Ref": "NoSuchLayer"}
    elif change == "layer ref to a table":
        layers[0] = {"Ref": "PointsTable"}
    elif change == "layer from another account":
        layers[0] = "arn:aws:lambda:us-east-1:123456789012:layer:other:1"
    elif change == "layer content missing":
        resources["DependenciesLayer"]["Properties"]["ContentUri"] = "layers/nowhere/"
    elif change == "layer without requirements":
        resources["DependenciesLayer"]["Properties"]["ContentUri"] = "docs/"
    else:
        raise AssertionError(change)
    return broken


@pytest.mark.parametrize(
    "change",
    [
        "layer ref to a missing resource",
        "layer ref to a table",
        "layer from another account",
        "layer content missing",
        "layer without requirements",
    ],
)
def test_a_broken_layer_reference_is_a_template_error(template: dict[str, Any], change: str) -> None:
    broken = _broken(template, change)
    with pytest.raises(TemplateError):
        function_layers(broken, "IngestFunction", ROOT)


def test_a_makefile_build_without_a_makefile_is_a_template_error(template: dict[str, Any], tmp_path: Path) -> None:
    # Given the code folders without the Makefile
    for name in CODE_DIRS:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))

    # Then
    with pytest.raises(TemplateError, match="Makefile"):
        function_code_dir(template, "IngestFunction", tmp_path)


def test_a_handler_whose_module_is_missing_is_a_template_error(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    broken["Resources"]["IngestFunction"]["Properties"]["Handler"] = "functions.nowhere.app.handler"
    with pytest.raises(TemplateError, match="functions.nowhere.app.handler"):
        function_code_dir(broken, "IngestFunction", ROOT)
