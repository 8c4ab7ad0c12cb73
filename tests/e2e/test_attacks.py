"""Attack stories over real HTTP on the sandbox: each reproduces one way points were taken (issue 11)
and now takes nothing.

anonymous app events, partner drain, counterparty exchange, till gift, stolen link, member voids
the shop's hold, reference squatting, the Idempotency-Key race; and bad keys as problems. Then the
evidence: the insider draw (nothing in the table before the close predicts the winner; tampering
after the freeze fails `pointbridge draw verify`) and the recomputed chain (`pointbridge audit`
names the account).
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from pointbridge.audit import report_lines, run_audit
from pointbridge.draws import verify_draw
from pointbridge.sandbox import Sandbox
from shared.access.keys import AdminRole, Principal, PrincipalKind, issue_key, mint_key
from shared.events.identity import hash_card, hash_email
from shared.events.model import Identity, IdentityKind
from shared.exchange.agreements import Agreement, publish_agreement
from shared.infra import keys
from shared.infra.settings import Settings
from shared.ledger.audit import audit
from shared.ledger.commands import Earn
from shared.program.config import BehaviourRules, ProgramConfig
from shared.rewards.catalogue import Catalogue, publish_catalogue
from shared.rewards.draws import pick_winners
from tests.support.channels import create_channels, identity_key
from tests.support.forgery import inflate_credit, keyed_with, unkeyed
from tests.support.http_api import HttpApi, problem
from tests.support.inbox import code_inbox

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
SHOP, AIR = "shop", "air"


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApi]:
    """Program shop (app behaviour points on) and air, the agreement shop -> air, the app's source config."""
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=4) as sb:
        api = HttpApi(sb)
        services = api.services
        behaviour = BehaviourRules(review=20, sign_in=5, birthday=50, referral=100)
        services.programs.publish(ProgramConfig(program=SHOP, name="Shop", behaviour=behaviour))
        services.programs.publish(ProgramConfig(program=AIR, name="Air"))
        publish_catalogue(services.documents, Catalogue(program=SHOP, version=1))
        agreement = Agreement(id="shop-air", version=1, from_program=SHOP, to_program=AIR, rate=Decimal("1"))
        publish_agreement(services.documents, agreement)
        operator = issue_key(services.access_items, Principal(kind=PrincipalKind.ADMIN, id="ops"))
        create_channels(sb, {"app": {"app": {"program": SHOP}}}, operator)
        yield api


def fund(api: HttpApi, member: str, points: int = 1000) -> None:
    earn = Earn(
        program=SHOP,
        member=member,
        points=points,
        source="seed",
        external_id=member,
        reason="seed",
        event_time=datetime.now(UTC),
    )
    api.services.ledger.earn(earn)


def member_key(api: HttpApi, member: str) -> str:
    return api.key(PrincipalKind.MEMBER, member, (SHOP, AIR))


def balance(api: HttpApi, member: str, program: str = SHOP) -> Any:
    account = api.services.ledger_store.get_account(program, member)
    return (account.available, account.held) if account else None


def entries(api: HttpApi, program: str = SHOP) -> int:
    api.sandbox.wait_for_idle(timeout=60)
    return sum(1 for e in api.services.ledger_store.ledger_records()[0] if e.program == program)


def app_event(member: str, action: str, subject: str = "") -> dict[str, str]:
    event = {"event_id": uuid.uuid4().hex, "member_id": member, "action": action}
    return event | {"occurred_at": datetime.now(UTC).isoformat()} | ({"subject": subject} if subject else {})


