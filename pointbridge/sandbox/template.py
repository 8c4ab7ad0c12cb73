"""Reading template.yaml: CloudFormation-aware loading, intrinsic functions, SAM Globals.

The sandbox has no second list of resources: everything it creates or runs comes from here.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

ACCOUNT_ID = "123456789012"  # moto's default account
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_API = "AWS::Serverless::Api"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"

_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


class TemplateError(Exception):
    """The template uses something the sandbox cannot resolve."""


class _NoValue:
    """`Ref: AWS::NoValue`: the property (or list element) it stands for is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def parameter_values(template: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Each parameter's value: the override if given, else its Default (a parameter without one
    must be given). Numbers stay numbers, as the properties that take them expect."""
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        if name in overrides:
            value = overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no Default; pass it to the sandbox")
        if spec.get("Type") == "Number":
            number = float(value)
            value = int(number) if number.is_integer() else number
        values[name] = value
    unknown = set(overrides) - set(template.get("Parameters", {}))
    if unknown:
        raise TemplateError(f"the template has no parameters {sorted(unknown)}")
    return values


def _plain(value: Any) -> Any:
    """cfn-lint's nodes carry line marks; plain dicts/lists are easier to copy and compare."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def load_template(path: Path) -> dict[str, Any]:
    from cfnlint.decode.cfn_yaml import loads

    loaded: dict[str, Any] = _plain(loads(path.read_text(encoding="utf-8")))
    return loaded


def _merge(base: Any, override: Any) -> Any:
    """SAM's Globals rule: maps merge key by key, anything else is replaced by the function's value."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return copy.deepcopy(override)


def function_properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    globals_fn = template.get("Globals", {}).get("Function", {})
    props = template["Resources"][logical_id].get("Properties", {})
    merged: dict[str, Any] = _merge(copy.deepcopy(globals_fn), props)
    return merged


def _build_method(resource: dict[str, Any]) -> str | None:
    method = resource.get("Metadata", {}).get("BuildMethod")
    return str(method) if method is not None else None


def function_code_dir(template: dict[str, Any], logical_id: str, base_dir: Path) -> Path:
    """The folder `sam build` builds the function from; the sandbox runs its handler from there.

    With `BuildMethod: makefile` SAM runs the folder's Makefile (target build-<LogicalId>), which
    decides what ships; the sandbox imports from the folder itself, so it checks what it can: the
    folder, its Makefile and the handler's module are there.
    """
    props = function_properties(template, logical_id)
    code_uri = props.get("CodeUri", ".")
    if not isinstance(code_uri, str):
        raise TemplateError(f"{logical_id}: CodeUri {code_uri!r} is not a local folder")
    code_dir = (base_dir / code_uri).resolve()
    if not code_dir.is_dir():
        raise TemplateError(f"{logical_id}: CodeUri {code_uri!r} is not a folder next to the template")
    method = _build_method(template["Resources"][logical_id])
    if method == "makefile" and not (code_dir / "Makefile").is_file():
        raise TemplateError(f"{logical_id}: BuildMethod makefile needs a Makefile in {code_uri!r}")
    handler = props.get("Handler")
    if not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"{logical_id}: Handler {handler!r} is not module.function")
    module = code_dir.joinpath(*handler.rsplit(".", 1)[0].split("."))
    if not module.with_suffix(".py").is_file() and not (module / "__init__.py").is_file():
        raise TemplateError(f"{logical_id}: the module of Handler {handler!r} is not in {code_uri!r}")
    return code_dir


def function_layers(template: dict[str, Any], logical_id: str, base_dir: Path) -> list[str]:
    """Logical ids of the function's layers, each a layer of this template whose content is here.

    The sandbox's virtualenv already holds what the layers install, so it only checks them: a layer
    it cannot find would be missing from the deployed function too.
    """
    resources = template["Resources"]
    layers: list[str] = []
    for entry in function_properties(template, logical_id).get("Layers", []):
        if not (isinstance(entry, dict) and set(entry) == {"Ref"}):
            raise TemplateError(f"{logical_id}: layer {entry!r} is not a Ref to a layer of this template")
        layer_id = str(entry["Ref"])
        layer = resources.get(layer_id)
        if layer is None or layer.get("Type") != SERVERLESS_LAYER:
            raise TemplateError(f"{logical_id}: layer {layer_id!r} is not an {SERVERLESS_LAYER} of this template")
        content_uri = layer.get("Properties", {}).get("ContentUri")
        if not isinstance(content_uri, str) or not (base_dir / content_uri).is_dir():
            raise TemplateError(f"{layer_id}: ContentUri {content_uri!r} is not a folder next to the template")
        method = _build_method(layer) or ""
        if method.startswith("python") and not (base_dir / content_uri / "requirements.txt").is_file():
            raise TemplateError(f"{layer_id}: BuildMethod {method} needs a requirements.txt in {content_uri!r}")
        layers.append(layer_id)
    return layers


@dataclass
class Resolver:
    """Resolves Ref / Fn::GetAtt / Fn::Sub / Fn::Join / Fn::Select / Fn::If and the Conditions.

    `ref` and `get_att` are callbacks so that resolving a property can provision the resource it
    points at first (a queue's RedrivePolicy needs its DLQ's ARN). `Ref: AWS::NoValue` removes the
    property or list element it stands for, as CloudFormation does.
    """

    parameters: dict[str, Any]
    region: str
    ref: Callable[[str], str]
    get_att: Callable[[str, str], str]
    pseudo: dict[str, str] = field(default_factory=dict)
    conditions: dict[str, Any] = field(default_factory=dict)  # the template's Conditions, unevaluated

    def __post_init__(self) -> None:
        self.pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": "pointbridge-" + self.parameters.get("Stage", "local"),
            "AWS::URLSuffix": "amazonaws.com",
        } | self.pseudo
        self._condition_values: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        """A named condition of the template, evaluated once."""
        if name not in self._condition_values:
            if name not in self.conditions:
                raise TemplateError(f"condition {name} is not in the template's Conditions")
            self._condition_values[name] = self._truth(self.conditions[name])
        return self._condition_values[name]

    def _truth(self, value: Any) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Condition":
                return self.condition(str(arg))
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._truth(arg[0])
            if key == "Fn::And":
                return all(self._truth(v) for v in arg)
            if key == "Fn::Or":
                return any(self._truth(v) for v in arg)
        raise TemplateError(f"not a condition the sandbox can evaluate: {value!r}")

    def _name(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return self.get_att(logical_id, attribute)
        return self.ref(name)

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            return str(variables[name]) if name in variables else str(self._name(name))

        return _SUB_VAR.sub(replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self._name(arg)
            if key == "Fn::If":
                condition, when_true, when_false = arg
                return self.resolve(when_true if self.condition(str(condition)) else when_false)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                return str(arg[0]).join(str(v) for v in self.resolve(arg[1]))
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg))
            if key.startswith("Fn::"):
                raise TemplateError(f"intrinsic {key} is not supported by the sandbox")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}
