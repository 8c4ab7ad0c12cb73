"""The authorization matrix and the schema fuzz, over HTTP on a sandbox (tests/e2e/test_security.py,
bench/security.py).

The matrix calls every operation of the served OpenAPI document (and the webhook receiver's app
events) with every kind of caller: no key, a malformed or unknown key, an expired key, a revoked
key, the member itself, another member, a channel of the program (a till), a channel that
authenticates its members (the app backend), a channel of another program, the partner party to
the agreement (and linked to the member), a partner that is not, and each admin role. Each call
is a valid request (so that only the permission decides), and the expected answer is worked out
here from `functions.permissions.PERMISSIONS` and the facts each sample names, independently of
the API's own check (`shared.access.permissions`). Observed "denied" is a 401 (the key) or a 403
`forbidden`; anything else got past the permission. A hole is a cell the table denies that was not
denied; an over-denial the reverse.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import requests

from functions.permissions import PERMISSIONS
from shared.access.keys import AdminRole, Principal, PrincipalKind, issue_key, mint_key
from shared.access.permissions import Role, Scope
from shared.events.model import Identity, IdentityKind
from shared.exchange import agreements as exchange
from shared.ledger.commands import Earn, Spend
from shared.program.config import ProgramConfig
from shared.program.versions import ConfigKind, live
from shared.rewards import draws
from shared.rewards.catalogue import Catalogue, Reward, RewardKind, publish_catalogue
from tests.support.channels import create_channels
from tests.support.services import sandbox_services

if TYPE_CHECKING:
    from functions.services import Services
    from pointbridge.sandbox import Sandbox

PROGRAM, ELSEWHERE, AGREEMENT = "demo", "air", "demo-air"
SELF, OTHER = "m1", "m2"
PARTNER, OUTSIDER = "acme", "zeta"
APP_EVENTS = ("POST", "/app-events")


@dataclass(frozen=True)
class Caller:
    """One column of the matrix: a name, the key it sends (None: no header), and whom it stands for."""

    name: str
    key: str | None
    principal: Principal | None  # None: no valid key

    @property
    def role(self) -> Role | None:
        if self.principal is None:
            return None
        if self.principal.kind is PrincipalKind.ADMIN:
            return Role(self.principal.role or AdminRole.OPERATOR)
        return Role(self.principal.kind.value)


@dataclass(frozen=True)
class Sample:
    """A valid request for one operation, and the target it names (as the permission table needs it)."""

    path: str
    body: Any = None
    query: dict[str, str] | None = None
    program: str | None = None
    member: str | None = None
    partner: str | None = None
    agreement: str | None = None


@dataclass
class World:
    """What the matrix's requests act on, seeded straight into the sandbox's table."""

    sandbox: Sandbox
    services: Services
    callers: list[Caller]
    linked: dict[str, set[str]]  # partner -> members who linked its id
    quote_id: str = ""
    serial: int = 0

    def unique(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    @property
    def operator(self) -> str:
        key = next(c.key for c in self.callers if c.name == "operator")
        assert key is not None
        return key


def build_world(sb: Sandbox) -> World:
    """Programs demo and air, the agreement demo -> air, members m1 and m2 with points, a catalogue, a
    draw, the app's source config, partner acme linked to m1, and a key of every kind."""
    services = sandbox_services(sb, config_cache_seconds=0)
    for program in (PROGRAM, ELSEWHERE):
        services.programs.publish(ProgramConfig(program=program, name=program.title()))
    publish_catalogue(
        services.documents,
        Catalogue(
            program=PROGRAM,
            version=1,
            rewards=(
                Reward(id="mug", name="Mug", kind=RewardKind.PHYSICAL, points=100, stock=100_000),
                Reward(id="trees", name="Trees", kind=RewardKind.DONATION, points=10, cause="Forests"),
            ),
        ),
    )
    exchange.publish_agreement(
        services.documents,
        exchange.Agreement(id=AGREEMENT, version=1, from_program=PROGRAM, to_program=ELSEWHERE, rate=Decimal("0.5")),
    )
    now = datetime.now(UTC)
    for member in (SELF, OTHER):
        services.ledger.earn(
            Earn(
                program=PROGRAM,
                member=member,
                points=5_000_000,
                source="seed",
                external_id=member,
                reason="seed",
                event_time=now,
            )
        )
    draws.create(
        services.reward_items,
        PROGRAM,
        draws.DrawIn(id="car", prize="A car", ticket_points=10, closes_at=now + timedelta(days=30)),
        now,
    )
    services.members.claim(
        Identity(kind=IdentityKind.PARTNER, value="ACME-1", scope=PARTNER).key, SELF, provisional=False
    )
    operator = issue_key(services.access_items, Principal(kind=PrincipalKind.ADMIN, id="ops"))
    create_channels(sb, {"app": {"app": {"program": PROGRAM}}}, operator)
    # The partner's own channel, which its file routes read
    services.channels.create("partner", PARTNER, PROGRAM, {"currency": {"program_currency": "USD"}}, None, "matrix")
    items = services.access_items

    def key(name: str, principal: Principal) -> Caller:
        return Caller(name, mint_key(items, principal).key, principal)

    expired = Principal(kind=PrincipalKind.MEMBER, id=SELF, programs=(PROGRAM,))
    expired_key = mint_key(items, expired, now=now - timedelta(days=2), expires_at=now - timedelta(days=1)).key
    revoked = mint_key(items, expired)
    items.revoke_key(revoked.record.key_id, now, "admin:ops", "lost")
    callers = [
        Caller("no key", None, None),
        Caller("malformed key", "pb_" + "A" * 43, None),
        Caller("unknown key", "pb_0123456789abcdef_" + "A" * 43, None),
        Caller("expired key", expired_key, None),
        Caller("revoked key", revoked.key, None),
        key("member itself", Principal(kind=PrincipalKind.MEMBER, id=SELF, programs=(PROGRAM, ELSEWHERE))),
        key("another member", Principal(kind=PrincipalKind.MEMBER, id=OTHER, programs=(PROGRAM, ELSEWHERE))),
        key("channel of the program", Principal(kind=PrincipalKind.CHANNEL, id="till-1", programs=(PROGRAM,))),
        key(
            "channel authenticating members",
            Principal(kind=PrincipalKind.CHANNEL, id="app", programs=(PROGRAM,), authenticates_members=True),
        ),
        key(
            "channel of another program",
            Principal(kind=PrincipalKind.CHANNEL, id="air-app", programs=(ELSEWHERE,), authenticates_members=True),
        ),
        key(
            "partner party to the agreement",
            Principal(kind=PrincipalKind.PARTNER, id=PARTNER, programs=(PROGRAM,), agreements=(AGREEMENT,)),
        ),
        key("partner not party", Principal(kind=PrincipalKind.PARTNER, id=OUTSIDER, programs=(PROGRAM,))),
        key("operator", Principal(kind=PrincipalKind.ADMIN, id="ops", role=AdminRole.OPERATOR)),
        key("support", Principal(kind=PrincipalKind.ADMIN, id="helpdesk", role=AdminRole.SUPPORT)),
        key("auditor", Principal(kind=PrincipalKind.ADMIN, id="audit", role=AdminRole.AUDITOR)),
    ]
    return World(sb, services, callers, linked={PARTNER: {SELF}})