def test_anonymous_app_events_mint_nothing(api: HttpApi) -> None:
    # Given the requests that gave an invented member 100 points with no key at all
    attempts = [
        app_event("invented-1", "review", "sku:1"),
        app_event("invented-1", "review", "sku:2"),
        app_event("invented-1", "sign_in"),
        app_event("invented-1", "birthday"),
        app_event("invented-2", "referral", "invented-1"),
    ] * 2
    till = api.key(PrincipalKind.CHANNEL, "till", (SHOP,))
    member = member_key(api, "invented-1")
    # When they are sent with no key, with the member's own key, and with a till's key (which logs nobody in)
    replies = [api.call("POST", "/app-events", None, body) for body in attempts]
    replies += [api.call("POST", "/app-events", key, attempts[0]) for key in (member, till)]
    # Then none is accepted: 401 without a key, 403 for keys that are not the app backend's
    assert [r.status_code for r in replies] == [401] * 10 + [403, 403]
    assert {r.json()["code"] for r in replies} == {"key_missing", "forbidden"}
    assert balance(api, "invented-1") is None and balance(api, "invented-2") is None
    # While the app backend, which logs its members in, reports a real sign-in
    app = api.key(PrincipalKind.CHANNEL, "app", (SHOP,), authenticates_members=True)
    assert api.call("POST", "/app-events", app, app_event("real-1", "sign_in")).status_code == 200
    api.sandbox.wait_for_idle(timeout=60)
    assert balance(api, "real-1") == (5, 0)


def test_partner_drain_takes_nothing(api: HttpApi) -> None:
    # Given a member who linked the airline's id (the airline may credit him) and the airline's key
    fund(api, "pat")
    airline = api.key(PrincipalKind.PARTNER, "airline", (SHOP, AIR), agreements=("shop-air",))
    api.link_partner(airline, SHOP, "pat", "AIR-PAT")
    start, before = balance(api, "pat"), entries(api)
    base = f"/programs/{SHOP}/members/pat"
    # When the airline reads his statement, redeems, gifts to an account it names, holds his points,
    # opens a transfer out to itself and confirms it, and quotes and executes an exchange
    attempts = [
        api.call("GET", f"{base}/statement", airline),
        api.call("GET", f"{base}/balance", airline),
        api.call("POST", f"{base}/redemptions", airline, {"points": 500, "reference": "r"}),
        api.call("POST", f"{base}/gifts", airline, {"to_member": "airline-acct", "points": 500, "reference": "g"}),
        api.call("POST", f"{base}/holds", airline, {"points": 500, "reference": "h"}),
        api.call("POST", f"{base}/transfers-out", airline, {"partner": "airline", "transfer_id": "t", "points": 500}),
        api.call("POST", f"/partners/airline/programs/{SHOP}/members/pat/transfers-out/t/confirm", airline),
        api.call("POST", "/agreements/shop-air/quotes", airline, {"member": "pat", "points": 500}),
    ]
    # Then each is refused before anything is read (the last confirm finds no transfer: none was opened)
    for reply in attempts[:-2]:
        problem(reply, 403, "forbidden")
    problem(attempts[-2], 404, "unknown_entry")
    problem(attempts[-1], 403, "forbidden")
    assert balance(api, "pat") == start
    assert entries(api) == before


def test_counterparty_exchange_takes_nothing(api: HttpApi) -> None:
    # Given a member of shop with points, and a quote he made himself
    fund(api, "quin")
    quin = member_key(api, "quin")
    own = api.ok("POST", "/agreements/shop-air/quotes", quin, {"member": "quin", "points": 100}, status=201)
    # When the receiving brand (party to the agreement) quotes 300 of his points into an account it names,
    # and executes his quote
    receiver = api.key(PrincipalKind.PARTNER, "air-brand", (AIR,), agreements=("shop-air",))
    start = balance(api, "quin")
    quoted = api.call(
        "POST", "/agreements/shop-air/quotes", receiver, {"member": "quin", "to_member": "x", "points": 300}
    )
    executed = api.call("POST", f"/quotes/{own['quote_id']}/execute", receiver)
    # Then both are refused and nothing moved in either program
    problem(quoted, 403, "forbidden")
    problem(executed, 403, "forbidden")
    assert balance(api, "quin") == start and balance(api, "x", AIR) is None
    # And another member cannot execute it either; the member himself can
    problem(api.call("POST", f"/quotes/{own['quote_id']}/execute", member_key(api, "pat")), 403, "forbidden")
    assert api.ok("POST", f"/quotes/{own['quote_id']}/execute", quin, status=201)["debit"]["points"] == -100


