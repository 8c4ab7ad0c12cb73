"""What differential tests of the sandbox's moto patches share: one request run through moto as it
ships or through the patches, a WSGI app called as the emulator's server calls it, and a small
table with a stream."""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pointbridge.sandbox import moto_speedups

if TYPE_CHECKING:
    from collections.abc import Callable


def run_as(variant: str, call: Callable[[], Any]) -> tuple[str, Any]:
    """Run a request with moto's own code ("stock") or the speedups ("fast"); the reply or error.

    moto's own crashes (an undefined #name raises a KeyError) are compared too, by type and text."""
    with moto_speedups.without_speedups() if variant == "stock" else contextlib.nullcontext():
        try:
            reply = call()
            reply.pop("ResponseMetadata", None)
            return "ok", reply
        except ClientError as error:
            return error.response["Error"]["Code"], (
                error.response.get("CancellationReasons") or error.response["Error"].get("Message")
            )
        except Exception as error:  # noqa: BLE001 - compared, not raised
            return "raised", f"{type(error).__name__}: {error}"


def call_wsgi(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status, headers and the whole body, as the emulator's server drains them; a raise as its 500."""
    reply: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        reply["status"], reply["headers"] = status, headers
        return lambda data: None

    try:
        result = app(environ, start_response)
    except Exception as error:  # noqa: BLE001 - the emulator's server answers it with a 500
        return "500 (raised)", [], f"{type(error).__name__}: {error}".encode()
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return reply["status"], list(reply["headers"]), body


def stream_table(ddb: Any, view: str = "NEW_AND_OLD_IMAGES", name: str = "t") -> str:
    """A table keyed by `pk` with a stream of `view`; the stream's ARN."""
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
    )
    return str(ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"])


def json_environ(
    target: str, body: bytes, *, region: str, service: str, json_version: str = "1.0", **headers: str
) -> dict[str, Any]:
    """The WSGI environ of a JSON-protocol POST as boto3 signs it (`headers`: more HTTP_* entries)."""
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "4566",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_TYPE": f"application/x-amz-json-{json_version}",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:4566",
        "HTTP_X_AMZ_TARGET": target,
        **headers,
        "HTTP_USER_AGENT": "Boto3/1.35 md/Botocore#1.35 ua/2.0 os/linux",
        "HTTP_AUTHORIZATION": (
            f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261207/{region}/{service}/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0123456789abcdef"
        ),
        "HTTP_X_AMZ_DATE": "20261207T120000Z",
    }


def keyed_tables(ddb: Any, names: tuple[str, ...], *, index: str | None = None) -> None:
    """Tables keyed by PK and SK, with a stream of both images (and `index`, hashed on `<index>PK`):
    one for each side of a differential test, alike but for their names."""
    attributes = ["PK", "SK", *([f"{index}PK"] if index else [])]
    indexes = [
        {
            "IndexName": index,
            "KeySchema": [{"AttributeName": f"{index}PK", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }
    ]
    for name in names:
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attributes],
            **({"GlobalSecondaryIndexes": indexes} if index else {}),
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
