"""A stand-in for API Gateway REST APIs (v1) with Lambda proxy integration, over real HTTP.

Requests become the proxy events API Gateway builds; replies are translated back with API
Gateway's rules, including its 502 for a malformed reply and its authorizer answers.
`/_sandbox/` is reserved for the sandbox's control endpoints and never reaches the API.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pointbridge.sandbox.runtime import InvocationError
from pointbridge.sandbox.template import ACCOUNT_ID

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_PAYLOAD = 10 * 1024 * 1024
CONTROL_PREFIX = "/_sandbox/"
_PROXY_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets connections when many clients connect at once
    # (API Gateway accepts them all); 50 concurrent redemptions in the e2e test reached it.
    request_queue_size = 256


class Throttle:
    """API Gateway's token bucket for a method: `rate` tokens a second, at most `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._at = clock()
        self._lock = threading.Lock()

    def admit(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


def method_throttle(settings: list[dict[str, Any]], resource: str, method: str) -> Throttle | None:
    """The stage's MethodSettings for one method: its own entry if there is one, else `/*` `*`."""

    def path(entry: dict[str, Any]) -> str:
        return str(entry.get("ResourcePath", "/*")).replace("~1", "/")

    own = [e for e in settings if path(e) != "/*" and path(e).removeprefix("/") == resource and _verb(e, method)]
    default = [e for e in settings if path(e) == "/*" and str(e.get("HttpMethod", "*")) == "*"]
    for entry in own + default:
        if "ThrottlingRateLimit" in entry or "ThrottlingBurstLimit" in entry:
            rate, burst = entry.get("ThrottlingRateLimit", 10000), entry.get("ThrottlingBurstLimit", 5000)
            return Throttle(float(rate), int(burst))
    return None


def _verb(entry: dict[str, Any], method: str) -> bool:
    return str(entry.get("HttpMethod", "*")).upper() in ("*", method)


@dataclass(frozen=True)
class Authorizer:
    name: str
    function: str  # logical id
    kind: str  # TOKEN or REQUEST
    headers: tuple[str, ...]
    query_strings: tuple[str, ...] = ()


@dataclass(frozen=True)
class GatewayResponse:
    """An API's customised reply for one of API Gateway's own refusals (its GatewayResponses)."""

    status: int | None
    headers: dict[str, str]  # static values only
    templates: dict[str, str]  # content type -> body, with $context variables


# Each refusal of the authorizer step: the gateway response type, API Gateway's default status and message.
UNAUTHORIZED = ("UNAUTHORIZED", 401, "Unauthorized")
EXPLICIT_DENY = ("ACCESS_DENIED", 403, "User is not authorized to access this resource with an explicit deny")
IMPLICIT_DENY = ("ACCESS_DENIED", 403, "User is not authorized to access this resource")
AUTHORIZER_FAILURE = ("AUTHORIZER_FAILURE", 500, None)
AUTHORIZER_CONFIGURATION = ("AUTHORIZER_CONFIGURATION_ERROR", 500, None)
_CONTEXT_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]+)")


@dataclass(frozen=True)
class S3Integration:
    """An `x-amazon-apigateway-integration` of type `aws` on S3's path API: GET of one object.

    `key` may hold `{name}` for a path parameter mapped through `requestParameters`. `responses`
    is API Gateway's list of (selection pattern, method status, method headers): the first pattern
    that matches S3's status in full wins, else `default`. A header value is a `'literal'` or
    `integration.response.header.<Name>`.
    """

    bucket: str
    key: str
    path_parameters: dict[str, str]  # integration's name -> the method's path parameter
    responses: tuple[tuple[str, int, dict[str, str]], ...]