def test_till_gift_takes_nothing(api: HttpApi) -> None:
    # Given a member with points, and a till's key (a channel of the program that logs nobody in)
    fund(api, "tia")
    till = api.key(PrincipalKind.CHANNEL, "till-3", (SHOP, AIR))
    start, before = balance(api, "tia"), entries(api)
    base = f"/programs/{SHOP}/members/tia"
    # When the till gifts her points to an accomplice, exchanges them, and sends them to a partner
    quote = api.ok(
        "POST", "/agreements/shop-air/quotes", member_key(api, "tia"), {"member": "tia", "points": 10}, status=201
    )
    attempts = [
        api.call("POST", f"{base}/gifts", till, {"to_member": "accomplice", "points": 900, "reference": "g"}),
        api.call(
            "POST", "/agreements/shop-air/quotes", till, {"member": "tia", "to_member": "accomplice", "points": 900}
        ),
        api.call("POST", f"/quotes/{quote['quote_id']}/execute", till),
        api.call("POST", f"{base}/transfers-out", till, {"partner": "fence", "transfer_id": "t", "points": 900}),
    ]
    # Then each is refused: points leave a member only when she (or a channel that logs her in) asks
    for reply in attempts:
        problem(reply, 403, "forbidden")
    assert balance(api, "tia") == start and balance(api, "accomplice") is None
    assert entries(api) == before


def test_stolen_link_takes_nothing(api: HttpApi) -> None:
    # Given a stranger's points: 1,450 under his card (till), e-mail (online) and airline id (partner feed)
    email = Identity(
        kind=IdentityKind.EMAIL, value=hash_email(Settings().identity_hash_key.encode(), "vic@example.com")
    )
    card = Identity(kind=IdentityKind.CARD, value=hash_card(identity_key(api.sandbox).encode(), "6012777777"))
    airline = Identity(kind=IdentityKind.PARTNER, value="AIR-VIC", scope="airline")
    sb = api.sandbox

    def earn(identity: Identity, points: int, external_id: str) -> None:
        event = {
            "kind": "points",
            "program": SHOP,
            "channel": "partner",
            "source": "seed",
            "external_id": external_id,
            "identity": identity.model_dump(mode="json"),
            "occurred_at": datetime.now(UTC).isoformat(),
            "points": points,
            "reason": "earned",
        }
        sb.client("sqs").send_message(QueueUrl=sb.resource("IngestQueue"), MessageBody=json.dumps({"event": event}))

    for identity, points, ref in ((card, 500, "v-1"), (email, 450, "v-2"), (airline, 500, "v-3")):
        earn(identity, points, ref)
    sb.wait_for_idle(timeout=60)
    directory = api.services.members
    victims = {directory.member_for(i.key) for i in (card, email, airline)}
    assert None not in victims and sum(balance(api, str(v))[0] for v in victims) == 1450
    # When an attacker links the stranger's card, airline id and e-mail to himself
    fund(api, "mallory", 10)
    mallory = member_key(api, "mallory")
    base = f"/programs/{SHOP}/members/mallory"
    problem(
        api.call("POST", f"{base}/identities", mallory, {"kind": "card", "value": "6012 7777 77"}), 403, "forbidden"
    )
    problem(
        api.call("POST", f"{base}/identities", mallory, {"kind": "partner", "value": "AIR-VIC", "scope": "airline"}),
        403,
        "forbidden",
    )
    # And asks for a code for the e-mail: it goes to the stranger's address, so he can only guess it
    inbox = code_inbox(sb.client("events"), sb.client("sqs"), sb.resource("NotificationsBus"))
    sent = api.ok(
        "POST", f"{base}/identities/verifications", mallory, {"kind": "email", "value": "vic@example.com"}, status=201
    )
    assert inbox.detail(sent["verification_id"])["to"] == "vic@example.com"
    real = inbox.code_for(sent["verification_id"])
    guesses = [f"{n:06d}" for n in range(6) if f"{n:06d}" != real][:5]
    confirm = f"{base}/identities/verifications/{sent['verification_id']}/confirm"
    codes = [api.call("POST", confirm, mallory, {"code": guess}).json()["code"] for guess in guesses]
    assert codes == ["wrong_code"] * 5
    problem(api.call("POST", confirm, mallory, {"code": real}), 422, "too_many_attempts")
    # Then he received nothing, and every identity still points at the stranger
    assert balance(api, "mallory") == (10, 0)
    assert {directory.member_for(i.key) for i in (card, email, airline)} == victims
    # And the stranger's next till visit is credited to the stranger, not to him
    earn(card, 40, "v-4")
    sb.wait_for_idle(timeout=60)
    assert balance(api, str(directory.member_for(card.key)))[0] == 540
    assert balance(api, "mallory") == (10, 0)