# -- the samples: one valid request per operation, made afresh for each cell ----------------------

MEMBER = f"/programs/{PROGRAM}/members/{SELF}"
ADMIN_MEMBER = f"/admin/programs/{PROGRAM}/members/{SELF}"
PARTNER_MEMBER = f"/partners/{PARTNER}/programs/{PROGRAM}/members/{SELF}"
PERIOD = {"start": "2026-12-01", "end": "2026-12-07"}
ON_MEMBER: dict[str, Any] = {"program": PROGRAM, "member": SELF}
ON_PARTNER: dict[str, Any] = {**ON_MEMBER, "partner": PARTNER}
IN_PROGRAM: dict[str, Any] = {"program": PROGRAM}
Build = Callable[["World", str], Sample]  # (world, a fresh reference) -> the request


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _on_member(rest: str, body: Callable[[World, str], Any] | None = None) -> Build:
    return lambda world, ref: Sample(
        MEMBER + rest.replace("{ref}", ref), body(world, ref) if body else None, **ON_MEMBER
    )


def _quote(world: World, ref: str) -> Sample:
    agreement = exchange.live_agreement(world.services.documents, AGREEMENT)
    quote = exchange.quote(agreement, SELF, SELF, 10, datetime.now(UTC))
    exchange.save_quote(world.services.exchange_items, quote)
    return Sample(f"/quotes/{quote.quote_id}/execute", **ON_MEMBER)