@dataclass
class Route:
    function: str  # logical id; "" for an S3 integration
    method: str
    resource: str
    api_id: str
    stage: str
    authorizer: Authorizer | None = None
    binary_media_types: tuple[str, ...] = ()
    gateway_responses: dict[str, GatewayResponse] = field(default_factory=dict)
    throttle: Throttle | None = None
    s3: S3Integration | None = None
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        regex = ""
        for part in re.split(r"(\{[^}]+\})", self.resource):
            if part.startswith("{") and part.endswith("+}"):
                regex += "(.+)"
            elif part.startswith("{"):
                regex += "([^/]+)"
            else:
                regex += re.escape(part)
        self.pattern = re.compile(f"^{regex}/?$")

    def specificity(self) -> tuple[int, int, int]:
        # API Gateway prefers literal segments, then {param}, then a greedy {proxy+}.
        greedy = "+}" in self.resource
        return (0 if greedy else 1, self.resource.count("/") - self.resource.count("{"), len(self.resource))


def _match(route: Route, path: str) -> dict[str, str] | None:
    found = route.pattern.match(path)
    if found is None:
        return None
    names = re.findall(r"\{([^}+]+)\+?\}", route.resource)
    return {name: unquote(value) for name, value in zip(names, found.groups(), strict=True)}