def test_two_members_claiming_one_identity_at_once_exactly_one_wins(api: HttpApi) -> None:
    # Given cards a stranger earned on (a provisional member each), and two tills seeing them at once
    sb, directory = api.sandbox, api.services.members
    till_a = api.key(PrincipalKind.CHANNEL, "till-a", (SHOP,))
    till_b = api.key(PrincipalKind.CHANNEL, "till-b", (SHOP,))
    for n in range(4):
        number = f"60129900{n}"
        card = Identity(kind=IdentityKind.CARD, value=hash_card(identity_key(sb).encode(), number))
        holder = f"pv-race-{n}"
        directory.claim(card.key, holder, provisional=True)
        fund(api, holder, 100)

        def link(key_and_member: tuple[str, str], value: str = number) -> requests.Response:
            key, member = key_and_member
            path = f"/programs/{SHOP}/members/{member}/identities"
            return HttpApi(sb).call("POST", path, key, {"kind": "card", "value": value})

        # When both link it to a different member at the same moment
        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(link, [(till_a, f"ann-{n}"), (till_b, f"bob-{n}")]))
        # Then exactly one wins, the other is identity_taken, and the stranger's points moved once
        assert sorted(r.status_code for r in replies) == [201, 409], [r.text for r in replies]
        winner = next(r for r in replies if r.status_code == 201).json()["member"]
        loser = next(r for r in replies if r.status_code == 409)
        assert loser.json()["code"] == "identity_taken"
        assert directory.member_for(card.key) == winner
        assert balance(api, winner) == (100, 0)
        assert balance(api, f"ann-{n}" if winner != f"ann-{n}" else f"bob-{n}") is None
    assert audit(*api.services.ledger_store.ledger_records()).ok


def test_member_voids_the_shops_hold_and_takes_nothing(api: HttpApi) -> None:
    # Given the shop's checkout authorisation on a member's points
    fund(api, "vera")
    shop, vera = api.key(PrincipalKind.CHANNEL, "web-shop", (SHOP,)), member_key(api, "vera")
    holds = f"/programs/{SHOP}/members/vera/holds"
    api.ok("POST", holds, shop, {"points": 300, "reference": "cart-1"}, status=201)
    # When the member releases it (by the shop's reference), before the shop captures
    problem(api.call("POST", f"{holds}/cart-1/release", vera), 404, "unknown_entry")
    problem(api.call("POST", f"{holds}/cart-1/capture", vera, {"points": 1}), 404, "unknown_entry")
    # Then the hold stands and the shop's capture succeeds
    assert balance(api, "vera") == (700, 300)
    captured = api.ok("POST", f"{holds}/cart-1/capture", shop, {}, status=201)
    assert captured["details"]["captured"] == "300"
    # And support can settle a hold for a shop that cannot, but only with a reason, which the entry keeps
    api.ok("POST", holds, shop, {"points": 50, "reference": "cart-2"}, status=201)
    hold_id = next(
        e["entry_id"]
        for e in statement(api, "vera")
        if e["kind"] == "hold" and e["points"] == 0 and "cart-2" in e["entry_id"]
    )
    support = api.key(PrincipalKind.ADMIN, "helpdesk", (), role=AdminRole.SUPPORT)
    settle = f"/admin/programs/{SHOP}/members/vera/holds/settle"
    problem(api.call("POST", settle, support, {"hold_id": hold_id, "action": "release"}), 400, "invalid_input")
    released = api.ok(
        "POST", settle, support, {"hold_id": hold_id, "action": "release", "reason": "till offline"}, status=201
    )
    assert "by support helpdesk: till offline" in released["reason"]
    assert balance(api, "vera") == (700, 0)