def _republish(kind: ConfigKind, path: str) -> Build:
    def build(world: World, ref: str) -> Sample:
        published = live(world.services.documents, kind, PROGRAM if kind is not ConfigKind.AGREEMENT else AGREEMENT)
        body = {**published.config, "version": published.version + 1}
        facts = {"agreement": AGREEMENT} if kind is ConfigKind.AGREEMENT else IN_PROGRAM
        return Sample(path, body, **facts)

    return build


def _throwaway_key(action: str, body: dict[str, Any]) -> Build:
    def build(world: World, ref: str) -> Sample:
        member = Principal(kind=PrincipalKind.MEMBER, id=ref, programs=(PROGRAM,))
        return Sample(f"/admin/keys/{mint_key(world.services.access_items, member).record.key_id}/{action}", body)

    return build


def _channel_id(ref: str) -> str:
    return "m" + hashlib.sha256(ref.encode()).hexdigest()[:12]


def _throwaway_channel(action: str, body: Callable[[int], dict[str, Any]] | None = None) -> Build:
    """A fresh partner channel per call, so one caller's change never stands in another's way."""

    def build(world: World, ref: str) -> Sample:
        settings = {"currency": {"program_currency": "USD"}}
        record = world.services.channels.create("partner", _channel_id(ref), PROGRAM, settings, None, "matrix")
        path = f"/admin/channels/partner/{record.id}" + (f"/{action}" if action else "")
        return Sample(path, body(record.version) if body else None)

    return build


def _dry_run(world: World, ref: str) -> Sample:
    order = {
        "program": PROGRAM,
        "channel": "online",
        "source": "shop",
        "external_id": ref,
        "identity": {"kind": "member", "value": SELF},
        "occurred_at": _now(),
        "currency": "USD",
        "eligible_amount": "10",
    }
    return Sample(f"/admin/programs/{PROGRAM}/dry-run", {"config": {"program": PROGRAM, "name": "D"}, "order": order})


def _reversal(world: World, ref: str) -> Sample:
    """A redemption of one point per call, for each caller's reversal to name."""
    spend = Spend(program=PROGRAM, member=SELF, points=1, source="redemption", external_id=ref, reason="matrix")
    entry = world.services.ledger.spend(spend)
    return Sample(f"{ADMIN_MEMBER}/reversals", {"entry_id": entry.entry_id, "reason": "matrix"}, **ON_MEMBER)


def _card(world: World, ref: str) -> str:
    return ref.replace("-", "").upper()