def select_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route API Gateway picks: the most specific resource matching the path, then its method.

    A resource is chosen before its methods: a method it lacks is refused (None: 403, as API Gateway
    does), not handed to a greedy resource elsewhere that has it; its own method beats its ANY.
    """
    ranked = sorted(routes, key=lambda r: r.specificity(), reverse=True)
    matching = [(route, params) for route in ranked if (params := _match(route, path)) is not None]
    if not matching:
        return None
    resource = matching[0][0].resource
    methods = [(route, params) for route, params in matching if route.resource == resource]
    for wanted in (method, "ANY"):
        for route, params in methods:
            if route.method == wanted:
                return route, params
    return None


class ApiGateway:
    def __init__(
        self,
        routes: list[Route],
        invoke: Callable[[str, Any, str, int], Any],
        control: Callable[[str, str, dict[str, str], bytes], tuple[int, Any]],
        region: str,
        port: int = 0,
        read_object: Callable[[str, str], tuple[int, dict[str, str], bytes]] | None = None,
    ) -> None:
        self.routes = sorted(routes, key=lambda r: r.specificity(), reverse=True)
        self.read_object = read_object
        self.invoke = invoke
        self.control = control
        self.region = region
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return

            def _any(self) -> None:
                gateway.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

        self.server = _Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    # -- request handling ---------------------------------------------------------------------
    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD:
            request.close_connection = True
            _reply(request, 413, {}, json.dumps({"message": "Request Too Long"}).encode())
            return
        body = request.rfile.read(length) if length else b""
        split = urlsplit(request.path)
        path = split.path
        if path.startswith(CONTROL_PREFIX):
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            status, payload = self.control(request.command, path[len(CONTROL_PREFIX) :], query, body)
            _reply(request, status, {"Content-Type": "application/json"}, json.dumps(payload).encode())
            return
        found = select_route(self.routes, request.command, path)
        if found is None:
            _reply(request, 403, _json_type(), b'{"message":"Missing Authentication Token"}')
            return
        route, params = found
        if route.s3 is not None:
            self._s3(request, route, route.s3, params)
        else:
            self._proxy(request, route, params, split.query, body)

    def _event(
        self, request: BaseHTTPRequestHandler, route: Route, params: dict[str, str], query: str, body: bytes
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        pairs = parse_qsl(query, keep_blank_values=True)
        multi_query: dict[str, list[str]] = {}
        for name, value in pairs:
            multi_query.setdefault(name, []).append(value)
        content_type = request.headers.get("Content-Type", "")
        is_binary = any(fnmatch.fnmatch(content_type, t) for t in route.binary_media_types)
        text: str | None = None
        if body:
            try:
                text = body.decode() if not is_binary else None
            except UnicodeDecodeError:
                is_binary = True
            if is_binary:
                text = base64.b64encode(body).decode()
        now = time.time()
        return {
            "resource": route.resource,
            "path": request.path.split("?", 1)[0],
            "httpMethod": request.command,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": dict(pairs) or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": uuid.uuid4().hex[:6],
                "resourcePath": route.resource,
                "httpMethod": request.command,
                "extendedRequestId": uuid.uuid4().hex[:16],
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "path": f"/{route.stage}{request.path.split('?', 1)[0]}",
                "accountId": ACCOUNT_ID,
                "protocol": request.request_version,
                "stage": route.stage,
                "domainPrefix": route.api_id,
                "requestTimeEpoch": int(now * 1000),
                "requestId": str(uuid.uuid4()),
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "sourceIp": request.client_address[0],
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": request.headers.get("User-Agent"),
                    "user": None,
                },
                "domainName": f"{route.api_id}.execute-api.{self.region}.amazonaws.com",
                "apiId": route.api_id,
            },
            "body": text,
            "isBase64Encoded": is_binary and text is not None,
        }

    def _proxy(
        self, request: BaseHTTPRequestHandler, route: Route, params: dict[str, str], query: str, body: bytes
    ) -> None:
        if route.throttle is not None and not route.throttle.admit():
            _reply(request, 429, _json_type(), b'{"message":"Too Many Requests"}')
            return
        event = self._event(request, route, params, query, body)
        if route.authorizer is not None:
            denied = self._authorize(route, event)
            if denied is not None:
                refusal, context = denied
                _reply(request, *gateway_reply(route, refusal, context, event["requestContext"]["requestId"]))
                return
        try:
            reply = self.invoke(route.function, event, "api", 1)
        except InvocationError:
            _reply(request, 502, _json_type(), b'{"message": "Internal server error"}')
            return
        translated = translate_reply(reply)
        if translated is None:
            _reply(request, 502, _json_type(), b'{"message": "Internal server error"}')
            return
        status, headers, payload = translated
        _reply(request, status, headers, payload)

    def _s3(self, request: BaseHTTPRequestHandler, route: Route, s3: S3Integration, params: dict[str, str]) -> None:
        """API Gateway's S3 integration: the object's bytes, its status mapped by the responses."""
        if route.throttle is not None and not route.throttle.admit():
            _reply(request, 429, _json_type(), b'{"message":"Too Many Requests"}')
            return
        if self.read_object is None:
            _reply(request, 500, _json_type(), b'{"message": "Internal server error"}')
            return
        key = s3.key
        for name, parameter in s3.path_parameters.items():
            key = key.replace("{" + name + "}", params.get(parameter, ""))
        status, headers, payload = self.read_object(s3.bucket, key)
        lowered = {k.lower(): v for k, v in headers.items()}
        chosen = next((r for r in s3.responses if r[0] != "default" and re.fullmatch(r[0], str(status))), None)
        chosen = chosen or next((r for r in s3.responses if r[0] == "default"), None)
        if chosen is None:
            _reply(request, 500, _json_type(), b'{"message": "Internal server error"}')
            return
        _, method_status, mapping = chosen
        out: dict[str, Any] = {"Content-Type": "application/json"}
        for name, source in mapping.items():
            if source.startswith("'") and source.endswith("'"):
                out[name] = source[1:-1]
            elif source.lower().startswith("integration.response.header."):
                value = lowered.get(source.split(".", 3)[3].lower())
                if value is not None:
                    out[name] = value
        _reply(request, method_status, out, payload)

    def _authorize(
        self, route: Route, event: dict[str, Any]
    ) -> tuple[tuple[str, int, str | None], dict[str, str]] | None:
        """None when the authorizer allows the request; else which refusal, and the authorizer's context."""
        auth = route.authorizer
        assert auth is not None
        headers = {k.lower(): v for k, v in (event["headers"] or {}).items()}
        query = event["queryStringParameters"] or {}
        if any(h.lower() not in headers for h in auth.headers) or any(q not in query for q in auth.query_strings):
            return UNAUTHORIZED, {}
        method_arn = (
            f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{route.api_id}/{route.stage}/"
            f"{event['httpMethod']}{event['path']}"
        )
        if auth.kind == "TOKEN":
            auth_event: dict[str, Any] = {
                "type": "TOKEN",
                "authorizationToken": headers[auth.headers[0].lower()],
                "methodArn": method_arn,
            }
        else:
            auth_event = {"type": "REQUEST", "methodArn": method_arn} | {
                k: v for k, v in event.items() if k not in ("body", "isBase64Encoded")
            }
        try:
            policy = self.invoke(auth.function, auth_event, "authorizer", 1)
        except InvocationError as exc:
            if exc.message == "Unauthorized":
                return UNAUTHORIZED, {}
            return AUTHORIZER_FAILURE, {}
        effect = _policy_effect(policy, method_arn)
        if effect is None:
            return AUTHORIZER_CONFIGURATION, {}
        context = {k: _context_value(v) for k, v in (policy.get("context") or {}).items()}
        if effect == "Deny":
            return EXPLICIT_DENY, context
        if effect != "Allow":
            return IMPLICIT_DENY, context
        event["requestContext"]["authorizer"] = context | {"principalId": policy.get("principalId")}
        return None


