"""The OpenAPI document, the contract partners code against: generated, finished here, committed.

Powertools generates the paths and schemas from the routes and their pydantic models. `document`
finishes that once, in this one place: each operation's problem replies (its codes from
`functions.api.operations`, their meanings from `functions.api.refusals`) instead of powertools'
422 `HTTPValidationError` (the API answers 400 problems), who may call it, the `Idempotency-Key`
header on mutations, tags, operation ids and summaries from the route functions, and servers that
work wherever the document is served. `site` is what API Gateway serves from the docs bucket
(written at deployment by functions.docs): `/openapi.json`, and Swagger UI on it at `/docs`;
`openapi.json` at the repository root is the committed copy, which tests keep equal to both.

Regenerate the committed copy: `python -m functions.api.openapi` (`--check` only compares).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from dataclasses import dataclass, field
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler.openapi import swagger_ui

from functions.api.context import MAX_IDEMPOTENCY_KEY, MUTATING
from functions.api.operations import OPERATIONS, Tag
from functions.api.refusals import KEY_REFUSALS, REFUSALS, Refusal
from functions.permissions import PERMISSIONS, who
from functions.problems import PROBLEM_JSON, TYPE_BASE

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

TITLE = "Pointbridge API"
VERSION = "1"
COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"
SCHEMAS = "#/components/schemas/"
RESPONSES = "#/components/responses/"
API_KEY = "apiKey"
JSON = "application/json"

INTRO = """\
One loyalty-points ledger for every channel: members' balances and statements, redemption, \
checkout holds, gifts, draws, partner exchange and transfers, and operators' configuration and \
figures.

**Keys.** Every operation but `GET /health` (and this document, `GET /openapi.json`, with `GET /docs`) \
needs an API key in the `x-api-key` header. API Gateway's authorizer resolves it to a principal: a member, a channel \
(a shop, a till, the brand's app backend), a partner, or an admin in one role (operator, support, \
auditor), each with the programs (and a partner's agreements) it may touch. A missing, malformed, \
unknown, expired or revoked key is a `401` problem from API Gateway before the API runs \
(`key_missing`, `key_invalid`, `key_expired`, `key_revoked`). Each operation says who may call it, \
from one permission table (docs/api.md); any other caller is a `403` problem with code \
`forbidden`, decided before anything about the target is read.

**Errors.** Every refusal by the API is `application/problem+json` (RFC 9457) with `type`, \
`title`, `status`, `detail` and a stable `code`: branch on `code`, show `detail` to people. Each \
operation lists the codes it can answer with, by status, with an example of each. A refused \
request moved no points. A path no operation has is `404` `no_such_route` (after the key check). A \
`5xx` other than the documented `503` `contention` is a fault on our side (API Gateway answers \
`502` when the API function fails).

**Retries.** Mutations that move points carry the caller's own id (`reference`, `transfer_id`, \
or the quote's or hold's id in the path), under which the ledger posts once. A reference is the \
caller's alone, for that member: another caller's (or another member's) identical reference is \
another operation, and a hold is found by its reference only by the caller that placed it. A \
published configuration carries its `version`. Every `POST`/`PUT` also takes an \
`Idempotency-Key` header, claimed before the request runs and under which the first successful \
reply is stored and replayed (see the header).

