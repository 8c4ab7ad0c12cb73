"""The sandbox's IAM enforcement (iam.py) for boto3 clients in this process, e.g. under moto's `mock_aws`.

Two hooks into botocore, both installed by `install()`:

- moto's `before-send` stubber goes behind a gate: the gate sees the signed HTTP request, as AWS
  would receive it, and answers AWS's AccessDenied when the function that signed it may not make
  it. botocore calls every `before-send` handler and keeps the first answer, so a separate gate
  would only hide moto's answer, not stop moto applying the request: the gate wraps the stubber,
  and moto never sees a refused request;
- while code runs `acting_as(principal)` (a Lambda handler called in-process, say), every client in
  this process signs with that function's key, whenever the client was built, as a Lambda
  instance's clients all sign with its role's credentials. Outside, clients sign as they did.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pointbridge.sandbox.iam import Enforcer, Principal
from pointbridge.sandbox.iam_requests import AwsRequest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from botocore.awsrequest import AWSPreparedRequest, AWSResponse

enforcer = Enforcer()
_acting: ContextVar[Principal | None] = ContextVar("pointbridge_iam_acting", default=None)
_installed = False


class _Body(io.BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.read()


def _refusal(request: AWSPreparedRequest) -> AWSResponse | None:
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    body = request.body
    raw = body.encode() if isinstance(body, str) else body if isinstance(body, bytes | bytearray) else b""
    aws = AwsRequest.from_url(request.method, request.url, dict(request.headers.items()), bytes(raw))
    refusal = enforcer.check(aws)
    if refusal is None:
        return None
    headers = HTTPHeaders()
    for name, value in refusal.headers.items():
        headers[name] = value
    return AWSResponse(request.url, refusal.status, headers, _Body(refusal.body))


class _Gate:
    """moto's stubber, reached only by the requests IAM allows (the others get AWS's refusal)."""

    def __init__(self, stubber: Any) -> None:
        self.stubber = stubber

    def __call__(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
        # Only in front of moto in this process: a request that goes out over HTTP (to a sandbox's
        # emulator, say) is checked where it arrives.
        refusal = _refusal(request) if getattr(self.stubber, "enabled", False) else None
        if refusal is not None:
            return refusal
        answer: AWSResponse | None = self.stubber(request=request, **kwargs)
        return answer


def install() -> None:
    """Hook botocore in this process (idempotent). Clients built afterwards pass through the gate."""
    global _installed
    if _installed:
        return
    from botocore import credentials, handlers
    from moto.core.models import botocore_stubber  # registers moto's stubber, which the gate then wraps

    for index, (event, handler, *rest) in enumerate(handlers.BUILTIN_HANDLERS):
        if event == "before-send" and handler is botocore_stubber:
            handlers.BUILTIN_HANDLERS[index] = (event, _Gate(handler), *rest)

    for cls in (credentials.Credentials, credentials.RefreshableCredentials):
        _sign_as_acting_principal(cls)
    _installed = True


def _sign_as_acting_principal(cls: Any) -> None:
    from botocore.credentials import ReadOnlyCredentials

    frozen = cls.get_frozen_credentials

    def get_frozen_credentials(self: Any) -> Any:
        principal = _acting.get()
        if principal is None:
            return frozen(self)
        return ReadOnlyCredentials(principal.access_key_id, principal.secret_access_key, None)

    cls.get_frozen_credentials = get_frozen_credentials


@contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Run the block as `principal`: its AWS calls are signed with its key and checked against its policy."""
    install()
    enforcer.policies.add(principal)
    token = _acting.set(principal)
    try:
        yield
    finally:
        _acting.reset(token)