SAMPLES: dict[tuple[str, str], Build] = {
    ("GET", "/health"): lambda world, ref: Sample("/health"),
    ("GET", "/programs/{program}/members/{member}/balance"): _on_member("/balance"),
    ("GET", "/programs/{program}/members/{member}/statement"): _on_member("/statement"),
    ("GET", "/programs/{program}/members/{member}/tier"): _on_member("/tier"),
    ("POST", "/programs/{program}/members/{member}/identities"): _on_member(
        "/identities", lambda world, ref: {"kind": "card", "value": _card(world, ref)}
    ),
    ("POST", "/programs/{program}/members/{member}/identities/verifications"): _on_member(
        "/identities/verifications", lambda world, ref: {"kind": "email", "value": f"{ref}@example.com"}
    ),
    ("POST", "/programs/{program}/members/{member}/identities/verifications/{verification_id}/confirm"): lambda w, r: (
        Sample(f"{MEMBER}/identities/verifications/{uuid.uuid4().hex}/confirm", {"code": "123456"}, **ON_MEMBER)
    ),
    ("POST", "/admin/programs/{program}/members/{member}/merges"): lambda world, ref: Sample(
        f"{ADMIN_MEMBER}/merges", {"kind": "card", "value": _card(world, ref), "reason": "matrix"}, **ON_MEMBER
    ),
    ("POST", "/admin/programs/{program}/members/search"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/members/search", {"member": SELF}, **IN_PROGRAM
    ),
    ("GET", "/admin/programs/{program}/members/{member}"): lambda world, ref: Sample(ADMIN_MEMBER, **ON_MEMBER),
    ("POST", "/admin/programs/{program}/members/imports"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/members/imports",
        {"rows": [{"row": 2, "email": f"{ref}@example.com", "name": "Matrix"}]},
        **IN_PROGRAM,
    ),
    ("POST", "/admin/programs/{program}/members/{member}/adjustments"): lambda world, ref: Sample(
        f"{ADMIN_MEMBER}/adjustments", {"points": 1, "reason": "matrix", "reference": ref}, **ON_MEMBER
    ),
    ("POST", "/admin/programs/{program}/members/{member}/reversals"): _reversal,
    ("POST", "/admin/programs/{program}/members/{member}/tier"): lambda world, ref: Sample(
        f"{ADMIN_MEMBER}/tier", {"tier": "member", "reason": "matrix"}, **ON_MEMBER
    ),
    ("GET", "/programs/{program}/rewards"): lambda world, ref: Sample(f"/programs/{PROGRAM}/rewards", **IN_PROGRAM),
    ("POST", "/programs/{program}/members/{member}/redemptions"): _on_member(
        "/redemptions", lambda world, ref: {"points": 1, "reference": ref}
    ),
    ("POST", "/programs/{program}/members/{member}/donations"): _on_member(
        "/donations", lambda world, ref: {"reward_id": "trees", "points": 10, "reference": ref}
    ),
    ("POST", "/programs/{program}/members/{member}/holds"): _on_member(
        "/holds", lambda world, ref: {"points": 1, "reference": ref}
    ),
    ("POST", "/programs/{program}/members/{member}/holds/{reference}/capture"): _on_member(
        "/holds/{ref}/capture", lambda world, ref: {}
    ),
    ("POST", "/programs/{program}/members/{member}/holds/{reference}/release"): _on_member("/holds/{ref}/release"),
    ("POST", "/admin/programs/{program}/members/{member}/holds/settle"): lambda world, ref: Sample(
        f"{ADMIN_MEMBER}/holds/settle",
        {"hold_id": f"checkout:{ref}", "action": "release", "reason": "matrix"},
        **ON_MEMBER,
    ),
    ("POST", "/programs/{program}/members/{member}/gifts"): _on_member(
        "/gifts", lambda world, ref: {"to_member": OTHER, "points": 1, "reference": ref}
    ),
    ("POST", "/admin/programs/{program}/draws"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/draws",
        {
            "id": ref,
            "prize": "A mug",
            "ticket_points": 5,
            "closes_at": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
        },
        **IN_PROGRAM,
    ),
    ("GET", "/programs/{program}/draws/{draw_id}"): lambda world, ref: Sample(
        f"/programs/{PROGRAM}/draws/car", **IN_PROGRAM
    ),
    ("POST", "/programs/{program}/members/{member}/draws/{draw_id}/entries"): _on_member(
        "/draws/car/entries", lambda world, ref: {"tickets": 1, "reference": ref}
    ),
    ("POST", "/admin/programs/{program}/draws/{draw_id}/reveal"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/draws/car/reveal", **IN_PROGRAM
    ),
    ("POST", "/agreements/{agreement_id}/quotes"): lambda world, ref: Sample(
        f"/agreements/{AGREEMENT}/quotes", {"member": SELF, "points": 10}, **ON_MEMBER
    ),
    ("POST", "/quotes/{quote_id}/execute"): _quote,
    ("POST", "/partners/{partner}/programs/{program}/members/{member}/transfers-in"): lambda world, ref: Sample(
        f"{PARTNER_MEMBER}/transfers-in", {"transfer_id": ref, "points": 1, "occurred_at": _now()}, **ON_PARTNER
    ),
    ("POST", "/programs/{program}/members/{member}/transfers-out"): _on_member(
        "/transfers-out", lambda world, ref: {"partner": PARTNER, "transfer_id": ref, "points": 1}
    ),
    (
        "POST",
        "/partners/{partner}/programs/{program}/members/{member}/transfers-out/{transfer_id}/confirm",
    ): lambda world, ref: Sample(f"{PARTNER_MEMBER}/transfers-out/{ref}/confirm", {"points": 1}, **ON_PARTNER),
    (
        "POST",
        "/partners/{partner}/programs/{program}/members/{member}/transfers-out/{transfer_id}/reject",
    ): lambda world, ref: Sample(f"{PARTNER_MEMBER}/transfers-out/{ref}/reject", **ON_PARTNER),
    ("GET", "/partners/{partner}/programs/{program}/settlement"): lambda world, ref: Sample(
        f"/partners/{PARTNER}/programs/{PROGRAM}/settlement", query=PERIOD, program=PROGRAM, partner=PARTNER
    ),
    ("PUT", "/admin/programs/{program}"): _republish(ConfigKind.PROGRAM, f"/admin/programs/{PROGRAM}"),
    ("PUT", "/admin/programs/{program}/catalogue"): _republish(
        ConfigKind.CATALOGUE, f"/admin/programs/{PROGRAM}/catalogue"
    ),
    ("PUT", "/admin/agreements/{agreement_id}"): _republish(ConfigKind.AGREEMENT, f"/admin/agreements/{AGREEMENT}"),
    ("POST", "/admin/programs/{program}/dry-run"): _dry_run,
    ("POST", "/admin/programs/{program}/sunset"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/sunset", {"notice_days": 365, "redemption_days": 30}, **IN_PROGRAM
    ),
    ("GET", "/admin/programs/{program}"): lambda world, ref: Sample(f"/admin/programs/{PROGRAM}", **IN_PROGRAM),
    ("GET", "/admin/programs/{program}/versions"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/versions", **IN_PROGRAM
    ),
    ("GET", "/admin/programs/{program}/catalogue"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/catalogue", **IN_PROGRAM
    ),
    ("GET", "/admin/programs/{program}/catalogue/versions"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/catalogue/versions", **IN_PROGRAM
    ),
    ("GET", "/admin/agreements/{agreement_id}"): lambda world, ref: Sample(
        f"/admin/agreements/{AGREEMENT}", agreement=AGREEMENT
    ),
    ("GET", "/admin/agreements/{agreement_id}/versions"): lambda world, ref: Sample(
        f"/admin/agreements/{AGREEMENT}/versions", agreement=AGREEMENT
    ),
    ("POST", "/admin/keys"): lambda world, ref: Sample(
        "/admin/keys", {"kind": "member", "id": ref, "programs": [PROGRAM]}
    ),
    ("GET", "/admin/keys"): lambda world, ref: Sample("/admin/keys", query={"limit": "5"}),
    ("POST", "/admin/keys/{key_id}/revoke"): _throwaway_key("revoke", {"reason": "matrix"}),
    ("POST", "/admin/keys/{key_id}/rotate"): _throwaway_key("rotate", {"overlap_seconds": 0}),
    ("GET", "/admin/programs/{program}/flags"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/flags", **IN_PROGRAM
    ),
    ("POST", "/admin/programs/{program}/flags/{member}/decision"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/flags/{SELF}/decision", {"decision": "release", "note": "matrix"}, **ON_MEMBER
    ),
    ("GET", "/admin/programs/{program}/figures"): lambda world, ref: Sample(
        f"/admin/programs/{PROGRAM}/figures", **IN_PROGRAM
    ),
    ("GET", "/admin/programs"): lambda world, ref: Sample("/admin/programs"),
    ("GET", "/admin/channels"): lambda world, ref: Sample("/admin/channels"),
    ("POST", "/admin/channels"): lambda world, ref: Sample(
        "/admin/channels",
        {
            "kind": "partner",
            "id": _channel_id(ref),
            "program": PROGRAM,
            "settings": {"currency": {"program_currency": "USD"}},
        },
    ),
    ("GET", "/admin/channels/{kind}/{channel}"): _throwaway_channel(""),
    ("PUT", "/admin/channels/{kind}/{channel}"): _throwaway_channel(
        "", lambda version: {"version": version, "settings": {"currency": {"program_currency": "USD"}}}
    ),
    ("POST", "/admin/channels/{kind}/{channel}/disable"): _throwaway_channel(
        "disable", lambda version: {"version": version}
    ),
    ("POST", "/admin/channels/{kind}/{channel}/enable"): _throwaway_channel(
        "enable", lambda version: {"version": version}
    ),
    ("POST", "/partners/{partner}/programs/{program}/files"): lambda world, ref: Sample(
        f"/partners/{PARTNER}/programs/{PROGRAM}/files",
        {"name": f"{_channel_id(ref)}.csv", "content_type": "text/csv"},
        program=PROGRAM,
        partner=PARTNER,
    ),
    ("GET", "/partners/{partner}/programs/{program}/files"): lambda world, ref: Sample(
        f"/partners/{PARTNER}/programs/{PROGRAM}/files", program=PROGRAM, partner=PARTNER
    ),
    ("GET", "/partners/{partner}/programs/{program}/files/{file_id}"): lambda world, ref: Sample(
        f"/partners/{PARTNER}/programs/{PROGRAM}/files/none", program=PROGRAM, partner=PARTNER
    ),
    # Operations (issue 14): a redrive of a message no queue holds is a 404 to those allowed
    ("GET", "/admin/dead-letters"): lambda world, ref: Sample("/admin/dead-letters"),
    ("POST", "/admin/dead-letters/{queue}/{message_id}/redrive"): lambda world, ref: Sample(
        f"/admin/dead-letters/ingest/{_channel_id(ref)}/redrive", {}
    ),
    ("GET", "/admin/channels/{kind}/{channel}/files"): lambda world, ref: Sample(
        f"/admin/channels/partner/{PARTNER}/files"
    ),
    ("GET", "/admin/channels/{kind}/{channel}/files/{file_id}"): lambda world, ref: Sample(
        f"/admin/channels/partner/{PARTNER}/files/none"
    ),
    APP_EVENTS: lambda world, ref: Sample(
        "/app-events", {"event_id": ref, "member_id": SELF, "action": "sign_in", "occurred_at": _now()}, **IN_PROGRAM
    ),
}


