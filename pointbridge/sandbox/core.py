"""The Sandbox: template.yaml's stack on one machine, against moto in server mode."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pointbridge.sandbox import state
from pointbridge.sandbox.apigw import ApiGateway, Authorizer, GatewayResponse, Route, S3Integration, method_throttle
from pointbridge.sandbox.emulator import Emulator
from pointbridge.sandbox.iam import PolicySet, function_credentials, function_principal
from pointbridge.sandbox.provision import IMPLICIT_API, Provisioned, Provisioner, is_custom_resource
from pointbridge.sandbox.runtime import FunctionPool, FunctionSpec, InvocationError
from pointbridge.sandbox.schedules import ScheduleRunner, ScheduleSpec, scheduled_event
from pointbridge.sandbox.sources import (
    GetRecordsReader,
    Poller,
    SignedJson,
    SqsPoller,
    StreamPoller,
    event_filter,
    s3_events,
)
from pointbridge.sandbox.template import (
    ACCOUNT_ID,
    SERVERLESS_API,
    SERVERLESS_FUNCTION,
    TemplateError,
    function_code_dir,
    function_layers,
    function_properties,
    load_template,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

log = logging.getLogger("pointbridge.sandbox")

# Where custom resources' handlers answer CloudFormation (a presigned PUT, as CloudFormation gives).
CFN_RESPONSES_BUCKET = "pointbridge-sandbox-cloudformation-answers"
# API Gateway's S3 integration URI: arn:<partition>:apigateway:<region>:s3:path/<bucket>/<key>
S3_PATH = re.compile(r"^arn:[^:]+:apigateway:[^:]+:s3:path/(?P<bucket>[^/]+)/(?P<key>.+)$")

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


@dataclass(frozen=True)
class Invocation:
    function: str
    source: str  # api, sqs, s3, dynamodb, schedule, direct, authorizer
    batch_size: int
    outcome: str  # ok, partial (some batch items failed), malformed (batch reply), error
    error: str | None
    started_at: float
    duration_ms: float


@dataclass(frozen=True)
class AsyncConfig:
    """How Lambda handles the function's asynchronous invocations (its EventInvokeConfig)."""

    retries: int = 2  # Lambda's default: two more attempts
    on_failure: dict[str, Any] | None = None  # {"Type": "SQS"|"SNS", "Destination": arn}