def statement(api: HttpApi, member: str) -> list[dict[str, Any]]:
    auditor = api.key(PrincipalKind.ADMIN, "audit", (), role=AdminRole.AUDITOR)
    return list(
        api.ok("GET", f"/programs/{SHOP}/members/{member}/statement", auditor, query={"limit": "100"})["entries"]
    )


def test_reference_squatting_takes_nothing(api: HttpApi) -> None:
    # Given two members and two shops that all use the reference order-1001
    for member in ("sam", "sue"):
        fund(api, member)
    sam, sue = member_key(api, "sam"), member_key(api, "sue")
    shop_a = api.key(PrincipalKind.CHANNEL, "shop-a", (SHOP,))
    shop_b = api.key(PrincipalKind.CHANNEL, "shop-b", (SHOP,))
    order = {"points": 10, "reference": "order-1001"}
    # When each redeems under it
    replies = [
        api.call("POST", f"/programs/{SHOP}/members/sam/redemptions", sam, order),
        api.call("POST", f"/programs/{SHOP}/members/sue/redemptions", sue, order),
        api.call("POST", f"/programs/{SHOP}/members/sue/redemptions", shop_a, order),
        api.call("POST", f"/programs/{SHOP}/members/sue/redemptions", shop_b, order),
    ]
    # Then all four are their own redemptions: no 409, nobody learns the others used it
    assert [r.status_code for r in replies] == [201] * 4, [r.text for r in replies]
    assert len({r.json()["entry"]["entry_id"] for r in replies}) == 4
    assert balance(api, "sue") == (1000 - 30, 0)
    # And a member who squats the reference the till will use takes nothing from the till
    basket = {"points": 1, "reference": "basket-77"}
    api.ok("POST", f"/programs/{SHOP}/members/sam/holds", sam, basket, status=201)
    till = api.ok("POST", f"/programs/{SHOP}/members/sam/holds", shop_a, {**basket, "points": 40}, status=201)
    assert till["points"] == 0 and till["available_change"] == -40
    assert (
        api.ok("POST", f"/programs/{SHOP}/members/sam/holds/basket-77/capture", shop_a, {}, status=201)["details"][
            "captured"
        ]
        == "40"
    )


def test_idempotency_key_race_writes_exactly_once(api: HttpApi) -> None:
    # Given 12 concurrent requests under one Idempotency-Key, each with its own body
    fund(api, "ida")
    ida, key = member_key(api, "ida"), uuid.uuid4().hex
    path = f"/programs/{SHOP}/members/ida/redemptions"
    before = entries(api)

    def send(n: int) -> requests.Response:
        body = {"points": 10 + n, "reference": f"race-{n}"}
        return HttpApi(api.sandbox).call("POST", path, ida, body, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(send, range(12)))
    # Then exactly one ran: one 201, eleven 409s, and one spend written
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201] + [409] * 11, [r.text for r in replies]
    assert {r.json()["code"] for r in replies if r.status_code == 409} <= {
        "idempotency_conflict",
        "idempotency_in_progress",
    }
    assert entries(api) == before + 1
    won = next(r for r in replies if r.status_code == 201).json()
    assert balance(api, "ida") == (1000 + won["entry"]["points"], 0)
    assert audit(*api.services.ledger_store.ledger_records()).ok


