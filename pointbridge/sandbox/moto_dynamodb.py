"""DynamoDB's JSON requests and replies without moto's generic, shape-walking machinery.

moto parses every request and serializes every reply by walking the operation's botocore shapes
node by node, asking, for each member of each value, which of six alias providers knows its key.
For DynamoDB (and DynamoDB Streams) the values are plain dicts and lists, and the shapes never
change, so the walk is worked out once per shape here - which converter each member needs, which
keys moto would look under - and then each request and reply is a short recursion over the data.

What comes out is what moto's own parser and serializer give (tests/integration/test_moto_speedups.py
runs random requests through both): the same members kept and dropped, the same conversions
(base64 blobs, numbers, timestamps, `str()` of strings), the same key order. Anything the compiled
walk was not built for (a value that is not a plain dict where a structure is expected, a shape
with a serialized name, response transformers, pretty printing, an error) is handed to moto's
own code, which then does all of that request's work as it always did.

`DynamoDBDispatch` (a WSGI app) sends DynamoDB's (and SQS's and EventBridge's) JSON requests
straight to moto's handler for them, without the domain dispatcher and Flask in front of it; every
other request goes to the app it wraps (moto's server). See its docstring.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

_ABSENT = object()
_EMPTY_STRINGS: list[Any] = [None, {}, []]
SERVICES = ("dynamodb", "dynamodbstreams")


def _shape_key(shape: Any) -> tuple[str, str, str]:
    """What a converter depends on: botocore makes a new Shape object for every nesting level
    of a recursive shape (AttributeValue in a map in an AttributeValue...), all alike; a
    member's own traits (serialized name, timestamp format) are in its serialization."""
    return (shape.type_name, shape.name, json.dumps(shape.serialization, sort_keys=True, default=str))


class _Unsupported(Exception):
    """The compiled walk does not cover this shape or value: moto's own code takes over."""


# --- replies ---------------------------------------------------------------------------------


def _string(value: Any) -> Any:
    from enum import Enum

    if isinstance(value, Enum):
        value = value.value
    return str(value) if value not in _EMPTY_STRINGS else value


def _blob(value: Any) -> str:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return base64.b64encode(value).strip().decode("utf-8")


def _identity(value: Any) -> Any:
    return value


