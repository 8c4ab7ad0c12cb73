"""Each function's IAM policy from template.yaml, enforced on every AWS request the function makes.

A function signs its requests with its own access key (`function_credentials`), so a request tells
which function made it; the `Enforcer` maps the key to that function's policy and evaluates every
permission the request needs (iam_requests.py) as IAM evaluates identity-based policies in one
account: an explicit Deny wins, then any Allow, else the request is implicitly denied. A refusal
is answered as the service answers it (AccessDenied in the protocol's shape). Requests signed with
any other key (the operator: the sandbox's provisioning, tests' setup and checks) are not checked.

The policy is the function's `Policies` (inline statements, and AWS managed policies the sandbox
knows by content), with intrinsics resolved like every other property, plus the managed policies
SAM attaches to every function's role on its own (basic execution; X-Ray with `Tracing: Active`;
the SQS and DynamoDB Streams poller policies for those event sources). The same engine runs in
the sandbox's emulator (a WSGI gate in front of moto) and in-process under `mock_aws`
(iam_inprocess.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pointbridge.sandbox.iam_requests import Authorization, AwsRequest, Described, Reply, access_denied, describe
from pointbridge.sandbox.template import ACCOUNT_ID, SERVERLESS_FUNCTION, TemplateError, function_properties

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

ALLOW, DENY = "Allow", "Deny"
_LOGS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
# AWS managed policies, by content (all grant on "*"): those SAM attaches on its own, which a
# template may also name in `Policies`.
MANAGED_POLICIES: dict[str, tuple[str, ...]] = {
    "AWSLambdaBasicExecutionRole": _LOGS,
    "AWSLambdaSQSQueueExecutionRole": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", *_LOGS),
    "AWSLambdaDynamoDBExecutionRole": (
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        *_LOGS,
    ),
    "AWSXrayWriteOnlyAccess": (
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ),
}
_EVENT_POLICIES = {"SQS": "AWSLambdaSQSQueueExecutionRole", "DynamoDB": "AWSLambdaDynamoDBExecutionRole"}
_MAX_DENIALS_KEPT = 1000
_VERDICTS_KEPT = 10_000


# -- policy statements --------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    # IAM wildcards: `*` any run of characters (":" and "/" included), `?` any one character.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(regex, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _matching(patterns: tuple[str, ...], value: str, ignore_case: bool) -> tuple[str, ...]:
    return tuple(p for p in patterns if _pattern(p, ignore_case).fullmatch(value))


@dataclass(frozen=True)
class Statement:
    """One statement of a function's policy. `where` names it in the template (or the managed policy)."""

    where: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_action: bool = False
    not_resource: bool = False
    declared: bool = True  # False: attached by SAM on its own, not written in the template

    def grants(self, need: Authorization) -> tuple[tuple[str, str], ...]:
        """The (action pattern, resource pattern) pairs of this statement that cover `need`; () if none."""
        actions = _matching(self.actions, need.action, ignore_case=True)
        if self.not_action:
            actions = () if actions else ("NotAction",)
        resources = _matching(self.resources, need.resource, ignore_case=False)
        if self.not_resource:
            resources = () if resources else ("NotResource",)
        return tuple((a, r) for a in actions for r in resources)


@dataclass(frozen=True)
class Grant:
    """One action pattern on one resource pattern, in one statement of one function's policy."""

    function: str
    statement: str
    action: str
    resource: str


@dataclass(frozen=True)
class Principal:
    """A function's identity: its access key, the role session AWS would name, its statements."""

    function: str
    access_key_id: str
    secret_access_key: str
    arn: str
    statements: tuple[Statement, ...]

    def declared_grants(self) -> list[Grant]:
        return [
            Grant(self.function, s.where, a, r)
            for s in self.statements
            if s.declared and s.effect == ALLOW
            for a in (("NotAction",) if s.not_action else s.actions)
            for r in (("NotResource",) if s.not_resource else s.resources)
        ]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    explicit_deny: bool
    grants: tuple[Grant, ...]  # the Allow patterns that covered the permission


