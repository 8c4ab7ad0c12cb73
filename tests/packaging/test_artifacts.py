"""What `sam build` produced in .aws-sam/build: code-only function artifacts and one dependencies layer.

`make packaging` (part of `make test`) runs `sam build` and then these tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from pointbridge.sandbox.template import SERVERLESS_FUNCTION, SERVERLESS_LAYER, function_properties, load_template

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
CODE_DIRS = {"functions", "integrations", "shared"}
NOT_SHIPPED = {"tests", "bench", "docs", "pointbridge", "seeds", "layers", ".venv"}
# ELF e_machine of the machine code each Lambda architecture runs.
ELF_MACHINE = {"arm64": 183, "x86_64": 62}

TEMPLATE = load_template(ROOT / "template.yaml")
FUNCTIONS = sorted(k for k, r in TEMPLATE["Resources"].items() if r["Type"] == SERVERLESS_FUNCTION)
(LAYER,) = (k for k, r in TEMPLATE["Resources"].items() if r["Type"] == SERVERLESS_LAYER)


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    path = BUILD / "template.yaml"
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: run `make sam-build` (or `make packaging`)")
    return load_template(path)


def _source_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def _assert_bytecode_of_each_source(folder: Path) -> None:
    """Each module has its python3.11 bytecode, compiled from the shipped source and used unchecked:
    Lambda cannot write a cache, and the zip's timestamps must not make the bytecode look stale."""
    sources = [p for p in folder.rglob("*.py") if "__pycache__" not in p.parts]
    assert sources
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
        assert compiled.is_file(), f"{source.relative_to(folder)} has no bytecode"
        header = compiled.read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER, compiled
        assert int.from_bytes(header[4:8], "little") == 0b01, f"{compiled} is not an unchecked-hash pyc"
        assert header[8:16] == importlib.util.source_hash(source.read_bytes()), f"{compiled} is stale"
    orphans = [p for p in folder.rglob("*.pyc") if not (p.parent.parent / (p.name.split(".")[0] + ".py")).is_file()]
    assert not orphans, f"bytecode without its source: {orphans[:3]}"


def test_the_build_has_every_function_of_the_template_and_the_layer(built: dict[str, Any]) -> None:
    resources = built["Resources"]
    assert sorted(k for k, r in resources.items() if r["Type"] == SERVERLESS_FUNCTION) == FUNCTIONS
    assert resources[LAYER]["Properties"]["ContentUri"] == LAYER
    for logical_id in FUNCTIONS:
        props = function_properties(built, logical_id)
        assert props["CodeUri"] == logical_id
        assert props["Layers"] == [{"Ref": LAYER}]


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_a_function_ships_its_code_folders_only(built: dict[str, Any], logical_id: str) -> None:
    artifact = BUILD / logical_id
    top = {p.name for p in artifact.iterdir()}

    # Then only the three code folders, each as it is in the repository (not a stale build)
    assert top == CODE_DIRS
    assert not top & NOT_SHIPPED
    for name in CODE_DIRS:
        assert _source_files(artifact / name) == _source_files(ROOT / name), name
    _assert_bytecode_of_each_source(artifact)

    # And the handler's module is there
    handler = function_properties(TEMPLATE, logical_id)["Handler"]
    module = handler.rsplit(".", 1)[0]
    assert artifact.joinpath(*module.split(".")).with_suffix(".py").is_file(), handler


def _layer_dists(site: Path) -> dict[str, str]:
    """Normalised distribution name -> version, from the layer's dist-info folders."""
    dists = {}
    for info in site.glob("*.dist-info"):
        fields = dict(line.split(": ", 1) for line in (info / "METADATA").read_text().splitlines() if ": " in line)
        dists[fields["Name"].lower().replace("_", "-")] = fields["Version"]
    return dists


def test_the_layer_holds_the_pinned_dependencies_for_the_functions_architecture() -> None:
    site = BUILD / LAYER / "python"
    dists = _layer_dists(site)

    # Then every pin is installed at its version (extras and all)
    for line in (ROOT / "layers" / "dependencies" / "requirements.txt").read_text().splitlines():
        pin = line.split("#", 1)[0].strip()
        if pin:
            name, version = pin.split("==")
            assert dists.get(name.split("[")[0].lower()) == version, pin
    assert "phonenumbers" not in dists and not (site / "phonenumbers" / "geodata").exists()

    # And its modules carry their bytecode (`make sam-build` compiles them after SAM's builder)
    for package in ("pydantic", "aws_lambda_powertools"):
        _assert_bytecode_of_each_source(site / package)

    # And its compiled extensions run on the functions' architecture
    (architecture,) = {a for f in FUNCTIONS for a in function_properties(TEMPLATE, f)["Architectures"]}
    extensions = list(site.rglob("*.so"))
    assert extensions, "pydantic-core at least ships machine code"
    for extension in extensions:
        header = extension.read_bytes()[:20]
        assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == ELF_MACHINE[architecture]


# Imports the handler with sys.path = the artifact, then the layer's packages; prints where every
# loaded module came from.
PROBE = """
import importlib, json, sys
sys.path[:0] = sys.argv[1:3]
importlib.import_module(sys.argv[3])
print(json.dumps({n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}))
"""


def _layer_for_this_machine(layer_site: Path, into: Path) -> Path:
    """The layer's top-level packages, taken from this venv (the layer's are built for the functions'
    architecture): a package the handler needs but the layer lacks is then missing, as on Lambda."""
    venv_site = Path(sysconfig.get_paths()["purelib"])
    into.mkdir()
    for entry in layer_site.iterdir():
        if entry.name.endswith((".dist-info", ".data")) or entry.name in ("__pycache__", "requirements.txt"):
            continue
        installed = venv_site / entry.name
        assert installed.exists(), f"the layer ships {entry.name} but the venv the tests ran with has none"
        (into / entry.name).symlink_to(installed)
    return into


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_a_handler_imports_from_its_artifact_and_the_layer_alone(logical_id: str, tmp_path: Path) -> None:
    # Given the function's artifact and the layer's packages, nothing else
    artifact = BUILD / logical_id
    layer = _layer_for_this_machine(BUILD / LAYER / "python", tmp_path / "python")
    module = function_properties(TEMPLATE, logical_id)["Handler"].rsplit(".", 1)[0]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "pointbridge",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "TABLE_NAME": "packaging",
        "PYTHONDONTWRITEBYTECODE": "1",  # the artifact stays as built
    }

    # When the handler is imported without site-packages (-S: no venv, no editable repository root)
    out = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, str(artifact), str(layer), module],
        cwd=artifact,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    # Then it imports, and every module came from the artifact, the layer or the standard library
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name, file in loaded.items():
        if file is not None:  # None: built in
            path = Path(file)
            assert any(path.is_relative_to(p) for p in (artifact, layer, stdlib)), f"{name}: {file}"
    assert Path(loaded[module]).is_relative_to(artifact)