class ReplyCompiler:
    """Per shape, a function from a handler's result value to what moto's JSON serializer writes
    for it (`_ABSENT` where moto writes nothing). Built from moto's serializer class and value
    picker, so that the keys each member is looked up under are moto's own answer."""

    def __init__(self, serializer_class: type, picker: Any) -> None:
        from moto.core.serialize import TimestampSerializer

        self._serializer_class = serializer_class
        self._picker = picker
        self._timestamps = TimestampSerializer(getattr(serializer_class, "DEFAULT_TIMESTAMP_FORMAT"))  # noqa: B009
        self._compiled: dict[tuple[str, str, str], tuple[Any, Callable[[Any], Any]]] = {}

    def compile(self, shape: Any) -> Callable[[Any], Any]:
        known = self._compiled.get(_shape_key(shape))
        if known is not None:
            return known[1]
        if shape.serialization.get("name") is not None:
            raise _Unsupported(f"serialized name on {shape.name}")
        kind = shape.type_name
        converter: Callable[[Any], Any]
        if kind == "structure":
            if shape.is_document_type:
                converter = _identity
            else:
                converter = self._structure(shape)
        elif kind in ("map", "list"):
            cell: list[Callable[[Any], Any]] = []
            # Recursive shapes (AttributeValue holds maps and lists of itself) refer to this
            # converter before it is finished.
            converter = self._map(shape, cell) if kind == "map" else self._list(shape, cell)
            self._compiled[_shape_key(shape)] = (shape, converter)
            cell.append(self.compile(shape.value if kind == "map" else shape.member))
            return converter
        elif not hasattr(self._serializer_class, f"_serialize_type_{kind}"):
            converter = _identity
        elif kind == "string":
            converter = _string
        elif kind == "blob":
            converter = _blob
        elif kind in ("integer", "long"):
            converter = int
        elif kind in ("float", "double"):
            converter = float
        elif kind == "timestamp":
            converter = self._timestamp(shape)
        else:
            raise _Unsupported(f"shape type {kind}")
        self._compiled[_shape_key(shape)] = (shape, converter)
        return converter

    def _timestamp(self, shape: Any) -> Callable[[Any], Any]:
        timestamps = self._timestamps

        def convert(value: Any) -> Any:
            written: dict[str, Any] = {}
            timestamps.serialize(written, value, shape, "timestamp")
            return written["timestamp"]

        return convert

    def _member_keys(self, parent: Any, key: str, shape: Any) -> list[str]:
        from moto.core.serialize import AttributePickerContext

        shape.parent = parent  # what moto's serializer sets before it picks a member
        context = AttributePickerContext(obj={}, key=key, shape=shape)
        keys = list(self._picker.get_possible_keys(context))
        if any("." in k for k in keys):
            raise _Unsupported(f"dotted key for {key}")
        return keys

    def _structure(self, shape: Any) -> Callable[[Any], Any]:
        members: list[tuple[str, list[str], Callable[[Any], Any]]] = []
        plan: list[tuple[str, list[str], Any]] = []
        for key, member_shape in shape.members.items():
            plan.append((key, self._member_keys(shape, key, member_shape), member_shape))

        def convert(value: Any) -> Any:
            if value is None:
                return _ABSENT
            if type(value) is not dict:
                raise _Unsupported("structure value is not a dict")
            written: dict[str, Any] = {}
            for key, keys, member in members:
                for candidate in keys:
                    if candidate in value:
                        member_value = value[candidate]
                        break
                else:
                    continue
                if member_value is not None:
                    converted = member(member_value)
                    if converted is not _ABSENT:
                        written[key] = converted
            return written

        # Registered before the members are compiled: a member may be this very shape.
        self._compiled[_shape_key(shape)] = (shape, convert)
        members.extend((key, keys, self.compile(member_shape)) for key, keys, member_shape in plan)
        return convert

    @staticmethod
    def _map(shape: Any, cell: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
        def convert(value: Any) -> Any:
            if type(value) is not dict:
                raise _Unsupported("map value is not a dict")
            member = cell[0]
            written: dict[Any, Any] = {}
            for key, item in value.items():
                converted = member(item)
                if converted is not _ABSENT:
                    written[key] = converted
            return written

        return convert

    @staticmethod
    def _list(shape: Any, cell: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
        def convert(value: Any) -> Any:
            if type(value) is not list and type(value) is not tuple:
                raise _Unsupported("list value is not a list")
            member = cell[0]
            written = []
            for item in value:
                converted = member(item)
                written.append(item if converted is _ABSENT else converted)
            return written

        return convert


class _Replies:
    """The compiled reply writers, one per operation model (kept alive with it)."""

    def __init__(self) -> None:
        self._by_operation: dict[int, tuple[Any, Callable[[Any], Any] | None]] = {}
        self._compilers: dict[tuple[type, type], ReplyCompiler] = {}

    def writer(self, operation_model: Any, serializer_class: type, picker: Any) -> Callable[[Any], Any] | None:
        known = self._by_operation.get(id(operation_model))
        if known is not None:
            return known[1]
        key = (serializer_class, type(picker))
        compiler = self._compilers.get(key)
        if compiler is None:
            compiler = self._compilers[key] = ReplyCompiler(serializer_class, picker)
        writer: Callable[[Any], Any] | None
        try:
            shape = operation_model.output_shape
            writer = compiler.compile(shape) if shape is not None else None
        except _Unsupported:
            writer = None
        self._by_operation[id(operation_model)] = (operation_model, writer)
        return writer


replies = _Replies()


def execute_result(stock: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """moto's ActionResult.execute_result, with a compiled writer for DynamoDB's plain results."""
    from moto import settings
    from moto.core.responses import ActionResult, EmptyResult
    from moto.core.serialize import JSONSerializer, XFormedAttributePicker
    from moto.dynamodb.responses import DynamoResult

    plain_results = (ActionResult, DynamoResult, EmptyResult)

    def fast_execute_result(self: Any, context: Any) -> Any:
        if (
            type(self) not in plain_results
            or context.serializer_class is not JSONSerializer
            or context.service_model.service_name not in SERVICES
            or getattr(context.response, "RESPONSE_KEY_PATH_TO_TRANSFORMER", None)
            or settings.PRETTIFY_RESPONSES
            or isinstance(self.result, Exception)
            or context.operation_model.has_event_stream_output
        ):
            return stock(self, context)
        operation_model = context.operation_model
        writer = replies.writer(operation_model, JSONSerializer, XFormedAttributePicker(response_transformers={}))
        if writer is None:
            return stock(self, context)
        try:
            written = writer(self.result) if self.result is not None else _ABSENT
        except _Unsupported:
            return stock(self, context)
        body = json.dumps({} if written is _ABSENT else written)
        version = context.service_model.metadata.get("jsonVersion", "1.0")
        status = operation_model.http.get("responseCode", JSONSerializer.DEFAULT_RESPONSE_CODE)
        return status, {"Content-Type": f"application/x-amz-json-{version}"}, body

    return fast_execute_result


# --- requests --------------------------------------------------------------------------------


class RequestCompiler:
    """Per shape, a function from the request's decoded JSON to what moto's JSONParser makes of
    it: the shape's members only (by their serialized names), JSON nulls left out, blobs decoded,
    numbers and timestamps converted."""

    def __init__(self, parser_class: type, map_type: type) -> None:
        self._parser_class = parser_class
        self._map_type = map_type
        self._compiled: dict[tuple[str, str, str], tuple[Any, Callable[[Any], Any]]] = {}

    def compile(self, shape: Any) -> Callable[[Any], Any]:
        known = self._compiled.get(_shape_key(shape))
        if known is not None:
            return known[1]
        from moto.core.parse import default_blob_parser, default_timestamp_parser

        kind = shape.type_name
        converter: Callable[[Any], Any]
        if not hasattr(self._parser_class, f"_parse_{kind}"):
            converter = _identity
        elif kind == "structure":
            converter = _identity if shape.is_document_type else self._structure(shape)
        elif kind in ("map", "list"):
            cell: list[Callable[[Any], Any]] = []
            converter = self._map(cell) if kind == "map" else self._list(cell)
            self._compiled[_shape_key(shape)] = (shape, converter)
            if kind == "map":
                cell.extend((self.compile(shape.key), self.compile(shape.value)))
            else:
                cell.append(self.compile(shape.member))
            return converter
        elif kind == "blob":
            converter = default_blob_parser
        elif kind == "timestamp":
            converter = default_timestamp_parser
        elif kind in ("float", "double"):
            converter = float
        elif kind in ("integer", "long", "byte", "short"):
            converter = int
        else:
            raise _Unsupported(f"shape type {kind}")
        self._compiled[_shape_key(shape)] = (shape, converter)
        return converter

    def _structure(self, shape: Any) -> Callable[[Any], Any]:
        members: list[tuple[str, str, Callable[[Any], Any]]] = []
        map_type = self._map_type

        def convert(value: Any) -> Any:
            if value is None:
                return None
            parsed = map_type()
            for name, json_name, member in members:
                raw = value.get(json_name)
                if raw is not None:
                    parsed[name] = member(raw)
            return parsed

        self._compiled[_shape_key(shape)] = (shape, convert)
        for name, member_shape in shape.members.items():
            members.append((name, member_shape.serialization.get("name", name), self.compile(member_shape)))
        return convert

    def _map(self, cell: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
        map_type = self._map_type

        def convert(value: Any) -> Any:
            key_of, member = cell
            parsed = map_type()
            for key, item in value.items():
                parsed[key_of(key)] = member(item)
            return parsed

        return convert

    @staticmethod
    def _list(cell: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
        def convert(value: Any) -> Any:
            member = cell[0]
            return [member(item) for item in value]

        return convert


class _Requests:
    def __init__(self) -> None:
        self._by_operation: dict[tuple[int, type], tuple[Any, Callable[[Any], Any] | None]] = {}

    def reader(self, operation_model: Any, parser_class: type, map_type: type) -> Callable[[Any], Any] | None:
        key = (id(operation_model), map_type)
        known = self._by_operation.get(key)
        if known is not None:
            return known[1]
        reader: Callable[[Any], Any] | None
        try:
            shape = operation_model.input_shape
            reader = RequestCompiler(parser_class, map_type).compile(shape) if shape is not None else None
        except _Unsupported:
            reader = None
        self._by_operation[key] = (operation_model, reader)
        return reader


requests = _Requests()


def _decoded_json(body: Any) -> Any:
    """What moto's JSON parser reads a request body as (BaseJSONParser._parse_body_as_json)."""
    if not body:
        return {}
    try:
        text = body.decode("utf-8")
    except (UnicodeDecodeError, AttributeError):
        text = body
    try:
        return json.loads(text)
    except ValueError:
        return {"message": text}


def parse_parameters(stock: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """moto's BaseResponse.parse_parameters, with a compiled reader for DynamoDB's JSON requests."""
    from moto.core.parse import PROTOCOL_PARSERS, JSONParser
    from moto.core.request import determine_request_protocol
    from moto.core.responses import get_service_model

    def fast_parse_parameters(self: Any, request: Any) -> None:
        if self.service_name not in SERVICES:
            return stock(self, request)
        service_model = get_service_model(self.boto3_service_name)
        operation_model = service_model.operation_model(self._get_action())
        if PROTOCOL_PARSERS[determine_request_protocol(service_model, request.content_type)] is not JSONParser:
            return stock(self, request)
        reader = requests.reader(operation_model, JSONParser, self.PROTOCOL_PARSER_MAP_TYPE)
        if reader is None:
            return stock(self, request)
        try:
            parsed = reader(_decoded_json(request.data))
        except Exception:  # noqa: BLE001 - moto's parser raises it, or answers, as it would
            return stock(self, request)
        self.params = parsed
        return None

    return fast_parse_parameters


# --- dispatch --------------------------------------------------------------------------------

# X-Amz-Target prefix: (the service the request must be signed for, moto's backend).
_HANDLERS = {
    "DynamoDB_20120810": ("dynamodb", "dynamodb"),
    "DynamoDBStreams_20120810": ("dynamodb", "dynamodbstreams"),
    "AmazonSQS": ("sqs", "sqs"),
    "AWSEvents": ("events", "events"),
}


def direct_backend_of(environ: dict[str, Any]) -> str | None:
    """The backend ("dynamodb", "dynamodbstreams", "sqs", "events") when moto's server would route
    this JSON-protocol request to that backend's handler on its route "/", else None (then moto's
    server is asked)."""
    target = environ.get("HTTP_X_AMZ_TARGET") or ""
    prefix, dot, _ = target.partition(".")
    handled = _HANDLERS.get(prefix)
    if (
        handled is None
        or environ.get("REQUEST_METHOD") != "POST"
        or environ.get("PATH_INFO") != "/"
        or environ.get("QUERY_STRING")
        # Flask-CORS answers these with more than its wildcard (see DynamoDBDispatch).
        or "HTTP_ORIGIN" in environ
        or "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK" in environ
    ):
        return None
    # moto's DomainDispatcherApplication picks the backend by the signature's service.
    try:
        scope = str(environ["HTTP_AUTHORIZATION"]).split(",")[0].split()[1]
        _, _, _, service, _ = scope.split("/")
    except (KeyError, IndexError, ValueError):
        return None
    signed_for, backend = handled
    return backend if service.lower() == signed_for else None


def dynamodb_backend_of(environ: dict[str, Any]) -> str | None:
    """ "dynamodb" or "dynamodbstreams" when moto's server would route this request to that
    backend's one route ("/"), else None."""
    backend = direct_backend_of(environ)
    return backend if backend in SERVICES else None


# What moto's Request.raw_url (werkzeug's url_root, moto's raw_path and the query) is made of.
_URL_ENVIRON = (
    "wsgi.url_scheme",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "RAW_URI",
    "PATH_INFO",
    "QUERY_STRING",
)


class DynamoDBDispatch:
    """A WSGI app: DynamoDB's, DynamoDB Streams', SQS's and EventBridge's JSON requests go straight
    to moto's handler class for them (`dispatch`, as moto's Flask view calls it, with the same
    request class), and the reply is written as Flask writes it; every other request goes to
    `app` (moto's server).

    What is skipped is routing: the domain dispatcher's inference of the service from the
    signature (repeated here in `direct_backend_of`), Flask's request context, URL matching and
    response finalisation. A request Flask would answer itself (a werkzeug HTTP error raised
    before moto's handler ran) is handed to `app` from the start."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._handlers: dict[str, Any] = {}
        self._urls: dict[tuple[Any, ...], str] = {}

    def _handler(self, backend: str) -> Any:
        handler = self._handlers.get(backend)
        if handler is None:
            if backend == "dynamodb":
                from moto.dynamodb.responses import DynamoHandler as handler
            elif backend == "dynamodbstreams":
                from moto.dynamodbstreams.responses import DynamoDBStreamsHandler as handler
            elif backend == "sqs":
                from moto.sqs.responses import SQSResponse as handler
            else:
                from moto.events.responses import EventsHandler as handler
            self._handlers[backend] = handler
        return handler

    def _raw_url(self, request: Any) -> str:
        """moto's `request.raw_url`, remembered: werkzeug works out the URL's root (host checks,
        IRI conversion) from these environ values alone, and every client sends the same few."""
        environ = request.environ
        key = tuple(environ.get(name) for name in _URL_ENVIRON)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= 1000:
                self._urls.clear()
            url = self._urls[key] = str(request.raw_url)
        return url

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        import io

        backend = direct_backend_of(environ)
        stream = environ.get("wsgi.input")
        if backend is None or type(stream) is not io.BytesIO:
            return self._app(environ, start_response)
        from botocore.exceptions import ClientError
        from flask import Response
        from moto.moto_api import recorder
        from moto.moto_server.werkzeug_app import BackendRequest
        from moto.settings import DISABLE_GLOBAL_CORS
        from werkzeug.exceptions import HTTPException

        position = stream.tell()
        try:
            request = BackendRequest(environ)
            recorder._record_request(request)  # noqa: SLF001 - what moto's Flask view does first
            try:
                result = self._handler(backend).dispatch(request, self._raw_url(request), dict(request.headers))
            except ClientError as error:
                result = 400, {}, error.response["Error"]["Message"]
        except HTTPException:
            stream.seek(position)
            return self._app(environ, start_response)
        if len(result) == 3:
            status, headers, content = result
        else:
            status, headers, content = 200, {}, result
        reply = Response(response=content, status=status, headers=headers)
        # moto's app runs Flask-CORS on every route; to a request without an Origin it adds the
        # wildcard alone, unless the reply has an allowed origin already.
        if not DISABLE_GLOBAL_CORS and not reply.headers.get("Access-Control-Allow-Origin"):
            reply.headers.add("Access-Control-Allow-Origin", "*")
        return reply(environ, start_response)
