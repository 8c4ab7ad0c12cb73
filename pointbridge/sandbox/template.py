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

_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


class TemplateError(Exception):
    """The template uses something the sandbox cannot resolve."""


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


@dataclass
class Resolver:
    """Resolves Ref / Fn::GetAtt / Fn::Sub / Fn::Join / Fn::Select / Fn::If-free templates.

    `ref` and `get_att` are callbacks so that resolving a property can provision the resource it
    points at first (a queue's RedrivePolicy needs its DLQ's ARN).
    """

    parameters: dict[str, str]
    region: str
    ref: Callable[[str], str]
    get_att: Callable[[str, str], str]
    pseudo: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": "pointbridge-" + self.parameters.get("Stage", "local"),
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": "",
        } | self.pseudo

    def _name(self, name: str) -> str:
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
            return str(variables[name]) if name in variables else self._name(name)

        return _SUB_VAR.sub(replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._name(arg)
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
        return {k: self.resolve(v) for k, v in value.items()}