**Values.** Points are whole numbers. Money, rates and shares are decimal strings (`"12.50"`), \
never floats. Times are ISO 8601 with an offset; dates are ISO 8601 dates."""

SERVERS: list[dict[str, Any]] = [
    {
        "url": ".",
        "description": (
            "Where this document is served from: `/openapi.json` sits at the API's root, so Try it out in "
            "`/docs` calls the same API, whether the sandbox's local URL or an API Gateway stage."
        ),
    },
    {
        "url": "https://{api}.execute-api.{region}.amazonaws.com/{stage}",
        "description": "A deployed stage, addressed directly.",
        "variables": {
            "api": {"default": "api-id", "description": "The REST API's id (the stack's PointsApi)."},
            "region": {"default": "us-east-1", "description": "The AWS region of the stack."},
            "stage": {"default": "Prod", "description": "The API Gateway stage (template.yaml: Prod)."},
        },
    },
]

SECURITY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "x-api-key",
    "description": (
        "An API key (`pb_<key id>_<secret>`) that an operator minted with `POST /admin/keys` (or "
        "`pointbridge keys create`). API Gateway's authorizer resolves it to a principal: its kind "
        "(member, channel, partner or admin), an admin's role, its id, and the programs and agreements it may "
        "touch. Only the key's hash is stored; keys expire and can be revoked and rotated."
    ),
}

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes a retry of this request safe. The key is claimed for the calling principal (with the "
        "request's method, path and body) before the request runs, so of concurrent requests under one key "
        "exactly one runs: another request under the key is a `409` `idempotency_conflict`, the same one "
        "while the first still runs a `409` `idempotency_in_progress` (retry in a moment). The first "
        "successful (2xx) reply is stored, without expiry; the same request sent again under the key gets "
        "that reply again, with `Idempotent-Replayed: true`, and does nothing else. A refusal (4xx) is not "
        "stored: it wrote nothing, so the claim is given back and a retry is evaluated afresh. The body is "
        "validated before the key is claimed. A reply that holds a secret shown once (`POST /admin/keys`, "
        "`.../rotate`) is stored without it: a retry is a `409` `secret_not_replayed`. At most "
        f"{MAX_IDEMPOTENCY_KEY} characters (`400` `invalid_input`)."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
}

IDEMPOTENT_REPLAYED = {
    "description": (
        "`true` when this reply is the stored reply to an earlier request under the same `Idempotency-Key`; "
        "absent on a first reply."
    ),
    "schema": {"type": "string", "enum": ["true"]},
}


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _integer(description: str) -> dict[str, Any]:
    return {"type": "integer", "description": description}


PROBLEM_SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "title": "Problem",
        "description": (
            "An RFC 9457 problem (`application/problem+json`): why a request was refused. Branch on `code`; "
            "`detail` is for people. Some problems carry more fields naming what the refusal concerns "
            "(below; each operation's examples show which)."
        ),
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "description": f"Names the problem: `{TYPE_BASE}` followed by `code`.",
            },
            "title": _string("The HTTP status's reason phrase."),
            "status": _integer("The HTTP status of the reply."),
            "detail": _string("What happened, in a sentence for people. Do not parse it."),
            "code": _string("The stable code to branch on; each operation lists the codes it can answer with."),
            "errors": {
                "type": "array",
                "items": {"$ref": SCHEMAS + "FieldError"},
                "description": (
                    "With `invalid_input` or `malformed_json` from the schema check: where the request failed "
                    "and why, never the input itself."
                ),
            },
            "survivor": _string("With `account_closed`: the member the closed account was merged into."),
            "member": _string("The member the refusal concerns."),
            "program": _string("With `unknown_program`: the program named."),
            "reward": _string("With `reward_unavailable`: the reward named, when the catalogue has none by that id."),
            "needed": _integer("With `insufficient_points`: the points the operation needs."),
            "available": _integer("With `insufficient_points`: the member's unexpired available points."),
            "hold": _integer("With `capture_exceeds_hold`: the points the hold reserved."),
            "lots": _integer("With `too_many_lots`: how many lots the debit would touch."),
            "key": _string("With `idempotency_conflict` or `secret_not_replayed`: the `Idempotency-Key` sent."),
            "entry_id": _string("With `idempotency_conflict` from the ledger: the entry the reference already posted."),
            "reasons": _string("With `invalid_config`: why the configuration failed validation."),
            "ended_at": _string("With `redemption_closed`: when the program ended (ISO 8601)."),
            "earning_ended_at": _string("With `earning_closed`: when the program stopped crediting (ISO 8601)."),
            "flag_status": _string("With `flag_already_decided`: the decision that closed the flag."),
            "attempts_left": _integer("With `wrong_code`: how many more guesses the code allows."),
            "retry_after": _integer(
                "With `too_many_codes`: seconds until codes may be asked for again (also `Retry-After`)."
            ),
            "start": _string("With `invalid_input` on a period: its first day."),
            "end": _string("With `invalid_input` on a period: its last day."),
            "days": _integer("With `invalid_input` on a period: how many days it covers."),
            "tier": _string("With `invalid_input` from a dry run: the tier named that the draft does not have."),
            "field": _string(
                "With `invalid_channel`, `channel_exists` or `invalid_input` on a file: the field refused "
                "(`id`, `program`, `secret`, `settings.<path>`, `name`)."
            ),
            "version": _integer("With `channel_changed`: the channel's current version."),
            "source": _string("With `channel_disabled`: the channel's id."),
            "queue": _string("With `unknown_dead_letter`: the dead-letter queue named."),
            "message_id": _string("With `redrive_failed`: the message, still in its dead-letter queue."),
        },
    },
    "FieldError": {
        "type": "object",
        "title": "FieldError",
        "description": "One place where the request failed the schema check.",
        "required": ["loc", "type", "msg"],
        "properties": {
            "loc": {
                "type": "array",
                "items": {"type": "string"},
                "description": (
                    "Where: `body`, `query`, `path` or `header`, then the field's path within it (for "
                    "`json_invalid`, the character offset where the JSON stopped parsing)."
                ),
            },
            "type": _string("pydantic's error type, e.g. `missing`, `int_parsing`, `extra_forbidden`, `json_invalid`."),
            "msg": _string("What is wrong, in a sentence for people."),
        },
    },
}


@cache
def served() -> APIGatewayRestResolver:
    """Every route API Gateway sends to a function: ApiFunction's and DrawFunction's, for the document.

    Copied route by route as powertools' include_router does, but without making this resolver the
    routers' own: include_router would, and the functions' resolvers would then read their requests
    from this one.
    """
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    from functions.api import app as api
    from functions.draws import app as draw

    whole = APIGatewayRestResolver(enable_validation=True)
    for router in (*api.ROUTERS, *draw.ROUTERS):
        for route, func in router._routes.items():
            whole.route(*route, middlewares=router._routes_with_middleware.get(route))(func)  # type: ignore[misc]
    return whole


def routes(app: APIGatewayRestResolver) -> dict[tuple[str, str], Callable[..., object]]:
    """(METHOD, path as the document spells it) -> route function, for every documented route."""
    # Powertools has no public listing of its routes; its own schema generator walks these two lists.
    registered = app._static_routes + app._dynamic_routes
    return {(r.method, r.openapi_path): r.func for r in registered if r.include_in_schema}


def document(app: APIGatewayRestResolver) -> dict[str, Any]:
    """The finished document, as `/openapi.json` serves it and `openapi.json` holds it."""
    generated = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION))
    functions = routes(app)
    undocumented = set(functions.values()) - set(OPERATIONS)
    if undocumented:
        names = ", ".join(sorted(f.__qualname__ for f in undocumented))
        raise LookupError(f"routes without a row in functions.api.operations.OPERATIONS: {names}")
    schemas = {
        name: schema
        for name, schema in generated["components"]["schemas"].items()
        # Powertools' validation replies; the API answers 400 problems (functions.problems) instead.
        if name not in ("HTTPValidationError", "ValidationError", "ResponseValidationError")
    }
    schemas.update(PROBLEM_SCHEMAS)
    used = _Used()
    paths = {
        path: {
            method: _operation(method.upper(), path, functions[(method.upper(), path)], generated_op, schemas, used)
            for method, generated_op in item.items()
        }
        for path, item in generated["paths"].items()
    }
    return {
        "openapi": generated["openapi"],
        "info": {"title": TITLE, "version": VERSION, "description": INTRO},
        "servers": SERVERS,
        "tags": [{"name": tag.label, "description": tag.description} for tag in Tag],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {
                "Unauthorized": _refusal(401, list(KEY_REFUSALS), gateway=True),
                **{_pascal(code): _refusal(REFUSALS[code].status, [REFUSALS[code]]) for code in sorted(used.alone)},
            },
            "examples": {
                code: {"summary": _sentence(REFUSALS[code].meaning), "value": REFUSALS[code].example()}
                for code in sorted(used.codes | {r.code for r in KEY_REFUSALS})
            },
            "parameters": {"IdempotencyKey": IDEMPOTENCY_KEY},
            "headers": {"IdempotentReplayed": IDEMPOTENT_REPLAYED},
            "securitySchemes": {API_KEY: SECURITY_SCHEME},
        },
    }


@cache
def text(app: APIGatewayRestResolver) -> str:
    """The document as served and committed: pretty-printed, keys in a fixed order, a final newline."""
    return json.dumps(document(app), indent=2, ensure_ascii=False) + "\n"


# The site API Gateway serves from the docs bucket: object key -> (Content-Type, bytes). The page sits
# at `<root>/docs`, so `docs/...` reaches its assets and `openapi.json` the document, both relative.
SITE_PREFIX = "docs/"
PAGE = SITE_PREFIX + "index.html"
DOCUMENT = SITE_PREFIX + "openapi.json"
SWAGGER_ASSETS = {"swagger-ui-bundle.min.js": "text/javascript; charset=utf-8", "swagger-ui.min.css": "text/css"}
_PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" type="text/css" href="docs/swagger-ui.min.css">
</head>
<body>
<div id="swagger-ui">Loading...</div>
<script src="docs/swagger-ui-bundle.min.js"></script>
<script>
SwaggerUIBundle({{
  url: "openapi.json",
  dom_id: "#swagger-ui",
  docExpansion: "list",
  deepLinking: true,
  filter: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}});
</script>
</body>
</html>
"""


