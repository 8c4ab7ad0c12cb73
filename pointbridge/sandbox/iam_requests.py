"""What an AWS request asks IAM for, read from the signed HTTP request itself, and AWS's refusal.

A request is read as the service receives it: who signed it (the access key in the SigV4
credential scope), which operation it is (the `X-Amz-Target` header, the query `Action`, or an S3
method and path), and which IAM actions on which resource ARNs it needs. Some operations need
several: a TransactWriteItems needs dynamodb:PutItem / UpdateItem / DeleteItem /
ConditionCheckItem on the table of each of its actions (and no "dynamodb:TransactWriteItems",
which is not an IAM action), a TransactGetItems needs dynamodb:GetItem per table, a
BatchGetItem / BatchWriteItem needs dynamodb:BatchGetItem / BatchWriteItem on each table it names,
an SQS SendMessageBatch needs sqs:SendMessage, an S3 CopyObject needs s3:PutObject on the target
and s3:GetObject on the source.

An operation this module cannot map to actions and resources is reported as unmapped, and the
enforcer refuses it for a function (fail closed) with a message that says so.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_S3_HOST = re.compile(r"^(?P<bucket>.+)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?::\d+)?$")


@dataclass(frozen=True)
class Authorization:
    """One permission a request needs: an IAM action on a resource ARN."""

    action: str
    resource: str


@dataclass(frozen=True)
class AwsRequest:
    """An HTTP request to an AWS endpoint. `path` is percent-decoded; `query` is the raw query string."""

    method: str
    host: str
    path: str
    query: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""

    @classmethod
    def from_url(cls, method: str, url: str, headers: Mapping[str, str | bytes], body: bytes = b"") -> AwsRequest:
        split = urlsplit(url)
        return cls(
            method.upper(),
            split.netloc,
            unquote(split.path) or "/",
            split.query,
            {k.lower(): v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in headers.items()},
            body,
        )

    def credential(self) -> tuple[str, str, str] | None:
        """(access key id, region, signing service) from the SigV4 signature, header or presigned URL."""
        source = self.headers.get("authorization", "")
        if "Credential=" not in source:
            presigned = parse_qs(self.query).get("X-Amz-Credential")
            source = f"Credential={presigned[0]}" if presigned else ""
        found = _CREDENTIAL.search(source)
        if found is None:
            return None
        return found.group(1), found.group(3), found.group(4)

    def params(self) -> dict[str, Any]:
        """The JSON body of a JSON-protocol request, or the form fields of a query-protocol one."""
        if "x-amz-target" in self.headers:
            try:
                parsed = json.loads(self.body or b"{}")
            except ValueError:
                return {}
            return parsed if isinstance(parsed, dict) else {}
        form = parse_qs(self.body.decode("utf-8", "replace")) if self.body else {}
        form |= {k: v for k, v in parse_qs(self.query).items() if k not in form}
        return {k: v[0] for k, v in form.items()}


@dataclass(frozen=True)
class Described:
    """What one request is, and what it needs. `unmapped` says why the needs are not known."""

    service: str
    operation: str
    protocol: str  # json, query, rest-xml, rest-json
    authorizations: tuple[Authorization, ...] = ()
    unmapped: str | None = None


@dataclass(frozen=True)
class _Context:
    region: str
    account: str
    params: dict[str, Any] = field(default_factory=dict)


def describe(request: AwsRequest, service: str, region: str, account: str) -> Described:
    target = request.headers.get("x-amz-target", "")
    if target:
        operation = target.rsplit(".", 1)[-1]
        protocol = "json"
    elif service == "s3":
        return _s3(request)
    else:
        operation = str(request.params().get("Action", ""))
        protocol = "query" if operation else "rest-json"
    if not operation:
        return Described(service, f"{request.method} {request.path}", protocol, unmapped="an unknown operation")
    if target.startswith("DynamoDBStreams_"):
        service = "dynamodb"
    mapper = _MAPPERS.get(service)
    if mapper is None:
        return Described(service, operation, protocol, unmapped=f"{service} requests are not mapped")
    try:
        needs = list(dict.fromkeys(mapper(operation, _Context(region, account, request.params()))))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Described(service, operation, protocol, unmapped=f"its parameters could not be read ({exc!r})")
    if not needs:
        return Described(service, operation, protocol, unmapped=f"{service}:{operation} is not mapped")
    return Described(service, operation, protocol, tuple(needs))


# -- DynamoDB (and DynamoDB Streams, which signs as dynamodb) ---------------------------------------

_TRANSACT_WRITE = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_UNSCOPED_DYNAMODB = {"ListTables", "ListStreams", "DescribeLimits", "ListBackups", "ListGlobalTables"}


def _dynamodb(operation: str, ctx: _Context) -> Iterator[Authorization]:
    p = ctx.params

    def table(name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:dynamodb:{ctx.region}:{ctx.account}:table/{name}"

    if operation == "TransactWriteItems":
        for item in p["TransactItems"]:
            for kind, body in item.items():
                yield Authorization(f"dynamodb:{_TRANSACT_WRITE[kind]}", table(body["TableName"]))
    elif operation == "TransactGetItems":
        for item in p["TransactItems"]:
            yield Authorization("dynamodb:GetItem", table(item["Get"]["TableName"]))
    elif operation in ("BatchGetItem", "BatchWriteItem"):
        for name in p["RequestItems"]:
            yield Authorization(f"dynamodb:{operation}", table(name))
    elif operation in ("Query", "Scan") and p.get("IndexName"):
        yield Authorization(f"dynamodb:{operation}", f"{table(p['TableName'])}/index/{p['IndexName']}")
    elif "TableName" in p:
        yield Authorization(f"dynamodb:{operation}", table(p["TableName"]))
    elif "StreamArn" in p:
        yield Authorization(f"dynamodb:{operation}", p["StreamArn"])
    elif "ResourceArn" in p:
        yield Authorization(f"dynamodb:{operation}", p["ResourceArn"])
    elif operation in _UNSCOPED_DYNAMODB:
        yield Authorization(f"dynamodb:{operation}", "*")


# -- SQS ------------------------------------------------------------------------------------------

# Batch operations are authorised by their single-message action (SendMessageBatch -> sqs:SendMessage).
_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _sqs(operation: str, ctx: _Context) -> Iterator[Authorization]:
    p = ctx.params
    action = f"sqs:{_SQS_BATCH.get(operation, operation)}"
    if "QueueUrl" in p:
        account, name = urlsplit(str(p["QueueUrl"])).path.strip("/").split("/")[-2:]
        yield Authorization(action, f"arn:aws:sqs:{ctx.region}:{account}:{name}")
    elif "QueueName" in p:
        account = str(p.get("QueueOwnerAWSAccountId") or ctx.account)
        yield Authorization(action, f"arn:aws:sqs:{ctx.region}:{account}:{p['QueueName']}")
    elif operation == "ListQueues":
        yield Authorization(action, "*")


# -- SSM Parameter Store ----------------------------------------------------------------------------


def _ssm(operation: str, ctx: _Context) -> Iterator[Authorization]:
    p = ctx.params

    def parameter(name: str) -> str:
        if name.startswith("arn:"):
            return name
        # `name:3` or `name:label` selects a version; IAM authorises the parameter itself.
        name = name.split(":", 1)[0]
        # A name that starts with "/" keeps it as the ARN's separator: parameter/a/b, not parameter//a/b.
        return f"arn:aws:ssm:{ctx.region}:{ctx.account}:parameter/{name.removeprefix('/')}"

    if "Name" in p:
        yield Authorization(f"ssm:{operation}", parameter(str(p["Name"])))
    elif "Names" in p:
        for name in p["Names"]:
            yield Authorization(f"ssm:{operation}", parameter(str(name)))
    elif operation == "GetParametersByPath":
        yield Authorization(f"ssm:{operation}", parameter(str(p["Path"])))
    elif operation == "DescribeParameters":
        yield Authorization(f"ssm:{operation}", "*")


# -- Secrets Manager --------------------------------------------------------------------------------


def _secretsmanager(operation: str, ctx: _Context) -> Iterator[Authorization]:
    secret = ctx.params.get("SecretId")
    if secret is None:
        if operation in ("ListSecrets", "GetRandomPassword", "CreateSecret"):
            yield Authorization(f"secretsmanager:{operation}", "*")
        return
    secret = str(secret)
    if not secret.startswith("arn:"):
        # By name: AWS authorises the secret's full ARN, whose random suffix the request does not carry.
        secret = f"arn:aws:secretsmanager:{ctx.region}:{ctx.account}:secret:{secret}-??????"
    yield Authorization(f"secretsmanager:{operation}", secret)


# -- EventBridge ------------------------------------------------------------------------------------


def _events(operation: str, ctx: _Context) -> Iterator[Authorization]:
    def bus(name: str | None) -> str:
        name = name or "default"
        return name if name.startswith("arn:") else f"arn:aws:events:{ctx.region}:{ctx.account}:event-bus/{name}"

    if operation == "PutEvents":
        for entry in ctx.params["Entries"]:
            yield Authorization("events:PutEvents", bus(entry.get("EventBusName")))
    elif operation in ("DescribeEventBus", "CreateEventBus", "DeleteEventBus"):
        yield Authorization(f"events:{operation}", bus(ctx.params.get("Name")))


# -- KMS --------------------------------------------------------------------------------------------


def _kms(operation: str, ctx: _Context) -> Iterator[Authorization]:
    key = ctx.params.get("KeyId")
    if key is None:
        if operation in ("CreateKey", "ListKeys", "ListAliases"):
            yield Authorization(f"kms:{operation}", "*")
        return
    key = str(key)
    if key.startswith("arn:"):
        yield Authorization(f"kms:{operation}", key)
    elif key.startswith("alias/"):
        # IAM authorises the key the alias points to, which the request does not name: not emulated.
        return
    else:
        yield Authorization(f"kms:{operation}", f"arn:aws:kms:{ctx.region}:{ctx.account}:key/{key}")


_MAPPERS: dict[str, Callable[[str, _Context], Iterator[Authorization]]] = {
    "dynamodb": _dynamodb,
    "sqs": _sqs,
    "ssm": _ssm,
    "secretsmanager": _secretsmanager,
    "events": _events,
    "kms": _kms,
}


# -- S3 (REST: the operation is the method, the path and the sub-resource in the query) ----------


def _bucket_and_key(request: AwsRequest) -> tuple[str, str]:
    virtual = _S3_HOST.match(request.host)
    if virtual is not None:
        return virtual.group("bucket"), request.path.removeprefix("/")
    bucket, _, key = request.path.removeprefix("/").partition("/")
    return bucket, key


_S3_OBJECT_SUBRESOURCES = {
    ("GET", "tagging"): "s3:GetObjectTagging",
    ("PUT", "tagging"): "s3:PutObjectTagging",
    ("DELETE", "tagging"): "s3:DeleteObjectTagging",
    ("GET", "acl"): "s3:GetObjectAcl",
    ("PUT", "acl"): "s3:PutObjectAcl",
    ("GET", "uploadId"): "s3:ListMultipartUploadParts",
    ("DELETE", "uploadId"): "s3:AbortMultipartUpload",
    ("PUT", "uploadId"): "s3:PutObject",
    ("POST", "uploadId"): "s3:PutObject",
    ("POST", "uploads"): "s3:PutObject",
}
_S3_BUCKET_SUBRESOURCES = {
    ("GET", "versions"): "s3:ListBucketVersions",
    ("GET", "uploads"): "s3:ListBucketMultipartUploads",
    ("GET", "location"): "s3:GetBucketLocation",
    ("GET", "notification"): "s3:GetBucketNotification",
    ("PUT", "notification"): "s3:PutBucketNotification",
    ("GET", "versioning"): "s3:GetBucketVersioning",
    ("PUT", "versioning"): "s3:PutBucketVersioning",
    ("GET", "policy"): "s3:GetBucketPolicy",
    ("PUT", "policy"): "s3:PutBucketPolicy",
}


_S3_LISTING = {
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "marker",
    "continuation-token",
    "start-after",
    "encoding-type",
    "fetch-owner",
}


def _s3(request: AwsRequest) -> Described:
    bucket, key = _bucket_and_key(request)
    method = "GET" if request.method == "HEAD" else request.method
    query = parse_qs(request.query, keep_blank_values=True)
    operation = f"{request.method} /{bucket}{'/' + key if key else ''}{'?' + request.query if request.query else ''}"
    if not bucket:
        needs: tuple[Authorization, ...] = (Authorization("s3:ListAllMyBuckets", "*"),) if method == "GET" else ()
    elif key:
        needs = _s3_object(request, method, query, f"arn:aws:s3:::{bucket}/{key}")
    else:
        needs = _s3_bucket(request, method, query, f"arn:aws:s3:::{bucket}")
    if not needs:
        return Described("s3", operation, "rest-xml", unmapped="this S3 request is not mapped")
    return Described("s3", operation, "rest-xml", needs)


def _s3_object(request: AwsRequest, method: str, query: dict[str, list[str]], arn: str) -> tuple[Authorization, ...]:
    for (verb, name), action in _S3_OBJECT_SUBRESOURCES.items():
        if verb == method and name in query:
            return (Authorization(action, arn),)
    versioned = "versionId" in query
    if method == "GET":
        return (Authorization("s3:GetObjectVersion" if versioned else "s3:GetObject", arn),)
    if method == "DELETE":
        return (Authorization("s3:DeleteObjectVersion" if versioned else "s3:DeleteObject", arn),)
    if method != "PUT":
        return ()
    source = request.headers.get("x-amz-copy-source")
    if not source:
        return (Authorization("s3:PutObject", arn),)
    # CopyObject: a put of the target and a read of the source.
    source_path, _, source_query = unquote(source).partition("?")
    read = "s3:GetObjectVersion" if "versionId=" in source_query else "s3:GetObject"
    return Authorization("s3:PutObject", arn), Authorization(read, f"arn:aws:s3:::{source_path.removeprefix('/')}")


def _s3_bucket(request: AwsRequest, method: str, query: dict[str, list[str]], arn: str) -> tuple[Authorization, ...]:
    for (verb, name), action in _S3_BUCKET_SUBRESOURCES.items():
        if verb == method and name in query:
            return (Authorization(action, arn),)
    if method == "POST" and "delete" in query:
        return tuple(Authorization("s3:DeleteObject", f"{arn}/{k}") for k in _keys_to_delete(request.body))
    if method == "GET" and not query.keys() - _S3_LISTING:
        return (Authorization("s3:ListBucket", arn),)
    if method in ("PUT", "DELETE") and not query:
        return (Authorization("s3:CreateBucket" if method == "PUT" else "s3:DeleteBucket", arn),)
    return ()


def _keys_to_delete(body: bytes) -> list[str]:
    keys = []
    for element in ElementTree.fromstring(body or b"<Delete/>").iter():
        if element.tag.rsplit("}", 1)[-1] == "Key" and element.text:
            keys.append(element.text)
    return keys


# -- AWS's refusal, in each protocol's shape --------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def access_denied(described: Described, request: AwsRequest, message: str) -> Reply:
    """AccessDenied as the service answers it: status, error code and body differ by protocol."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id}
    if described.protocol == "json":
        content_type = request.headers.get("content-type") or "application/x-amz-json-1.0"
        headers["Content-Type"] = content_type
        if described.service == "sqs":
            # SQS answers in JSON but keeps its query-era error code for the SDKs: AccessDenied, 403.
            headers["x-amzn-query-error"] = "AccessDenied;Sender"
            body = {"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}
            return Reply(403, headers, json.dumps(body).encode())
        if content_type.endswith("1.0"):
            body = {"__type": "com.amazon.coral.service#AccessDeniedException", "Message": message}
        else:
            body = {"__type": "AccessDeniedException", "message": message}
        return Reply(400, headers, json.dumps(body).encode())
    if described.protocol == "rest-xml":
        headers |= {"Content-Type": "application/xml", "x-amz-request-id": request_id[:16].upper()}
        if request.method == "HEAD":
            return Reply(403, headers, b"")
        return Reply(403, headers, _xml("Error", Code="AccessDenied", Message=message, RequestId=request_id))
    if described.protocol == "query":
        headers["Content-Type"] = "text/xml"
        error = _xml("Error", Type="Sender", Code="AccessDenied", Message=message).decode()
        return Reply(
            403, headers, f"<ErrorResponse>{error}<RequestId>{request_id}</RequestId></ErrorResponse>".encode()
        )
    headers |= {"Content-Type": "application/json", "x-amzn-ErrorType": "AccessDeniedException"}
    return Reply(403, headers, json.dumps({"Message": message}).encode())


def _xml(tag: str, **children: str) -> bytes:
    root = ElementTree.Element(tag)
    for name, text in children.items():
        ElementTree.SubElement(root, name).text = text
    return ElementTree.tostring(root)