def test_bad_keys_and_reaching_outside_are_problems_that_write_and_reveal_nothing(api: HttpApi) -> None:
    fund(api, "kim")
    services, now = api.services, datetime.now(UTC)
    kim = Principal(kind=PrincipalKind.MEMBER, id="kim", programs=(SHOP,))
    expired = mint_key(services.access_items, kim, now=now - timedelta(days=2), expires_at=now - timedelta(days=1))
    revoked = mint_key(services.access_items, kim)
    services.access_items.revoke_key(revoked.record.key_id, now, "admin:ops", "lost phone")
    redeem = f"/programs/{SHOP}/members/kim/redemptions"
    body = {"points": 1, "reference": "k"}
    before = entries(api)
    refused = {
        "key_missing": api.call("POST", redeem, None, body),
        "key_invalid": api.call("POST", redeem, "pb_not-a-key", body),
        "key_expired": api.call("POST", redeem, expired.key, body),
        "key_revoked": api.call("POST", redeem, revoked.key, body),
    }
    for code, reply in refused.items():
        problem(reply, 401, code)
    # A key of another program, and a body naming another member: the same 403 whether that member exists
    elsewhere = api.key(PrincipalKind.MEMBER, "kim", (AIR,))
    problem(api.call("POST", redeem, elsewhere, body), 403, "forbidden")
    quote = {"member": "pat", "points": 10}
    nobody = {"member": "nobody-at-all", "points": 10}
    kim_key = member_key(api, "kim")
    real, invented = (api.call("POST", "/agreements/shop-air/quotes", kim_key, b) for b in (quote, nobody))
    assert problem(real, 403, "forbidden")["detail"] == problem(invented, 403, "forbidden")["detail"]
    assert entries(api) == before


def test_a_table_reader_learns_no_card_number(api: HttpApi) -> None:
    # Given a shopper whose loyalty card (a till) and payment card (typed into a Square-style note as
    # the identity) earned points, and a till that links the loyalty card to his account
    sb, key = api.sandbox, identity_key(api.sandbox)
    loyalty, payment_card = "6012 5555 01", "5500005555555559"
    for number, ref in ((loyalty, "c-1"), (payment_card, "c-2")):
        identity = Identity(kind=IdentityKind.CARD, value=hash_card(key.encode(), number))
        event = {
            "kind": "points",
            "program": SHOP,
            "channel": "pos",
            "source": "seed",
            "external_id": ref,
            "identity": identity.model_dump(mode="json"),
            "occurred_at": datetime.now(UTC).isoformat(),
            "points": 30,
            "reason": "earned",
        }
        sb.client("sqs").send_message(QueueUrl=sb.resource("IngestQueue"), MessageBody=json.dumps({"event": event}))
    sb.wait_for_idle(timeout=60)
    fund(api, "carl", 1)
    till = api.key(PrincipalKind.CHANNEL, "till-cards", (SHOP,))
    linked = api.ok(
        "POST", f"/programs/{SHOP}/members/carl/identities", till, {"kind": "card", "value": loyalty}, status=201
    )
    assert linked["merged"]
    # When an insider with read access to the table reads every item, looking for the numbers
    items = json.dumps(list(api.services.table.scan()), default=str)
    # Then neither number is there in any spelling, while the card still finds its member
    for spelling in (loyalty, loyalty.replace(" ", ""), payment_card, payment_card[-10:]):
        assert spelling not in items
    card = Identity(kind=IdentityKind.CARD, value=hash_card(key.encode(), "6012-5555-01"))
    assert api.services.members.member_for(card.key) == "carl"
    assert balance(api, "carl") == (31, 0)