def sample(world: World, method: str, path: str) -> Sample:
    build = SAMPLES.get((method, path))
    if build is None:
        raise LookupError(f"no sample request for {method} {path}: add one to tests/support/security.py SAMPLES")
    return build(world, world.unique("ref"))


# -- expectation, from the table alone --------------------------------------------------------------


def expected_allowed(world: World, caller: Caller, method: str, path: str, sample: Sample) -> bool:
    rule = PERMISSIONS[(method, path)]
    if rule.open:
        return True
    role, who = caller.role, caller.principal
    if role is None or who is None:
        return False
    scope = rule.grants.get(role)
    if scope is None:
        return False
    if scope is Scope.ANY:
        return True
    if scope is Scope.PARTY:
        return sample.agreement in who.agreements
    in_program = sample.program in who.programs
    named = sample.partner == who.id
    return {
        Scope.SELF: in_program and sample.member == who.id,
        Scope.PROGRAM: in_program,
        Scope.MEMBER_AUTH: in_program and who.authenticates_members,
        Scope.NAMED: in_program and named,
        Scope.LINKED: in_program and named and sample.member in world.linked.get(who.id, set()),
    }[scope]


def observed_denied(reply: requests.Response) -> bool:
    if reply.status_code == 401:
        return True
    if reply.status_code != 403:
        return False
    try:
        return bool(reply.json().get("code") == "forbidden")
    except ValueError:
        return True  # API Gateway's own 403 (no such resource): nothing ran