def _arrival(record: dict[str, Any]) -> str:
    created = record.get("dynamodb", {}).get("ApproximateCreationDateTime", time.time())
    return datetime.fromtimestamp(float(created), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _outcome(reply: Any) -> str:
    if not isinstance(reply, dict) or "batchItemFailures" not in reply:
        return "ok"
    failures = reply["batchItemFailures"]
    if not isinstance(failures, list) or not all(
        isinstance(f, dict) and isinstance(f.get("itemIdentifier"), str) and f["itemIdentifier"] for f in failures
    ):
        return "malformed"  # the poller fails the whole batch (unknown ids are caught there too)
    return "partial" if failures else "ok"


def gateway_response(spec: dict[str, Any]) -> GatewayResponse:
    """SAM's GatewayResponses entry: a status, static headers (quoted, as API Gateway wants them), templates."""
    headers = spec.get("ResponseParameters", {}).get("Headers", {})
    for name, value in headers.items():
        if not (isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == "'"):
            raise TemplateError(f"gateway response header {name}: only static values ('...') are emulated")
    status = spec.get("StatusCode")
    return GatewayResponse(
        status=int(status) if status is not None else None,
        headers={str(name): str(value)[1:-1] for name, value in headers.items()},
        templates={str(k): str(v) for k, v in spec.get("ResponseTemplates", {}).items()},
    )


class Sandbox:
    # Where a started sandbox announces itself (its URLs and resources) while it is up, so other
    # `pointbridge` commands find it; set by the CLI for the sandboxes its commands start (the demo's too).
    announce_to: ClassVar[Path | None] = None

    def __init__(
        self,
        template: Path = Path("template.yaml"),
        stage: str = "local",
        state_dir: Path | None = None,
        queue_overrides: dict[str, dict[str, Any]] | None = None,
        pool_size: int = 4,
        schedules: bool = False,
        region: str = "us-east-1",
        api_port: int = 0,
        log_dir: Path | None = None,
        enforce_iam: bool = True,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.template_path = Path(template).resolve()
        self.stage = stage
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.queue_overrides = queue_overrides or {}
        self.pool_size = pool_size
        self.schedules_enabled = schedules
        self.region = region
        self.api_port = api_port
        # One log file per function (<log_dir>/<LogicalId>.log); None: the functions print here.
        self.log_dir = Path(log_dir) if log_dir is not None else None
        # Each function's calls are checked against its policy in the template (docs/sandbox.md, "IAM");
        # False: an audit, calls are evaluated and reported (`iam_report`), none refused.
        self.enforce_iam = enforce_iam
        # The template's Parameters beyond Stage (defaults otherwise), as `sam deploy` would pass them.
        self.parameters = dict(parameters or {})
        self.policies = PolicySet()
        self.invocations: list[Invocation] = []
        self.resources: dict[str, Provisioned] = {}
        self.functions: dict[str, FunctionSpec] = {}
        self.async_configs: dict[str, AsyncConfig] = {}
        # Lambda's destination records delivered for failed asynchronous invocations and stream batches.
        self.failures_delivered: list[dict[str, Any]] = []
        self.schedules: list[ScheduleSpec] = []
        self._emulator = Emulator(on_arrival=self._arrived)
        self._pools: dict[str, FunctionPool] = {}
        self._pollers: list[Poller] = []
        self._api: ApiGateway | None = None
        self._runner: ScheduleRunner | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._busy = 0
        self._finished = 0  # invocations ended so far (wait_for_idle's clock)
        self._busy_lock = threading.Lock()
        self._started = False
        self._announced: Path | None = None

    # -- public API ---------------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        return self._emulator.url

    @property
    def emulator(self) -> Emulator:
        """The moto process behind `endpoint_url` (its request log is what the benchmarks replay)."""
        return self._emulator

    @property
    def api_url(self) -> str:
        if self._api is None:
            raise RuntimeError("the sandbox is not started")
        return self._api.url

    def resource(self, logical_id: str) -> str:
        return self.resources[logical_id].physical_id

    def arn(self, logical_id: str) -> str:
        return self.resources[logical_id].arn

    def boto_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        } | FAKE_CREDENTIALS

    def client(self, service: str) -> Any:
        with self._clients_lock:
            if service not in self._clients:
                import boto3
                from botocore.config import Config

                session = boto3.session.Session(
                    aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region
                )
                self._clients[service] = session.client(
                    service,  # type: ignore[call-overload]
                    endpoint_url=self.endpoint_url,
                    config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
                )
            return self._clients[service]

    def client_as(self, logical_id: str, service: str) -> Any:
        """A boto3 client that signs as a function does: its calls are checked against its policy."""
        import boto3
        from botocore.config import Config

        self._check_function(logical_id)
        env = self.functions[logical_id].environment
        session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.region,
        )
        return session.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
        )

    def iam_report(self) -> dict[str, Any]:
        """What each function asked IAM for since the start (or the last reset), and what was refused."""
        report: dict[str, Any] = self._emulator.iam("GET")
        return report

    def reset_iam_report(self) -> None:
        self._emulator.iam("DELETE")

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Invoke like `aws lambda invoke`: raises InvocationError if the handler fails."""
        return self._invoke(logical_id, event, "direct", 1)

    def run_function(self, logical_id: str, now: datetime | None = None, *, simulate: bool = False) -> Any:
        """One scheduled run, as if the function's schedule fired at `now` (default: now), invoked
        synchronously like `aws lambda invoke`: raises InvocationError if the handler fails.

        The jobs refuse a `now` ahead of the wall clock; `simulate=True` says the caller moves time
        on purpose (it adds `"simulate": true` to the job's input).
        """
        event = self._schedule_event(logical_id, now)
        if simulate and isinstance(event, dict):
            event["simulate"] = True
        return self._invoke(logical_id, event, "schedule", 1)

    def fire_schedule(self, logical_id: str, now: datetime | None = None) -> bool:
        """One scheduled run as the scheduler makes it, an asynchronous invocation: retried as the
        function's EventInvokeConfig says, then its event and error go to the on-failure destination.
        True if an attempt succeeded."""
        return self._invoke_async(logical_id, self._schedule_event(logical_id, now), "schedule")

    def _schedule_event(self, logical_id: str, now: datetime | None) -> Any:
        self._check_function(logical_id)
        spec = next((s for s in self.schedules if s.function == logical_id), None)
        return scheduled_event(spec, self.functions[logical_id].arn, self.region, now or datetime.now(UTC))

    def sweep_ttl(self, now: datetime | None = None) -> int:
        """Delete what DynamoDB's TTL would have deleted by `now`: items whose TTL attribute (a number,
        epoch seconds) is in the past, in each table that enables TTL. DynamoDB does this in the
        background within a day or two of the time; moto never does. Returns how many were deleted."""
        moment = (now or datetime.now(UTC)).timestamp()
        ddb = self.client("dynamodb")
        deleted = 0
        for logical_id, resource in self.resources.items():
            if resource.type != "AWS::DynamoDB::Table":
                continue
            spec = self.template["Resources"][logical_id].get("Properties", {}).get("TimeToLiveSpecification", {})
            if not self.provisioner.resolver.resolve(spec.get("Enabled", False)):
                continue
            attribute = str(spec["AttributeName"])
            schema = ddb.describe_table(TableName=resource.physical_id)["Table"]["KeySchema"]
            keys = [k["AttributeName"] for k in schema]
            # Filtered here: moto's filter fails on a TTL attribute that is not a number; DynamoDB skips it.
            for page in ddb.get_paginator("scan").paginate(TableName=resource.physical_id):
                for item in page["Items"]:
                    if "N" in item.get(attribute, {}) and float(item[attribute]["N"]) < moment:
                        ddb.delete_item(TableName=resource.physical_id, Key={k: item[k] for k in keys})
                        deleted += 1
        return deleted

    def _check_function(self, logical_id: str) -> None:
        if logical_id not in self.functions:
            raise KeyError(f"no function {logical_id!r}; the template has {sorted(self.functions)}")

    def _arrived(self, source_arn: str) -> None:
        # The emulator reports a new message or stream record: one of that source's waiting pollers
        # polls now (waking them all would send the others to find nothing); when none is
        # waiting, each is told, so none that is about to wait misses it.
        pollers = [p for p in self._pollers if p.source_arn == source_arn]
        waiting = [p for p in pollers if p.waiting]
        for poller in waiting[:1] or pollers:
            poller.poke()

    def wait_for_idle(self, timeout: float = 30) -> None:
        """Returns once every event source is drained and nothing is running; else TimeoutError.

        Idle means: no invocation running, and every poller has polled its source twice and found
        nothing since the last invocation ended (the second poll began after anything that
        invocation, or anyone before the call, sent or wrote). A poller waiting after an empty poll
        is asked to poll at once; one at work is left to it.
        """
        deadline = time.monotonic() + timeout
        finished = -1
        start: dict[int, int] = {}
        while time.monotonic() < deadline:
            if self._busy == 0 and self._finished != finished:
                finished = self._finished
                start = {id(p): p.epoch for p in self._pollers}
            if start:
                for poller in self._pollers:
                    if poller.waiting and poller.epoch < start[id(poller)] + 2:
                        poller.poke()
                polled = all(p.epoch >= start[id(p)] + 2 for p in self._pollers)
                if polled and self._quiet_since(finished) and all(p.drained() for p in self._pollers):
                    if self._quiet_since(finished):
                        return
            time.sleep(0.01)  # the pipeline drains a 400-event round in under 3 s: a 50 ms look was 2% of it
        raise TimeoutError(f"sandbox not idle after {timeout}s")

    def _quiet_since(self, finished: int) -> bool:
        return self._busy == 0 and self._finished == finished

    def start(self) -> Self:
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._announce()
        return self

    def _announce(self) -> None:
        self._announced = None if Sandbox.announce_to is None else Sandbox.announce_to.resolve()
        if self._announced is None:
            return
        info = {
            "endpoint_url": self.endpoint_url,
            "api_url": self.api_url,
            "stage": self.stage,
            "state_dir": str(self.state_dir.resolve()) if self.state_dir is not None else None,
            "pid": os.getpid(),
            "resources": {k: r.as_json() for k, r in self.resources.items()},
        }
        self._announced.parent.mkdir(parents=True, exist_ok=True)
        self._announced.write_text(json.dumps(info, indent=2), encoding="utf-8")

    def _withdraw(self) -> None:
        announced, self._announced = self._announced, None
        if announced is None or self._api is None:
            return
        try:
            # Another sandbox may have announced itself since: leave its announcement alone.
            if json.loads(announced.read_text(encoding="utf-8")).get("api_url") == self.api_url:
                announced.unlink()
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        self._withdraw()
        if self._runner is not None:
            self._runner.stop()
        for poller in self._pollers:
            poller.stop()
        if self._api is not None:
            self._api.stop()
        try:
            if self.state_dir is not None and self._emulator.port and self.resources:
                self._save()
        finally:
            for pool in self._pools.values():
                pool.close()
            self._emulator.stop()
            self._runner = None
            self._pollers = []
            self._api = None
            self._clients = {}
            self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- start-up -----------------------------------------------------------------------------
    def _start(self) -> None:
        # A restart (stop, then start) gets a fresh emulator, restored from state_dir if given.
        self.functions, self._pools, self.schedules, self._pollers = {}, {}, [], []
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self._emulator.start()
        self.template = load_template(self.template_path)
        self.provisioner = Provisioner(
            self.template, {"Stage": self.stage} | self.parameters, self.region, self.client, self.queue_overrides
        )
        self.resources = self.provisioner.provision_all()
        self.policies = PolicySet()
        for logical_id, resource in self.resources.items():
            if resource.type == SERVERLESS_FUNCTION:
                self.functions[logical_id] = self._function_spec(logical_id, resource)
                self.async_configs[logical_id] = self._async_config(logical_id)
                self._pools[logical_id] = FunctionPool(self.functions[logical_id], self.pool_size)
                self.policies.add(
                    function_principal(
                        self.template,
                        logical_id,
                        resource.physical_id,
                        self.provisioner.stack,
                        self.provisioner.resolver.resolve,
                    )
                )
        # Without enforcement the gate still evaluates every call, and reports what it would refuse.
        self._emulator.iam("PUT", self.policies.to_json(), query="" if self.enforce_iam else "audit")
        if self.state_dir is not None:
            restored = state.restore(
                self.state_dir,
                self.client("dynamodb"),
                self.client("s3"),
                *self._stores(),
                ssm=self.client("ssm"),
                secretsmanager=self.client("secretsmanager"),
            )
            log.info("sandbox: restored %d items and objects from %s", restored, self.state_dir)
        for logical_id, resource in self.resources.items():
            if is_custom_resource(resource.type):
                self.send_custom_resource(logical_id, "Create")
        routes = self._wire_events() + self._s3_routes()
        self._api = ApiGateway(
            routes, self._invoke, self._control, self.region, self.api_port, read_object=self._read_object
        )
        self._api.start()
        for poller in self._pollers:
            poller.start()
        if self.schedules_enabled:
            self._runner = ScheduleRunner(self.schedules, self._scheduled)
            self._runner.start()

    def _stores(self) -> tuple[dict[str, str], dict[str, str]]:
        tables = {k: r.physical_id for k, r in self.resources.items() if r.type == "AWS::DynamoDB::Table"}
        buckets = {k: r.physical_id for k, r in self.resources.items() if r.type == "AWS::S3::Bucket"}
        return tables, buckets

    def _save(self) -> None:
        assert self.state_dir is not None
        state.save(
            self.state_dir,
            self.client("dynamodb"),
            self.client("s3"),
            *self._stores(),
            ssm=self.client("ssm"),
            secretsmanager=self.client("secretsmanager"),
        )

    def _function_spec(self, logical_id: str, resource: Provisioned) -> FunctionSpec:
        props = function_properties(self.template, logical_id)
        resolve = self.provisioner.resolver.resolve
        code_dir = function_code_dir(self.template, logical_id, self.template_path.parent)
        # The layers' packages are in the sandbox's own virtualenv; a broken layer reference fails here.
        function_layers(self.template, logical_id, self.template_path.parent)
        memory = int(resolve(props.get("MemorySize", 128)))
        env = {
            "AWS_LAMBDA_FUNCTION_NAME": resource.physical_id,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{resource.physical_id}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_" + str(props.get("Runtime", "python3.11")),
            "LAMBDA_TASK_ROOT": str(code_dir),
            # No X-Ray daemon here: powertools' Tracer would otherwise try to reach one.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        variables = resolve(props.get("Environment", {}).get("Variables", {}))
        env |= {str(k): str(v) for k, v in variables.items()}
        env |= self.boto_env()
        # Its own key, as Lambda hands each function its role's credentials: the emulator knows the
        # function by it, and checks the function's calls against its policy.
        key, secret = function_credentials(self.provisioner.stack, logical_id)
        env |= {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
        return FunctionSpec(
            logical_id=logical_id,
            name=resource.physical_id,
            arn=resource.arn,
            handler=str(props["Handler"]),
            code_dir=str(code_dir),
            environment=env,
            memory_mb=memory,
            timeout_s=int(resolve(props.get("Timeout", 3))),
            log_file=str(self.log_dir / f"{logical_id}.log") if self.log_dir is not None else None,
        )

    def _async_config(self, logical_id: str) -> AsyncConfig:
        raw = function_properties(self.template, logical_id).get("EventInvokeConfig")
        if not raw:
            return AsyncConfig()
        config = self.provisioner.resolver.resolve(raw)
        return AsyncConfig(
            retries=int(config.get("MaximumRetryAttempts", 2)),
            on_failure=config.get("DestinationConfig", {}).get("OnFailure"),
        )

    def _wire_events(self) -> list[Route]:
        routes: list[Route] = []
        notifications: dict[str, list[dict[str, Any]]] = {}
        for logical_id in self.functions:
            props = function_properties(self.template, logical_id)
            for event_id, event in props.get("Events", {}).items():
                kind = event.get("Type")
                raw = event.get("Properties", {})
                if kind == "Api":
                    routes.append(self._route(logical_id, raw))
                elif kind == "SQS":
                    self._sqs_source(logical_id, self.provisioner.resolver.resolve(raw))
                elif kind == "S3":
                    self._s3_source(logical_id, event_id, self.provisioner.resolver.resolve(raw), notifications)
                elif kind == "DynamoDB":
                    self._stream_source(logical_id, self.provisioner.resolver.resolve(raw))
                elif kind in ("ScheduleV2", "Schedule"):
                    self._schedule(logical_id, event_id, kind, self.provisioner.resolver.resolve(raw))
                else:
                    log.info("sandbox: %s event %s (%s) is not emulated", logical_id, event_id, kind)
        s3 = self.client("s3")
        for bucket, configurations in notifications.items():
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
            )
        return routes

    def send_custom_resource(self, logical_id: str, request_type: str) -> dict[str, Any]:
        """CloudFormation's request (`Create`, `Update` or `Delete`) for a custom resource to its
        ServiceToken (a function of the stack), with a presigned S3 URL to answer at; returns the
        answer. A FAILED answer (or none) raises, as CloudFormation rolls the stack back. The sandbox
        sends Create at start; Update and Delete are for tests of a handler's other paths."""
        import json

        resource = self.resources[logical_id]

        props = self.provisioner.resolver.resolve(self.template["Resources"][logical_id].get("Properties", {}))
        token = str(props.get("ServiceToken", ""))
        function = next((k for k, f in self.functions.items() if f.arn == token), None)
        if function is None:
            raise TemplateError(f"{logical_id}: ServiceToken {token!r} is not a function of the template")
        s3 = self.client("s3")
        if not any(b["Name"] == CFN_RESPONSES_BUCKET for b in s3.list_buckets()["Buckets"]):
            s3.create_bucket(Bucket=CFN_RESPONSES_BUCKET)
        request_id = str(uuid.uuid4())
        answer_key = f"{logical_id}/{request_id}"
        stack = self.provisioner.stack
        event = {
            "RequestType": request_type,
            "ServiceToken": token,
            "ResponseURL": self._presigner().generate_presigned_url(
                "put_object", Params={"Bucket": CFN_RESPONSES_BUCKET, "Key": answer_key}, ExpiresIn=7200
            ),
            "StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{stack}/{uuid.uuid4()}",
            "RequestId": request_id,
            "ResourceType": resource.type,
            "LogicalResourceId": logical_id,
            "ResourceProperties": props,
        }
        if request_type != "Create":
            event |= {"PhysicalResourceId": resource.physical_id}
        if request_type == "Update":
            event |= {"OldResourceProperties": props}
        self._invoke(function, event, "cloudformation", 1)
        try:
            answer = json.loads(s3.get_object(Bucket=CFN_RESPONSES_BUCKET, Key=answer_key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            raise TemplateError(f"{logical_id}: {function} never answered CloudFormation") from None
        if answer.get("Status") != "SUCCESS":
            raise TemplateError(f"{logical_id}: {function} answered FAILED: {answer.get('Reason')}")
        resource.physical_id = str(answer.get("PhysicalResourceId") or logical_id)
        resource.attributes = {str(k): str(v) for k, v in (answer.get("Data") or {}).items()}
        return dict(answer)

    def _presigner(self) -> Any:
        # Signature Version 4, as CloudFormation's URLs are (the emulator refuses version 2, as S3 does).
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region
        )
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def _s3_routes(self) -> list[Route]:
        """The methods of each API's DefinitionBody that API Gateway answers from S3 itself."""
        routes: list[Route] = []
        for api_logical_id, resource in self.resources.items():
            if resource.type != SERVERLESS_API or api_logical_id == IMPLICIT_API:
                continue
            raw = self.template["Resources"][api_logical_id].get("Properties", {}).get("DefinitionBody")
            if not raw:
                continue
            body = self.provisioner.resolver.resolve(raw)
            api_id, stage, _, _, _, settings = self._api_settings(api_logical_id)
            for path, methods in body.get("paths", {}).items():
                for method, operation in methods.items():
                    integration = operation.get("x-amazon-apigateway-integration", {})
                    target = S3_PATH.match(str(integration.get("uri", "")))
                    if integration.get("type") != "aws" or target is None:
                        continue
                    mapped = {
                        name.removeprefix("integration.request.path."): source.removeprefix("method.request.path.")
                        for name, source in integration.get("requestParameters", {}).items()
                        if name.startswith("integration.request.path.")
                    }
                    responses = tuple(
                        (
                            pattern,
                            int(reply["statusCode"]),
                            {
                                name.removeprefix("method.response.header."): str(value)
                                for name, value in reply.get("responseParameters", {}).items()
                            },
                        )
                        for pattern, reply in integration.get("responses", {}).items()
                    )
                    routes.append(
                        Route(
                            function="",
                            method=method.upper(),
                            resource=path,
                            api_id=api_id,
                            stage=stage,
                            throttle=method_throttle(settings, path, method.upper()),
                            s3=S3Integration(target["bucket"], target["key"], mapped, responses),
                        )
                    )
        return routes

    def _read_object(self, bucket: str, key: str) -> tuple[int, dict[str, str], bytes]:
        s3 = self.client("s3")
        try:
            got = s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            return 404, {"Content-Type": "application/xml"}, b"<Error><Code>NoSuchKey</Code></Error>"
        return 200, {"Content-Type": got.get("ContentType", "binary/octet-stream")}, got["Body"].read()

    def _resource_by_arn(self, arn: str) -> Provisioned:
        for resource in self.resources.values():
            if resource.arn == arn:
                return resource
        raise KeyError(f"no template resource has ARN {arn}")

    def _queue_by_arn(self, arn: str) -> Provisioned:
        return self._resource_by_arn(arn)

    def _sqs_source(self, function: str, props: dict[str, Any]) -> None:
        if props.get("Enabled", True) is False:
            return
        queue = self._queue_by_arn(props["Queue"])
        # Lambda polls a queue with several concurrent pollers; one per warm worker here.
        concurrency = int(props.get("ScalingConfig", {}).get("MaximumConcurrency", self.pool_size))
        for _ in range(max(1, min(self.pool_size, concurrency))):
            self._pollers.append(
                SqsPoller(
                    sqs=self.client("sqs"),
                    function=function,
                    queue_url=queue.physical_id,
                    queue_arn=queue.arn,
                    region=self.region,
                    invoke=self._invoke,
                    batch_size=int(props.get("BatchSize", 10)),
                    window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                    keep=event_filter(props.get("FilterCriteria")),
                    requests=self._operator_requests("sqs"),
                )
            )

    def _s3_source(
        self,
        function: str,
        event_id: str,
        props: dict[str, Any],
        notifications: dict[str, list[dict[str, Any]]],
    ) -> None:
        # moto delivers bucket notifications to SQS; a hidden queue per mapping carries them here.
        sqs = self.client("sqs")
        name = f"sandbox-s3-{function}-{event_id}"[:80]
        url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = props.get("Events", [])
        configuration: dict[str, Any] = {
            "Id": f"{function}-{event_id}",
            "QueueArn": arn,
            "Events": [events] if isinstance(events, str) else events,
        }
        rules = props.get("Filter", {}).get("S3Key", {}).get("Rules")
        if rules:
            configuration["Filter"] = {"Key": {"FilterRules": rules}}
        notifications.setdefault(props["Bucket"], []).append(configuration)
        self._pollers.append(
            SqsPoller(
                sqs=sqs,
                function=function,
                queue_url=url,
                queue_arn=arn,
                region=self.region,
                invoke=self._invoke,
                source="s3",
                shape=s3_events,
                attempts=1 + self.async_configs[function].retries,
                on_exhausted=lambda event, error, count: self._deliver_failure(function, event, error, count),
                requests=self._operator_requests("sqs"),
            )
        )

    def _stream_source(self, function: str, props: dict[str, Any]) -> None:
        if props.get("Enabled", True) is False:
            return
        streams = self.client("dynamodbstreams")
        poller = StreamPoller(
            streams=streams,
            function=function,
            stream_arn=props["Stream"],
            region=self.region,
            invoke=self._invoke,
            batch_size=int(props.get("BatchSize", 100)),
            report_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            max_retries=int(props.get("MaximumRetryAttempts", -1)),
            keep=event_filter(props.get("FilterCriteria")),
            on_failure=self._failure_destination(function, props),
            function_arn=self.functions[function].arn,
            reader=GetRecordsReader(self._operator_requests("dynamodb"), fallback=streams),
        )
        poller.position_at_latest()
        self._pollers.append(poller)

    def _operator_requests(self, signing_name: str) -> SignedJson:
        """A poller's own connection to the emulator for requests it sends and reads directly."""
        return SignedJson(
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            signing_name=signing_name,
        )

    def _failure_destination(self, function: str, props: dict[str, Any]) -> Callable[[dict[str, Any]], None] | None:
        """A stream mapping's DestinationConfig.OnFailure (an SQS queue of the template), sent to as
        the function: Lambda sends the record with the function's execution role."""
        destination = (props.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
        if destination is None:
            return None
        queue = self._queue_by_arn(str(destination))
        sqs = self.client_as(function, "sqs")

        def send(record: dict[str, Any]) -> None:
            sqs.send_message(QueueUrl=queue.physical_id, MessageBody=json.dumps(record))

        return send

    def _schedule(self, function: str, event_id: str, kind: str, props: dict[str, Any]) -> None:
        fn = self.functions[function]
        name = str(props.get("Name") or f"{fn.name}-{event_id}")[:64]
        expression = str(props.get("ScheduleExpression") or props.get("Schedule"))
        enabled = props.get("State", "ENABLED") != "DISABLED" and props.get("Enabled", True) is not False
        timezone = str(props.get("ScheduleExpressionTimezone", "UTC"))
        target: dict[str, Any] = {"Arn": fn.arn, "RoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"}
        if "Input" in props:
            target["Input"] = props["Input"]
        state_name = "ENABLED" if enabled else "DISABLED"
        if kind == "ScheduleV2":
            arn = self.client("scheduler").create_schedule(
                Name=name,
                ScheduleExpression=expression,
                ScheduleExpressionTimezone=timezone,
                FlexibleTimeWindow=props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
                Target=target,
                State=state_name,
            )["ScheduleArn"]
        else:
            events = self.client("events")
            arn = events.put_rule(Name=name, ScheduleExpression=expression, State=state_name)["RuleArn"]
            events.put_targets(Rule=name, Targets=[{"Id": "1", **{k: v for k, v in target.items() if k != "RoleArn"}}])
        self.schedules.append(
            ScheduleSpec(function, event_id, kind, name, arn, expression, timezone, props.get("Input"), enabled)
        )

    def _api_settings(
        self, api_logical_id: str
    ) -> tuple[str, str, dict[str, Any], tuple[str, ...], dict[str, GatewayResponse], list[Any]]:
        """(API id, stage, Auth, binary media types, GatewayResponses, the stage's MethodSettings)."""
        resource = self.provisioner.ensure(api_logical_id)
        if api_logical_id == IMPLICIT_API:
            return resource.physical_id, "Prod", {}, (), {}, []
        props = self.template["Resources"][api_logical_id].get("Properties", {})
        binary = tuple(str(t).replace("~1", "/") for t in props.get("BinaryMediaTypes", []))
        responses = {
            str(kind): gateway_response(self.provisioner.resolver.resolve(spec))
            for kind, spec in props.get("GatewayResponses", {}).items()
        }
        settings = self.provisioner.resolver.resolve(props.get("MethodSettings", []))
        return resource.physical_id, resource.attributes["Stage"], props.get("Auth", {}), binary, responses, settings

    def _route(self, function: str, props: dict[str, Any]) -> Route:
        rest_api = props.get("RestApiId", {"Ref": IMPLICIT_API})
        api_logical_id = rest_api["Ref"] if isinstance(rest_api, dict) else IMPLICIT_API
        api_id, stage, auth, binary, responses, settings = self._api_settings(api_logical_id)
        name = props.get("Auth", {}).get("Authorizer") or auth.get("DefaultAuthorizer")
        authorizer = None
        if name and name not in ("NONE", "AWS_IAM"):
            authorizer = self._authorizer(str(name), auth.get("Authorizers", {})[name])
        method = str(props.get("Method", "ANY")).upper()
        return Route(
            function=function,
            method=method,
            resource=str(props["Path"]),
            api_id=api_id,
            stage=stage,
            authorizer=authorizer,
            binary_media_types=binary,
            gateway_responses=responses,
            throttle=method_throttle(settings, str(props["Path"]), method),
        )

    def _authorizer(self, name: str, config: dict[str, Any]) -> Authorizer:
        function_arn = config["FunctionArn"]
        if isinstance(function_arn, dict) and "Fn::GetAtt" in function_arn:
            target = function_arn["Fn::GetAtt"]
            function = target[0] if isinstance(target, list) else str(target).split(".")[0]
        else:
            arn = self.provisioner.resolver.resolve(function_arn)
            function = next(k for k, f in self.functions.items() if f.arn == arn)
        kind = str(config.get("FunctionPayloadType", "TOKEN")).upper()
        identity = config.get("Identity", {})
        if kind == "TOKEN":
            headers: tuple[str, ...] = (str(identity.get("Header", "Authorization")),)
        else:
            headers = tuple(str(h) for h in identity.get("Headers", []))
        return Authorizer(name, function, kind, headers, tuple(identity.get("QueryStrings", [])))

    # -- invocations ----------------------------------------------------------------------------
    def _invoke(self, logical_id: str, event: Any, source: str, batch_size: int) -> Any:
        self._check_function(logical_id)
        pool = self._pools[logical_id]
        with self._busy_lock:
            self._busy += 1
        started = time.time()
        try:
            reply = pool.invoke(event)
        except InvocationError as exc:
            self._record(logical_id, source, batch_size, "error", f"{exc.error_type}: {exc.message}", started)
            log.warning("sandbox: %s (%s) failed: %s: %s", logical_id, source, exc.error_type, exc.message)
            raise
        else:
            self._record(logical_id, source, batch_size, _outcome(reply), None, started)
            return reply
        finally:
            with self._busy_lock:
                self._busy -= 1
                self._finished += 1

    def _record(self, function: str, source: str, size: int, outcome: str, error: str | None, t0: float) -> None:
        self.invocations.append(
            Invocation(function, source, size, outcome, error, t0, round((time.time() - t0) * 1000, 1))
        )

    def _scheduled(self, spec: ScheduleSpec, when: datetime) -> Any:
        event = scheduled_event(spec, self.functions[spec.function].arn, self.region, when)
        return self._invoke_async(spec.function, event, "schedule")

    # -- asynchronous invocations and on-failure destinations ------------------------------------
    def _invoke_async(self, logical_id: str, event: Any, source: str) -> bool:
        attempts = 1 + self.async_configs[logical_id].retries
        error: InvocationError | None = None
        for _ in range(attempts):
            try:
                self._invoke(logical_id, event, source, 1)
                return True
            except InvocationError as exc:
                error = exc
        assert error is not None
        self._deliver_failure(logical_id, event, error, attempts)
        return False

    def _deliver_failure(self, logical_id: str, event: Any, error: InvocationError, attempts: int) -> None:
        """Lambda's record of an asynchronous invocation that failed every attempt, to the destination."""
        function = self.functions[logical_id]
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{function.arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": error.error_type, "errorMessage": error.message},
        }
        self._send_to_destination(logical_id, self.async_configs[logical_id].on_failure, record)

    def _send_to_destination(self, logical_id: str, on_failure: dict[str, Any] | None, record: dict[str, Any]) -> None:
        """Delivered with the function's role, as Lambda does (so IAM checks the grant SAM adds)."""
        import json

        self.failures_delivered.append(record)
        if not on_failure:
            log.warning("sandbox: %s failed for good and has no on-failure destination; dropped", logical_id)
            return
        destination = self.provisioner.resolver.resolve(on_failure)
        target = self._resource_by_arn(str(destination["Destination"]))
        body = json.dumps(record, default=str)
        if destination.get("Type") == "SNS":
            self.client_as(logical_id, "sns").publish(TopicArn=target.physical_id, Message=body)
        else:
            self.client_as(logical_id, "sqs").send_message(QueueUrl=target.physical_id, MessageBody=body)

    # -- control endpoints ----------------------------------------------------------------------
    def _control(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if method == "GET" and parts == ["resources"]:
            return 200, {k: r.as_json() for k, r in self.resources.items()}
        if method == "GET" and parts == ["health"]:
            return 200, {"endpoint_url": self.endpoint_url, "api_url": self.api_url}
        if method == "GET" and parts == ["invocations"]:
            return 200, [asdict(i) for i in self.invocations]
        if method == "POST" and len(parts) == 3 and parts[0] == "functions" and parts[2] == "invoke":
            function = parts[1]
            if function not in self.functions:
                return 404, {"error": f"no function {function}"}
            try:
                if body and "now" not in query:
                    reply = self.invoke(function, json.loads(body))
                else:
                    now = datetime.fromisoformat(query["now"]) if query.get("now") else None
                    simulate = query.get("simulate", "").lower() in ("1", "true", "yes")
                    reply = self.run_function(function, now=now, simulate=simulate)
            except InvocationError as exc:
                return 500, {"ok": False, "errorType": exc.error_type, "errorMessage": exc.message}
            return 200, {"ok": True, "reply": reply}
        return 404, {"error": f"unknown control endpoint {method} /_sandbox/{path}"}