def test_a_flood_of_codes_to_one_phone_stops_at_five_an_hour(api: HttpApi) -> None:
    # Given an attacker with five member accounts, each asking for codes to a victim's phone
    sb = api.sandbox
    inbox = code_inbox(sb.client("events"), sb.client("sqs"), sb.resource("NotificationsBus"))
    target = {"kind": "phone", "value": "+44 7911 123457"}
    members = [f"flooder-{n}" for n in range(5)]
    asked = [
        api.call("POST", f"/programs/{SHOP}/members/{m}/identities/verifications", member_key(api, m), target)
        for m in members + members
    ]
    # Then the phone gets five codes in the hour, whoever asks; every later request is a 429 with Retry-After
    statuses = [r.status_code for r in asked]
    assert statuses.count(201) == 5 and statuses.count(429) == 5, statuses
    sent = [r.json()["verification_id"] for r in asked if r.status_code == 201]
    assert {inbox.detail(v)["to"] for v in sent} == {"+447911123457"}
    for reply in (r for r in asked if r.status_code == 429):
        body = problem(reply, 429, "too_many_codes")
        assert 0 < body["retry_after"] <= 3600 and reply.headers["Retry-After"] == str(body["retry_after"])
        assert "7911" not in reply.text
    # And one member cannot buy fresh guesses for another address without end either
    mine = member_key(api, "guesser")
    path = f"/programs/{SHOP}/members/guesser/identities/verifications"
    tries = [api.call("POST", path, mine, {"kind": "email", "value": f"g{n}@example.com"}) for n in range(6)]
    assert [r.status_code for r in tries] == [201] * 5 + [429]


# --- evidence: the insider draw, the recomputed chain (these two run last: they forge table items) ---


def _old_attack(draw_item: dict[str, Any], tickets: dict[str, int], insider: str) -> int | None:
    """The insider's recipe against the old draws: read the seed from the draw item, then find the
    ticket count that makes `insider` win. None: the table gives nothing to compute it from."""
    seed = draw_item.get("seed")
    if not seed:
        return None
    for count in range(1, 11):
        if pick_winners(str(seed), {**tickets, insider: count}, 1) == [insider]:
            return count
    return None


def test_the_insider_draw_cannot_be_rigged_and_tampering_after_the_freeze_is_detected(api: HttpApi) -> None:
    sb, admin = api.sandbox, api.key(PrincipalKind.ADMIN, "ops")
    for member in ("dora", "eli", "ina"):
        fund(api, member)
    closes = datetime.now(UTC) + timedelta(seconds=4)
    spec = {"id": "gala", "prize": "Gala tickets", "ticket_points": 10, "closes_at": closes.isoformat()}
    api.ok("POST", f"/admin/programs/{SHOP}/draws", admin, spec, status=201)
    for member, count in (("dora", 3), ("eli", 2)):
        api.ok(
            "POST",
            f"/programs/{SHOP}/members/{member}/draws/gala/entries",
            member_key(api, member),
            {"tickets": count, "reference": f"gala-{member}"},
            status=201,
        )
    # Given an insider who reads every item of the draw's partition before the close
    table = api.services.table
    partition = list(table.partition(keys.draw(SHOP, "gala").pk))
    draw_item = json.loads(next(str(item["body"]) for item in partition if item["type"] == "draw"))
    # When he runs the old attack: there is no seed, nor anything the randomness derives from
    assert _old_attack(draw_item, {"dora": 3, "eli": 2}, "ina") is None
    assert not {"seed", "commitment"} & set(draw_item)
    assert draw_item["signature"] == "" and draw_item["entrants_root"] == ""
    # And the randomness needs the draw key, which only the draw function may sign with: not the ingest
    # function, nor the API function that serves every other route
    for function in ("IngestFunction", "ApiFunction"):
        with pytest.raises(ClientError) as denied:
            sb.client_as(function, "kms").sign(
                KeyId=sb.arn("DrawSigningKey"),
                Message=b"x",
                MessageType="RAW",
                SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
            )
        assert "AccessDenied" in denied.value.response["Error"]["Code"], function
    api.ok(
        "POST",
        f"/programs/{SHOP}/members/ina/draws/gala/entries",
        member_key(api, "ina"),
        {"tickets": 1, "reference": "gala-ina"},
        status=201,
    )
    time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 0.2)  # waits for the close
    revealed = api.ok("POST", f"/admin/programs/{SHOP}/draws/gala/reveal", admin, status=201)
    # Then anyone can verify the draw, with the key's public half from KMS
    public_key = bytes(sb.client("kms").get_public_key(KeyId=sb.resource("DrawSigningKey"))["PublicKey"])
    published = api.ok("GET", f"/programs/{SHOP}/draws/gala", member_key(api, "eli"))
    assert published == revealed
    assert published["tickets"] == {"dora": 3, "eli": 2, "ina": 1}
    assert verify_draw(published, public_key) == []
    # And tampering with the entrants after the freeze (more tickets for ina, ina the winner) is detected
    frozen = next(item for item in table.partition(keys.draw(SHOP, "gala").pk, keys.REVEAL_PREFIX))
    table.put({**frozen, "body": json.dumps({"dora": 3, "eli": 2, "ina": 50})})
    stored = next(item for item in table.partition(keys.draw(SHOP, "gala").pk) if item["type"] == "draw")
    table.put({**stored, "body": json.dumps({**json.loads(str(stored["body"])), "winner_ids": ["ina"]})})
    tampered = api.ok("GET", f"/programs/{SHOP}/draws/gala", member_key(api, "eli"))
    problems = verify_draw(tampered, public_key)
    assert any("the entrants were changed after the freeze" in p for p in problems), problems
    assert any("the signature does not verify" in p for p in problems), problems