def site(app: APIGatewayRestResolver) -> dict[str, tuple[str, bytes]]:
    """Swagger UI's page and assets (bundled inside powertools: no CDN) and the document."""
    assets = Path(swagger_ui.__file__).parent
    files = {
        PAGE: ("text/html; charset=utf-8", _PAGE_HTML.format(title=TITLE).encode()),
        DOCUMENT: (JSON, text(app).encode()),
    }
    for name, content_type in SWAGGER_ASSETS.items():
        files[SITE_PREFIX + name] = (content_type, (assets / name).read_bytes())
    return files


def _operation(
    method: str,
    path: str,
    route: Callable[..., object],
    generated: dict[str, Any],
    schemas: dict[str, Any],
    used: _Used,
) -> dict[str, Any]:
    row = OPERATIONS[route]
    permission = PERMISSIONS.get((method, path))
    if permission is None:
        raise LookupError(f"{method} {path} has no row in functions.permissions.PERMISSIONS")
    summary, description = _docstring(route)
    mutating = method in MUTATING
    guarded = not permission.open
    parameters = list(generated.get("parameters", []))
    if mutating:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    body = generated.get("requestBody")
    responses = {}
    for status, reply in generated["responses"].items():
        if not status.startswith("2"):
            continue  # powertools' 422 HTTPValidationError: never sent
        responses[status] = _success(reply, schemas, mutating)
    codes = [
        *(["forbidden"] if guarded else []),
        *(["invalid_input"] if parameters or body else []),
        # Any mutation's body is read before the route is chosen: one that is not JSON is refused then.
        *(["malformed_json", "unsupported_media_type"] if body or mutating else []),
        *(["idempotency_conflict", "idempotency_in_progress", "payload_too_large"] if mutating else []),
        *row.refusals,
    ]
    by_status: dict[int, list[Refusal]] = {}
    for code in dict.fromkeys(codes):
        used.codes.add(code)
        refusal = REFUSALS[code]
        by_status.setdefault(refusal.status, []).append(refusal)
    refused = {str(status): used.response(status, found) for status, found in by_status.items()}
    if guarded:
        refused["401"] = {"$ref": RESPONSES + "Unauthorized"}
    responses.update(sorted(refused.items()))
    notes = [description, f"**Who may call:** {who(permission)}"]
    if mutating:
        notes.append("**Retries:** safe under an `Idempotency-Key` (the header below).")
    operation: dict[str, Any] = {
        "tags": [row.tag.label],
        "summary": summary,
        "description": "\n\n".join(note for note in notes if note),
        "operationId": route.__name__,
    }
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    operation["responses"] = responses
    operation["security"] = [{API_KEY: []}] if guarded else []
    return operation


