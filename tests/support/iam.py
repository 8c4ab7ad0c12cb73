"""Handlers called in-process run as their function, under its policy from template.yaml.

`bind_handlers()` replaces each function's handler (the template's `Handler`) with one that runs it
`acting_as` the function (pointbridge/sandbox/iam_inprocess.py): its AWS calls sign with the
function's key and pass the same IAM gate as the sandbox's, ahead of moto. So
`from functions.expiry.app import handler` in a test gets the ExpiryFunction, with its permissions.

The policy is resolved when the handler is called, against what the function is wired to then: a
resource that the template hands a function through its environment (`TABLE_NAME: !Ref
PointsTable`) is whatever that variable names in the test's environment, as on AWS the same `Ref`
names the table in the environment and in the policy. Anything else has the name the template
gives it for stage `test` (`pointbridge-test-files-123456789012`).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointbridge.sandbox.iam import Principal, function_principal, template_functions
from pointbridge.sandbox.iam_inprocess import acting_as, install
from pointbridge.sandbox.template import ACCOUNT_ID, Resolver, TemplateError, function_properties, load_template

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import ModuleType

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
STAGE = "test"
STACK = f"pointbridge-{STAGE}"
_NAME_PROPERTY = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Events::EventBus": "Name",
    "AWS::SNS::Topic": "TopicName",
}


@functools.cache
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _environment_bindings(tpl: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Logical id -> physical id, for resources the functions' environments `Ref` and the test set."""
    bound: dict[str, str] = {}
    for function in template_functions(tpl):
        variables = function_properties(tpl, function).get("Environment", {}).get("Variables", {})
        for name, value in variables.items():
            if isinstance(value, dict) and set(value) == {"Ref"} and environ.get(name):
                bound[str(value["Ref"])] = environ[name]
            elif isinstance(value, dict) and set(value) == {"Fn::GetAtt"} and environ.get(name):
                # `!GetAtt Key.Arn` in the environment: the ARN the test made the resource with.
                logical_id, attribute = _get_att_target(value["Fn::GetAtt"])
                if attribute == "Arn":
                    bound[f"{logical_id}.Arn"] = environ[name]
    return bound


def _get_att_target(target: Any) -> tuple[str, str]:
    if isinstance(target, str):
        logical_id, _, attribute = target.partition(".")
        return logical_id, attribute
    return str(target[0]), str(target[1])


class _BoundResolver:
    """Resolves the template's intrinsics against the resources a test wired its functions to."""

    def __init__(self, tpl: dict[str, Any], environ: Mapping[str, str], region: str) -> None:
        self.template = tpl
        self.region = region
        self.bound = _environment_bindings(tpl, environ)
        self.resolver = Resolver({"Stage": STAGE}, region, ref=self.ref, get_att=self.get_att)

    def _resource(self, logical_id: str) -> dict[str, Any]:
        resource = self.template.get("Resources", {}).get(logical_id)
        if resource is None:
            raise TemplateError(f"Ref to unknown resource or parameter {logical_id}")
        return dict(resource)

    def ref(self, logical_id: str) -> str:
        if logical_id in self.bound:
            return self.bound[logical_id]
        kind = self._resource(logical_id).get("Type", "")
        props = self._resource(logical_id).get("Properties", {})
        key = _NAME_PROPERTY.get(kind)
        name = str(self.resolver.resolve(props[key])) if key in props else f"{STACK}-{logical_id}"
        if kind == "AWS::S3::Bucket":
            return name.lower()
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{name}"
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{self.region}:{ACCOUNT_ID}:{name}"
        return name

    def get_att(self, logical_id: str, attribute: str) -> str:
        if f"{logical_id}.{attribute}" in self.bound:
            return self.bound[f"{logical_id}.{attribute}"]
        kind = self._resource(logical_id).get("Type", "")
        if kind == "AWS::KMS::Key" and attribute == "Arn":
            # A key no test made: its id is random, so no request can name it.
            return f"arn:aws:kms:{self.region}:{ACCOUNT_ID}:key/{STACK}-{logical_id}"
        physical = self.ref(logical_id)
        arns: dict[str, Callable[[str], str]] = {
            "AWS::DynamoDB::Table": lambda name: f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{name}",
            "AWS::SQS::Queue": lambda url: f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{url.rsplit('/', 1)[-1]}",
            "AWS::S3::Bucket": lambda name: f"arn:aws:s3:::{name}",
            "AWS::Events::EventBus": lambda name: f"arn:aws:events:{self.region}:{ACCOUNT_ID}:event-bus/{name}",
            "AWS::SNS::Topic": lambda arn: arn,
        }
        if attribute != "Arn" or kind not in arns:
            raise TemplateError(f"{logical_id}.{attribute} is not known to the in-process IAM harness")
        return arns[kind](physical)


def principal(
    logical_id: str, environ: Mapping[str, str] | None = None, tpl: dict[str, Any] | None = None
) -> Principal:
    """The function's principal, its policy (from `tpl`, default template.yaml) resolved against the
    environment (default: this process's)."""
    tpl = tpl if tpl is not None else template()
    env = os.environ if environ is None else environ
    region = env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1"
    resolve = _BoundResolver(tpl, env, region).resolver.resolve
    return function_principal(tpl, logical_id, f"{STACK}-{logical_id}", STACK, resolve)


def template_name(logical_id: str) -> str:
    """The physical name the template gives a resource for stage `test` (when no environment binds it)."""
    return _BoundResolver(template(), {}, "us-east-1").ref(logical_id)


def _as_function(logical_id: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        with acting_as(principal(logical_id)):
            return handler(event, context)

    run.__dict__["iam_function"] = logical_id
    return run


def _bind(module: ModuleType, attribute: str, logical_id: str) -> None:
    handler = getattr(module, attribute)
    if getattr(handler, "iam_function", None) is None:
        setattr(module, attribute, _as_function(logical_id, handler))


class _BindOnImport(importlib.abc.MetaPathFinder):
    """Wraps a handler module's handler as soon as the module is imported.

    Handler modules are not imported here ahead of time: some read their environment at import
    (powertools' Metrics and Logger), which the tests set per test.
    """

    def __init__(self, handlers: dict[str, list[tuple[str, str]]]) -> None:
        self.handlers = handlers

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.handlers:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run_module = loader.exec_module
        bindings = self.handlers[fullname]

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            for attribute, logical_id in bindings:
                _bind(module, attribute, logical_id)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def bind_handlers() -> None:
    """Make every template function's handler run as that function, now or when imported (idempotent)."""
    install()
    tpl = template()
    handlers: dict[str, list[tuple[str, str]]] = {}
    for logical_id in template_functions(tpl):
        module_name, _, attribute = str(function_properties(tpl, logical_id)["Handler"]).rpartition(".")
        if module_name in sys.modules:
            _bind(sys.modules[module_name], attribute, logical_id)
        else:
            handlers.setdefault(module_name, []).append((attribute, logical_id))
    if handlers and not any(isinstance(f, _BindOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _BindOnImport(handlers))