@dataclass
class Cell:
    operation: str
    caller: str
    expected: str
    status: int
    code: str


@dataclass
class Matrix:
    cells: list[Cell] = field(default_factory=list)

    @property
    def holes(self) -> list[Cell]:
        return [c for c in self.cells if c.expected == "deny" and not _denied(c)]

    @property
    def overdenied(self) -> list[Cell]:
        return [c for c in self.cells if c.expected == "allow" and _denied(c)]

    @property
    def server_errors(self) -> list[Cell]:
        return [c for c in self.cells if c.status >= 500]


def _denied(cell: Cell) -> bool:
    return cell.status == 401 or (cell.status == 403 and cell.code in ("forbidden", ""))


def operations(sb: Sandbox) -> list[tuple[str, str]]:
    """Every operation of the served document, and the app events."""
    document = requests.get(f"{sb.api_url}/openapi.json", timeout=60).json()
    found = [(method.upper(), path) for path, item in document["paths"].items() for method in item]
    return [*found, APP_EVENTS]


def run_matrix(world: World, observe: Callable[[str, str, requests.Response], None] | None = None) -> Matrix:
    matrix = Matrix()
    session = requests.Session()
    for method, path in operations(world.sandbox):
        for caller in world.callers:
            request = sample(world, method, path)
            headers = {"x-api-key": caller.key} if caller.key is not None else {}
            reply = session.request(
                method,
                world.sandbox.api_url + request.path,
                json=request.body,
                params=request.query,
                headers=headers,
                timeout=60,
            )
            if observe is not None:
                observe(method, request.path, reply)
            try:
                code = str(reply.json().get("code", ""))
            except ValueError:
                code = ""
            allowed = expected_allowed(world, caller, method, path, request)
            matrix.cells.append(
                Cell(f"{method} {path}", caller.name, "allow" if allowed else "deny", reply.status_code, code)
            )
    return matrix