def gateway_reply(
    route: Route, refusal: tuple[str, int, str | None], context: dict[str, str], request_id: str
) -> tuple[int, dict[str, list[str]], bytes]:
    """API Gateway's reply to a refusal: its default, or the API's GatewayResponse for that type.

    A response template's `$context.authorizer.<key>`, `$context.error.message`,
    `$context.error.responseType` and `$context.requestId` are filled in; API Gateway does not run
    gateway response templates through VTL, so no other syntax is emulated (or needed).
    """
    response_type, default_status, message = refusal
    custom = route.gateway_responses.get(response_type) or route.gateway_responses.get(
        "DEFAULT_5XX" if default_status >= 500 else "DEFAULT_4XX"
    )
    default_body = json.dumps({"message": message}).encode()
    if custom is None:
        return default_status, _json_type(), default_body
    variables = {f"authorizer.{k}": v for k, v in context.items()} | {
        "error.message": message or "",
        "error.messageString": json.dumps(message),
        "error.responseType": response_type,
        "requestId": request_id,
    }
    template = custom.templates.get("application/json")
    body = (
        _CONTEXT_VARIABLE.sub(lambda m: variables.get(m.group(1), ""), template).encode()
        if template is not None
        else default_body
    )
    headers = _json_type() | {name: [value] for name, value in custom.headers.items()}
    return custom.status or default_status, headers, body


def _context_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _policy_effect(policy: Any, method_arn: str) -> str | None:
    """Deny wins over Allow; no matching statement is an implicit deny. None: malformed reply."""
    if not isinstance(policy, dict) or not isinstance(policy.get("policyDocument"), dict):
        return None
    statements = policy["policyDocument"].get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return None
    effects = set()
    for statement in statements:
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            effects.add(statement.get("Effect"))
    if "Deny" in effects:
        return "Deny"
    return "Allow" if "Allow" in effects else "Implicit"


def translate_reply(reply: Any) -> tuple[int, dict[str, list[str]], bytes] | None:
    """API Gateway's reading of a proxy reply; None is its 'Malformed Lambda proxy response'."""
    if not isinstance(reply, dict) or not set(reply) <= _PROXY_KEYS:
        return None
    status = reply.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return None
    body = reply.get("body")
    if body is not None and not isinstance(body, str):
        return None
    headers: dict[str, list[str]] = {}
    for name, value in (reply.get("multiValueHeaders") or {}).items():
        if not isinstance(value, list):
            return None
        headers.setdefault(name, []).extend(str(v) for v in value)
    for name, value in (reply.get("headers") or {}).items():
        headers[name] = [str(value)]
    payload = (body or "").encode()
    if reply.get("isBase64Encoded") and body:
        try:
            payload = base64.b64decode(body, validate=True)
        except ValueError:
            return None
    return status, headers, payload


def _json_type() -> dict[str, list[str]]:
    return {"Content-Type": ["application/json"]}


def _reply(request: BaseHTTPRequestHandler, status: int, headers: dict[str, Any], payload: bytes) -> None:
    request.send_response(status)
    for name, values in headers.items():
        for value in values if isinstance(values, list) else [values]:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                request.send_header(name, value)
    request.send_header("Content-Length", str(len(payload)))
    if request.close_connection:
        request.send_header("Connection", "close")
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(payload)