def test_the_recomputed_chain_fails_the_audit_which_names_the_account(api: HttpApi) -> None:
    sb, services = api.sandbox, api.services
    # Given two members with a 100-point credit and a spend each (keyed with the stack's chain key)
    for member in ("vida", "wade"):
        api.services.ledger.earn(
            Earn(
                program=SHOP,
                member=member,
                points=100,
                source="seed",
                external_id=f"{member}-100",
                reason="order",
                event_time=datetime.now(UTC),
            )
        )
        api.ok(
            "POST",
            f"/programs/{SHOP}/members/{member}/redemptions",
            member_key(api, member),
            {"points": 10, "reference": f"{member}-mug"},
            status=201,
        )
    # And the hourly digest of every account head, in the Object Lock bucket
    assert sb.run_function("DigestFunction", simulate=True)["accounts"] >= 2
    key = str(sb.client("secretsmanager").get_secret_value(SecretId=sb.resource("ChainHashKey"))["SecretString"])

    def pointbridge_audit() -> dict[str, Any]:
        digests = (sb.client("s3"), sb.resource("DigestsBucket"))
        return run_audit(sb.resource("PointsTable"), sb.client("dynamodb"), chain_key=key.encode(), digests=digests)

    assert pointbridge_audit()["accounts_changed"] == []
    # When someone with write access to the table turns each 100-point credit into 100,100 and
    # recomputes the chain, the balance and the lot: vida's unkeyed, wade's with a guessed key
    inflate_credit(services, SHOP, "vida", "seed:vida-100", 100_000, unkeyed)
    inflate_credit(services, SHOP, "wade", "seed:wade-100", 100_000, keyed_with(b"pointbridge-dev"))
    assert balance(api, "vida") == (100_090, 0)
    # Then `pointbridge audit` fails and names both accounts
    result = pointbridge_audit()
    assert not result["ok"]
    assert result["accounts_changed"] == [f"{SHOP}/vida", f"{SHOP}/wade"]
    lines = report_lines(sb.resource("PointsTable"), result)
    assert f"  ACCOUNTS CHANGED (digest of {result['digest_at']}): {SHOP}/vida, {SHOP}/wade" in lines
    assert lines[-1] == "  FAILED"
    # And no table writer can touch the digest that convicts them: writes and deletes are refused
    bucket = sb.resource("DigestsBucket")
    [digest] = sb.client("s3").list_objects_v2(Bucket=bucket, Prefix="digests/")["Contents"]
    for function in ("ApiFunction", "IngestFunction"):
        writer = sb.client_as(function, "s3")
        with pytest.raises(ClientError) as overwrite:
            writer.put_object(Bucket=bucket, Key=digest["Key"], Body=b"{}")
        with pytest.raises(ClientError) as delete:
            writer.delete_object(Bucket=bucket, Key=digest["Key"])
        assert overwrite.value.response["Error"]["Code"] == delete.value.response["Error"]["Code"] == "AccessDenied"