def evaluate(principal: Principal, need: Authorization) -> Verdict:
    """IAM's evaluation for identity-based policies in one account: Deny wins, then Allow, else deny."""
    grants: list[Grant] = []
    denied = False
    for statement in principal.statements:
        covered = statement.grants(need)
        if not covered:
            continue
        if statement.effect == DENY:
            denied = True
        else:
            grants += [Grant(principal.function, statement.where, a, r) for a, r in covered]
    return Verdict(allowed=bool(grants) and not denied, explicit_deny=denied, grants=tuple(grants))


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise TemplateError(f"{where}: {key} must be a string or a list of strings, not {value!r}")
    for v in values:
        if "${" in v:
            raise TemplateError(f"{where}: policy variables ({v}) are not evaluated by the sandbox")
    return tuple(values)


def parse_statement(raw: Any, where: str, declared: bool = True) -> Statement:
    """One resolved policy statement; anything the sandbox would not evaluate faithfully is an error."""
    if not isinstance(raw, dict):
        raise TemplateError(f"{where}: a statement must be a map, not {raw!r}")
    unknown = set(raw) - {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
    if unknown:
        raise TemplateError(f"{where}: {sorted(unknown)} in a statement are not supported by the sandbox")
    if "Condition" in raw:
        raise TemplateError(f"{where}: Condition keys are not evaluated by the sandbox; add them to iam.py first")
    if raw.get("Effect") not in (ALLOW, DENY):
        raise TemplateError(f"{where}: Effect must be Allow or Deny, not {raw.get('Effect')!r}")
    if ("Action" in raw) == ("NotAction" in raw) or ("Resource" in raw) == ("NotResource" in raw):
        raise TemplateError(f"{where}: a statement needs exactly one of Action/NotAction and of Resource/NotResource")
    action_key = "Action" if "Action" in raw else "NotAction"
    resource_key = "Resource" if "Resource" in raw else "NotResource"
    label = f"{where}({raw['Sid']})" if "Sid" in raw else where
    return Statement(
        where=label,
        effect=raw["Effect"],
        actions=_strings(raw[action_key], where, action_key),
        resources=_strings(raw[resource_key], where, resource_key),
        not_action=action_key == "NotAction",
        not_resource=resource_key == "NotResource",
        declared=declared,
    )


def _managed(reference: str, where: str, declared: bool) -> Statement:
    name = reference.rsplit("/", 1)[-1]
    if name not in MANAGED_POLICIES:
        raise TemplateError(f"{where}: the sandbox does not know what managed policy {reference} grants")
    return Statement(
        where=f"{where}({name})", effect=ALLOW, actions=MANAGED_POLICIES[name], resources=("*",), declared=declared
    )


def function_statements(template: dict[str, Any], logical_id: str, resolve: Callable[[Any], Any]) -> list[Statement]:
    """The statements of a SAM function's role: its `Policies`, then what SAM attaches on its own."""
    props = function_properties(template, logical_id)
    for unsupported in ("Role", "PermissionsBoundary"):
        if unsupported in props:
            raise TemplateError(f"{logical_id}: {unsupported} is not modelled by the sandbox's IAM enforcement")
    policies = props.get("Policies", [])
    policies = [policies] if isinstance(policies, str | dict) else policies
    statements: list[Statement] = []
    for index, policy in enumerate(policies):
        where = f"{logical_id}.Policies[{index}]"
        if isinstance(policy, str):
            statements.append(_managed(str(resolve(policy)), where, declared=True))
        elif isinstance(policy, dict) and "Statement" in policy:
            raw = resolve(policy["Statement"])
            for n, statement in enumerate(raw if isinstance(raw, list) else [raw]):
                statements.append(parse_statement(statement, f"{where}.Statement[{n}]"))
        elif isinstance(policy, dict) and len(policy) == 1:
            raise TemplateError(f"{where}: SAM policy template {next(iter(policy))} is not modelled by the sandbox")
        else:
            raise TemplateError(f"{where}: not a policy document, managed policy or policy template")
    implicit = ["AWSLambdaBasicExecutionRole"]
    if resolve(props.get("Tracing")) == "Active":
        implicit.append("AWSXrayWriteOnlyAccess")
    for event in props.get("Events", {}).values():
        if event.get("Type") in _EVENT_POLICIES:
            implicit.append(_EVENT_POLICIES[event["Type"]])
    for name in dict.fromkeys(implicit):
        statements.append(_managed(name, f"{logical_id}.Role", declared=False))
    statements.extend(_destination_statements(props, logical_id, resolve))
    return statements


def _destination_statements(props: dict[str, Any], logical_id: str, resolve: Callable[[Any], Any]) -> list[Statement]:
    """SAM grants the role what an on-failure destination needs when its `Type` is given: of a stream
    mapping's failed batches, or of an asynchronous invocation (EventInvokeConfig)."""
    found = []
    sources = [("EventInvokeConfig", {"Properties": props.get("EventInvokeConfig") or {}})]
    for event_id, event in [*sources, *props.get("Events", {}).items()]:
        on_failure = (event.get("Properties", {}).get("DestinationConfig") or {}).get("OnFailure") or {}
        kind, destination = on_failure.get("Type"), on_failure.get("Destination")
        if destination is None:
            continue
        if kind == "SQS":
            action = "sqs:SendMessage"
        elif kind == "SNS":
            action = "sns:Publish"
        else:
            # Without a Type SAM grants nothing: the template's own Policies must allow the send.
            continue
        found.append(
            Statement(
                where=f"{logical_id}.Role({event_id}.DestinationConfig)",
                effect=ALLOW,
                actions=(action,),
                resources=(str(resolve(destination)),),
                declared=False,
            )
        )
    return found


# -- identities -----------------------------------------------------------------------------------


def function_credentials(stack: str, logical_id: str) -> tuple[str, str]:
    """A stable (access key id, secret) per function of a stack, shaped like the temporary keys Lambda gets."""
    digest = hashlib.sha256(f"pointbridge-sandbox:{stack}:{logical_id}".encode()).digest()
    return "ASIA" + base64.b32encode(digest).decode()[:16], digest.hex()


@dataclass
class PolicySet:
    """Every function's principal, by access key id; serialisable, to cross into the emulator."""

    principals: dict[str, Principal] = field(default_factory=dict)

    def add(self, principal: Principal) -> None:
        holder = self.principals.get(principal.access_key_id)
        if holder is not None and holder.function != principal.function:
            raise TemplateError(f"{principal.function} and {holder.function} would share an access key")
        self.principals[principal.access_key_id] = principal

    def by_function(self) -> dict[str, Principal]:
        return {p.function: p for p in self.principals.values()}

    def to_json(self) -> str:
        return json.dumps([asdict(p) for p in self.principals.values()])

    @classmethod
    def from_json(cls, text: str) -> PolicySet:
        policies = cls()
        for raw in json.loads(text):
            statements = tuple(
                Statement(**{**s, "actions": tuple(s["actions"]), "resources": tuple(s["resources"])})
                for s in raw.pop("statements")
            )
            policies.add(Principal(**raw, statements=statements))
        return policies


def function_principal(
    template: dict[str, Any], logical_id: str, function_name: str, stack: str, resolve: Callable[[Any], Any]
) -> Principal:
    key, secret = function_credentials(stack, logical_id)
    # SAM names the role <stack>-<LogicalId>Role-<suffix>; Lambda's session is the function's name.
    arn = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{stack}-{logical_id}Role/{function_name}"
    return Principal(logical_id, key, secret, arn, tuple(function_statements(template, logical_id, resolve)))


def template_functions(template: dict[str, Any]) -> list[str]:
    return [k for k, r in template.get("Resources", {}).items() if r.get("Type") == SERVERLESS_FUNCTION]


# -- enforcement ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Denial:
    function: str
    operation: str
    action: str
    resource: str
    message: str


def _message(principal: Principal, described: Described, need: Authorization, verdict: Verdict) -> str:
    # The services word it alike; S3 quotes the resource and SQS prints the action in lower case.
    action = need.action.lower() if described.service == "sqs" else need.action
    resource = f'"{need.resource}"' if described.service == "s3" else need.resource
    head = f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource}"
    if verdict.explicit_deny:
        return f"{head} with an explicit deny in an identity-based policy"
    return f"{head} because no identity-based policy allows the {action} action"