# -- the schema fuzz: every operation, every caller ------------------------------------------------


@dataclass
class Fuzz:
    cases: int = 0
    server_errors: list[str] = field(default_factory=list)


def run_fuzz(
    world: World,
    examples: int,
    observe: Callable[[Any, Any], None] | None = None,
    checks: list[Any] | None = None,
    negative: bool = False,
) -> Fuzz:
    """Schemathesis cases for every operation of the served document, sent with every caller's key:
    valid inputs, and with `negative` also inputs that break the schema."""
    import schemathesis
    from schemathesis.core.result import Ok
    from schemathesis.generation.modes import GenerationMode

    sb = world.sandbox
    loaded = schemathesis.openapi.from_url(f"{sb.api_url}/openapi.json")
    loaded.config.update(base_url=sb.api_url)
    fuzz = Fuzz()
    for result in loaded.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        for caller in world.callers:
            # Keys that cannot pass the authorizer all meet the same gateway reply: one case is enough.
            count = examples if caller.principal is not None else 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if negative else (GenerationMode.POSITIVE,):
                _fuzz_operation(operation.as_strategy(mode), caller, count, fuzz, observe, checks)
    return fuzz


def _fuzz_operation(
    strategy: Any,
    caller: Caller,
    examples: int,
    fuzz: Fuzz,
    observe: Callable[[Any, Any], None] | None,
    checks: list[Any] | None,
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    headers = {"x-api-key": caller.key} if caller.key is not None else {}

    @given(case=strategy)
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def send(case: Any) -> None:
        if checks is None:
            response = case.call(headers=headers, timeout=60)
        else:
            response = case.call_and_validate(headers=headers, checks=checks, timeout=60)
        fuzz.cases += 1
        if observe is not None:
            observe(case, response)
        if response.status_code >= 500:
            what = f"{case.method} {case.formatted_path} as {caller.name}"
            fuzz.server_errors.append(f"{what}: {response.status_code} {response.text[:200]}")

    try:
        send()
    except Unsatisfiable:
        pass  # negative cases of an operation with nothing to break (no parameters, no body)


# -- requests no schema generator writes: malformed at the transport, far-off times, over-long ids --

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T")
MALFORMED_BODIES: dict[str, tuple[bytes, str]] = {
    "multipart without boundary": (b"--x\r\nContent-Disposition: form-data\r\n\r\n1\r\n--x--", "multipart/form-data"),
    "form fields": (b"points=1&reference=r", "application/x-www-form-urlencoded"),
    "JSON sent as text": (b'{"points": 1}', "text/plain"),
    "non-UTF-8 body": (b'{"reference": "\xff\xfe\xfd"}', "application/json"),
    "deeply nested arrays": (b"[" * 5000 + b"]" * 5000, "application/json"),
    "deeply nested objects": (b'{"a":' * 3000 + b"1" + b"}" * 3000, "application/json"),
    "a 5000-digit number": (b'{"points": 1' + b"0" * 5000 + b"}", "application/json"),
}


def _far_off(value: Any) -> Any:
    """The sample's times moved to the last second of year 9999, with an offset west of UTC."""
    if isinstance(value, dict):
        return {k: _far_off(v) for k, v in value.items()}
    if isinstance(value, str) and TIMESTAMP.match(value):
        return "9999-12-31T23:59:59-05:00"
    return value


def run_corpus(
    world: World, every_caller: bool = False, observe: Callable[[str, str, Any], None] | None = None
) -> Fuzz:
    """Each malformed body, each path parameter 300 characters long, and each time in year 9999, for every
    operation; sent by the callers the table allows (and with `every_caller`, by every caller)."""
    fuzz = Fuzz()
    session = requests.Session()
    for method, path in operations(world.sandbox):
        template = sample(world, method, path)
        cases: list[tuple[str, str, bytes | None, str]] = []
        if method in ("POST", "PUT"):
            cases += [(name, template.path, body, kind) for name, (body, kind) in MALFORMED_BODIES.items()]
        if template.body is not None and _far_off(template.body) != template.body:
            cases.append(
                ("a year-9999 time", template.path, json.dumps(_far_off(template.body)).encode(), "application/json")
            )
        body = json.dumps(template.body).encode() if template.body is not None else None
        for segment in re.findall(r"\{[^}]+\}", path):
            long_path = _with_segment(path, template.path, segment, "x" * 300)
            cases.append((f"{segment} of 300 characters", long_path, body, "application/json"))
        for caller in world.callers:
            if not every_caller and not expected_allowed(world, caller, method, path, template):
                continue
            headers = {"x-api-key": caller.key} if caller.key is not None else {}
            for name, target, payload, content_type in cases:
                reply = session.request(
                    method,
                    world.sandbox.api_url + target,
                    data=payload,
                    params=template.query,
                    headers={**headers, "content-type": content_type} if payload is not None else headers,
                    timeout=60,
                )
                fuzz.cases += 1
                if observe is not None:
                    observe(method, target, reply)
                if reply.status_code >= 500:
                    fuzz.server_errors.append(
                        f"{method} {path}, {name}, as {caller.name}: {reply.status_code} {reply.text[:200]}"
                    )
    return fuzz


def _with_segment(template: str, concrete: str, segment: str, value: str) -> str:
    """`concrete` with the path parameter `segment` of `template` replaced by `value`."""
    parts, filled = template.split("/"), concrete.split("/")
    return "/".join(value if part == segment else filled[i] for i, part in enumerate(parts))