def _docstring(route: Callable[..., object]) -> tuple[str, str]:
    text = inspect.getdoc(route)
    if not text:
        raise LookupError(f"route {route.__qualname__} has no docstring: its first line is the operation's summary")
    first, _, rest = text.partition("\n")
    # Paragraphs joined into lines: the docstring's wrapping is the source's, not the document's.
    paragraphs = (" ".join(line.strip() for line in block.splitlines()) for block in rest.strip().split("\n\n"))
    return first.strip().rstrip("."), "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def _success(reply: dict[str, Any], schemas: dict[str, Any], mutating: bool) -> dict[str, Any]:
    schema = reply.get("content", {}).get(JSON, {}).get("schema", {})
    named = schemas.get(schema.get("$ref", "").removeprefix(SCHEMAS), {})
    finished: dict[str, Any] = {"description": named.get("description") or reply["description"]}
    if mutating:
        finished["headers"] = {"Idempotent-Replayed": {"$ref": "#/components/headers/IdempotentReplayed"}}
    finished["content"] = reply["content"]
    return finished


@dataclass
class _Used:
    """What the operations refer to, for the components: every code's example, and the statuses
    whose only code is one (shared as a whole response, e.g. every 403 is `forbidden`)."""

    codes: set[str] = field(default_factory=set)
    alone: set[str] = field(default_factory=set)

    def response(self, status: int, refusals: list[Refusal]) -> dict[str, Any]:
        if len(refusals) == 1:
            self.alone.add(refusals[0].code)
            return {"$ref": RESPONSES + _pascal(refusals[0].code)}
        return _refusal(status, refusals)