class Enforcer:
    """Checks requests against a PolicySet and remembers what each function used and was refused.

    With `refuse=False` it only records (an audit): what would be refused is reported, not refused.
    """

    def __init__(self, policies: PolicySet | None = None, refuse: bool = True) -> None:
        self._lock = threading.Lock()
        self.policies = policies or PolicySet()
        self.refuse = refuse
        self._used: Counter[Grant] = Counter()
        self._requested: Counter[tuple[str, str, str]] = Counter()  # (function, action, resource)
        self._denials: deque[Denial] = deque(maxlen=_MAX_DENIALS_KEPT)
        self._denied = 0
        # evaluate() per principal and need, remembered: a function asks for the same few
        # permissions on every request. Keyed by the principal's identity (a new PolicySet makes
        # new principals), the principal kept with its verdict so that id cannot be reused.
        self._verdicts: dict[tuple[int, Authorization], tuple[Principal, Verdict]] = {}

    def configure(self, policies: PolicySet, refuse: bool = True) -> None:
        with self._lock:
            self.policies = policies
            self.refuse = refuse
            self._verdicts = {}

    def _verdict(self, principal: Principal, need: Authorization) -> Verdict:
        key = (id(principal), need)
        known = self._verdicts.get(key)
        if known is not None and known[0] is principal:
            return known[1]
        verdict = evaluate(principal, need)
        if len(self._verdicts) >= _VERDICTS_KEPT:
            self._verdicts = {}  # S3 keys, queue names: the needs are not bounded
        self._verdicts[key] = (principal, verdict)
        return verdict

    def principal_for(self, request: AwsRequest) -> tuple[Principal, str, str] | None:
        """The function that signed `request` (with the region and service it signed for), if any."""
        credential = request.credential()
        if credential is None:
            return None
        key, region, service = credential
        principal = self.policies.principals.get(key)
        return (principal, region, service) if principal is not None else None

    def check(self, request: AwsRequest, signer: tuple[Principal, str, str] | None = None) -> Reply | None:
        """None if the request may go on; else AWS's AccessDenied reply for it. `signer`: what
        `principal_for(request)` answered, when the caller has asked already."""
        if signer is None:
            signer = self.principal_for(request)
        if signer is None:
            return None
        principal, region, service = signer
        described = describe(request, service, region, ACCOUNT_ID)
        if described.unmapped is not None:
            message = (
                f"User: {principal.arn} is not authorized to perform {described.operation}: the sandbox cannot "
                f"tell which IAM actions and resources it needs ({described.unmapped}; "
                "see pointbridge/sandbox/iam_requests.py)"
            )
            self._deny(Denial(principal.function, described.operation, "?", "?", message))
            return access_denied(described, request, message) if self.refuse else None
        refusal = None
        for need in described.authorizations:
            verdict = self._verdict(principal, need)
            with self._lock:
                self._requested[(principal.function, need.action, need.resource)] += 1
                if verdict.allowed:
                    for grant in verdict.grants:
                        self._used[grant] += 1
            if not verdict.allowed:
                message = _message(principal, described, need, verdict)
                self._deny(Denial(principal.function, described.operation, need.action, need.resource, message))
                if not self.refuse:
                    continue  # an audit reports every permission the request lacks
                refusal = access_denied(described, request, message)
                break
        return refusal

    def _deny(self, denial: Denial) -> None:
        with self._lock:
            self._denials.append(denial)
            self._denied += 1

    @property
    def denied(self) -> int:
        """How many requests were refused since the start (or the last reset)."""
        return self._denied

    def recent_denials(self, count: int) -> list[Denial]:
        with self._lock:
            return list(self._denials)[-count:] if count > 0 else []

    def report(self) -> dict[str, Any]:
        """What each function asked for and was granted or refused, as JSON-ready data."""
        with self._lock:
            return {
                "requested": [
                    {"function": f, "action": a, "resource": r, "count": n}
                    for (f, a, r), n in sorted(self._requested.items())
                ],
                "used_grants": [asdict(g) | {"count": n} for g, n in sorted(self._used.items(), key=_grant_key)],
                "denied": self._denied,
                "denials": [asdict(d) for d in self._denials],
            }

    def reset_report(self) -> None:
        with self._lock:
            self._used.clear()
            self._requested.clear()
            self._denials.clear()
            self._denied = 0


def _grant_key(item: tuple[Grant, int]) -> tuple[str, str, str, str]:
    grant = item[0]
    return grant.function, grant.statement, grant.action, grant.resource


def unused_grants(policies: PolicySet, used: Iterable[Grant]) -> list[Grant]:
    """Grants written in the template that no allowed request needed."""
    seen = set(used)
    return [g for p in policies.by_function().values() for g in p.declared_grants() if g not in seen]