def _pascal(code: str) -> str:
    return "".join(part.title() for part in code.split("_"))


def _refusal(status: int, refusals: list[Refusal], *, gateway: bool = False) -> dict[str, Any]:
    lines = "\n".join(f"- `{r.code}`: {r.meaning}" for r in refusals)
    codes = [r.code for r in refusals]
    by = " Answered by API Gateway's authorizer, before the API runs." if gateway else ""
    return {
        "description": f"{HTTPStatus(status).phrase}: a problem with one of these codes.{by}\n\n{lines}",
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "allOf": [
                        {"$ref": SCHEMAS + "Problem"},
                        {
                            "type": "object",
                            "properties": {
                                "code": {
                                    "type": "string",
                                    "enum": codes,
                                    "description": "The codes this operation answers with this status.",
                                }
                            },
                        },
                    ]
                },
                "examples": {r.code: {"$ref": "#/components/examples/" + r.code} for r in refusals},
            }
        },
    }


def _sentence(meaning: str) -> str:
    """The first sentence of a refusal's meaning, for an example's one-line summary."""
    return meaning.split(". ", 1)[0].rstrip(".")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Write the API's OpenAPI document to {COMMITTED.name}.")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the committed copy differs")
    parser.add_argument("--output", type=Path, default=COMMITTED, help="where to write (default: %(default)s)")
    args = parser.parse_args(argv)
    built = text(served())
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != built:
            print(f"{args.output} differs from the served document; run python -m functions.api.openapi")
            return 1
        print(f"{args.output} is the served document")
        return 0
    args.output.write_text(built, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
