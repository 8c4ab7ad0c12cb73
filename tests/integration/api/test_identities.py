"""Identities are linked with proof: a code for e-mails and phones, the channel that saw a card, the
partner for its own ids; another registered member's identity never moves, support merges with a reason."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import boto3
import pytest

from shared.access.keys import PrincipalKind
from shared.events.identity import hash_card, hash_email, hash_phone
from shared.events.model import Identity, IdentityKind
from shared.infra.settings import get_settings
from shared.ledger.audit import audit
from shared.ledger.commands import Earn
from tests.conftest import T0
from tests.support.inbox import CodeInbox, code_inbox

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from tests.integration.api.conftest import Client
    from tests.integration.conftest import Clock

M1 = "/programs/demo/members/m1"
CODES = f"{M1}/identities/verifications"


@pytest.fixture
def inbox(services: Services) -> CodeInbox:
    return code_inbox(boto3.client("events"), boto3.client("sqs"), get_settings().notifications_bus)


def _provisional(services: Services, ledger: Ledger, identity: Identity, member: str, points: int) -> None:
    """Points earned under an identity nobody registered had claimed (a provisional member)."""
    services.members.claim(identity.key, member, provisional=True)
    earn = Earn(program="demo", member=member, points=points, source="s", external_id=member, reason="o", event_time=T0)
    ledger.earn(earn, at=T0)


def _email(address: str) -> Identity:
    return Identity(kind=IdentityKind.EMAIL, value=hash_email(get_settings().identity_hash_key.encode(), address))


def _card(number: str) -> Identity:
    """A card as every channel stores it: the keyed hash of its number."""
    return Identity(kind=IdentityKind.CARD, value=hash_card(get_settings().identity_hash_key.encode(), number))


def test_a_code_proves_an_email_and_folds_its_provisional_points_into_the_member(
    services: Services, api: Client, funded: Ledger, store: DynamoLedgerStore, inbox: CodeInbox
) -> None:
    # Given points earned online under an e-mail nobody had claimed
    _provisional(services, funded, _email("ann@example.com"), "prov-ann", 50)
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    # When the member asks for a code for that e-mail (sent raw; hashed by the API)
    sent = api.call("POST", CODES, key=key, body={"kind": "email", "value": " Ann@Example.com "})
    assert sent.status == 201, sent.body
    verification = sent.body["verification_id"]
    # Then the code goes out as an event to the address, and the table keeps neither the address nor the code
    event = inbox.detail(verification)
    assert (event["to"], event["member"], event["channel"]) == ("ann@example.com", "m1", "email")
    code = event["code"]
    items = [str(item) for item in services.table.scan()]
    assert not any("example.com" in item or f"'{code}'" in item for item in items)
    # And a wrong code spends an attempt and links nothing
    confirm = f"{CODES}/{verification}/confirm"
    wrong = api.call("POST", confirm, key=key, body={"code": "000000" if code != "000000" else "111111"})
    assert (wrong.status, wrong.code, wrong.body["attempts_left"]) == (422, "wrong_code", 4)
    # When the member confirms the code
    linked = api.call("POST", confirm, key=key, body={"code": code})
    # Then the provisional balance moved to the member through the ledger
    assert linked.status == 201, linked.body
    assert linked.body == {"member": "m1", "merged": "prov-ann"}
    assert api.call("GET", f"{M1}/balance", key=key).body["available"] == 1050
    assert audit(*store.ledger_records()).ok
    # And the code works once
    again = api.call("POST", confirm, key=key, body={"code": code})
    assert (again.status, again.code) == (422, "code_expired")
    bad = api.call("POST", CODES, key=key, body={"kind": "email", "value": "not-an-email"})
    assert (bad.status, bad.code) == (400, "invalid_identity")


def test_a_code_allows_five_attempts_for_ten_minutes_and_only_for_its_member(
    services: Services, api: Client, funded: Ledger, clock: Clock, inbox: CodeInbox
) -> None:
    key, other = api.key_for(PrincipalKind.MEMBER, "m1"), api.key_for(PrincipalKind.MEMBER, "m2")
    first = api.call("POST", CODES, key=key, body={"kind": "phone", "value": "+44 7911 123456"}).body
    code = inbox.code_for(first["verification_id"])
    wrong = "000000" if code != "000000" else "111111"
    # Another member cannot confirm m1's code, even by its own path: the verification is m1's
    theirs = f"/programs/demo/members/m2/identities/verifications/{first['verification_id']}/confirm"
    assert api.call("POST", theirs, key=other, body={"code": code}).code == "unknown_verification"
    confirm = f"{CODES}/{first['verification_id']}/confirm"
    codes = [api.call("POST", confirm, key=key, body={"code": wrong}).code for _ in range(5)]
    assert codes == ["wrong_code"] * 5
    # After five wrong guesses even the right code is refused
    assert api.call("POST", confirm, key=key, body={"code": code}).code == "too_many_attempts"
    # And a code confirmed after ten minutes has expired
    second = api.call("POST", CODES, key=key, body={"kind": "phone", "value": "07911 123456", "region": "GB"}).body
    clock.now += timedelta(minutes=11)
    late = api.call("POST", f"{CODES}/{second['verification_id']}/confirm", key=key, body={"code": "123456"})
    assert late.code == "code_expired"
    phone = hash_phone(get_settings().identity_hash_key.encode(), "+447911123456")
    assert services.members.member_for(Identity(kind=IdentityKind.PHONE, value=phone).key) is None


def test_nobody_links_an_identity_it_cannot_vouch_for(api: Client, funded: Ledger, store: DynamoLedgerStore) -> None:
    path = f"{M1}/identities"
    member = api.key_for(PrincipalKind.MEMBER, "m1")
    till = api.key_for(PrincipalKind.CHANNEL, "till-1")
    partner = api.key_for(PrincipalKind.PARTNER, "acme")
    before = len(store.ledger_records()[0])
    # A member does not link by saying so: it proves e-mails and phones with a code
    assert api.call("POST", path, key=member, body={"kind": "card", "value": "6012345678"}).code == "forbidden"
    refusals = [
        api.call("POST", path, key=till, body={"kind": "email", "value": "ann@example.com"}),
        api.call("POST", path, key=till, body={"kind": "partner", "value": "AIR-1", "scope": "acme"}),
        api.call("POST", path, key=till, body={"kind": "customer", "value": "c-9", "scope": "shopify:other.shop"}),
        api.call("POST", path, key=partner, body={"kind": "card", "value": "6012345678"}),
        api.call("POST", path, key=partner, body={"kind": "partner", "value": "AIR-1", "scope": "skyair"}),
    ]
    assert [(r.status, r.code) for r in refusals] == [(403, "proof_required")] * 5
    assert len(store.ledger_records()[0]) == before


def test_the_till_that_saw_a_card_links_it_however_it_is_spelled(
    api: Client, funded: Ledger, services: Services
) -> None:
    # Given till points under card 6012345678, held by a provisional member
    _provisional(services, funded, _card("6012345678"), "prov-card", 42)
    till = api.key_for(PrincipalKind.CHANNEL, "till-1")
    # When the till, with the card in front of it, links the number as printed (with spaces)
    reply = api.call("POST", f"{M1}/identities", key=till, body={"kind": "card", "value": "6012 3456-78"})
    # Then it is the same card: the till's points fold into the member
    assert reply.status == 201, reply.body
    assert reply.body == {"member": "m1", "merged": "prov-card"}
    assert api.call("GET", f"{M1}/balance", key=till).body["available"] == 1042
    bad = api.call("POST", f"{M1}/identities", key=till, body={"kind": "card", "value": "12#4"})
    assert (bad.status, bad.code) == (400, "invalid_identity")
    # And a shop links its own customer ids (Shopify, Square), a partner its own member ids
    shop = api.key_for(PrincipalKind.CHANNEL, "shopify:acme.myshopify.com")
    customer = api.call("POST", f"{M1}/identities", key=shop, body={"kind": "customer", "value": "8812"})
    assert customer.body == {"member": "m1", "merged": ""}
    customer_id = Identity(kind=IdentityKind.CUSTOMER, value="8812", scope="shopify:acme.myshopify.com")
    assert services.members.member_for(customer_id.key) == "m1"


def test_a_registered_members_identity_never_moves_until_support_merges_with_a_reason(
    api: Client, funded: Ledger, services: Services, store: DynamoLedgerStore
) -> None:
    # Given m2, a registered member with 30 points, holding card 6012000001
    card = _card("6012000001")
    services.members.claim(card.key, "m2", provisional=False)
    funded.earn(Earn(program="demo", member="m2", points=30, source="s", external_id="m2", reason="o", event_time=T0))
    till = api.key_for(PrincipalKind.CHANNEL, "till-1")
    # When a till links that card to m1
    taken = api.call("POST", f"{M1}/identities", key=till, body={"kind": "card", "value": "6012000001"})
    # Then it is refused, without saying whose it is, and nothing moved
    assert (taken.status, taken.code) == (409, "identity_taken")
    assert "m2" not in str(taken.body)
    assert services.members.member_for(card.key) == "m2"
    # When support, having checked both accounts are one person's, merges them with a reason
    support = api.key_for(PrincipalKind.ADMIN, "helpdesk", (), role="support")
    merge = {"kind": "card", "value": "6012 0000 01", "reason": "ticket 4411: same person, two sign-ups"}
    merged = api.call("POST", "/admin/programs/demo/members/m1/merges", key=support, body=merge)
    # Then m2 folds into m1, and the merge entry keeps who did it and why
    assert merged.body == {"member": "m1", "merged": "m2"}, merged.body
    assert services.members.member_for(card.key) == "m1"
    entries = store.entries("demo", "m1", after_seq=0, limit=10)
    assert any("by support helpdesk: ticket 4411" in e.reason for e in entries)
    assert api.call("GET", f"{M1}/balance", key=till).body["available"] == 1030
    assert audit(*store.ledger_records()).ok
    # And only support merges
    operator = api.key_for(PrincipalKind.ADMIN, "ops", ())
    assert api.call("POST", "/admin/programs/demo/members/m1/merges", key=operator, body=merge).code == "forbidden"


def test_codes_are_limited_per_member_and_per_identity_each_hour(
    services: Services, api: Client, funded: Ledger, clock: Clock, inbox: CodeInbox
) -> None:
    # Given m1 asking for codes to five addresses in one hour (each is sent)
    m1, m2 = api.key_for(PrincipalKind.MEMBER, "m1"), api.key_for(PrincipalKind.MEMBER, "m2")
    clock.now = T0.replace(minute=40, second=0, microsecond=0)
    sent = [api.call("POST", CODES, key=m1, body={"kind": "email", "value": f"a{n}@example.com"}) for n in range(5)]
    assert [r.status for r in sent] == [201] * 5
    # When it asks for a sixth
    sixth = api.call("POST", CODES, key=m1, body={"kind": "email", "value": "a5@example.com"})
    # Then it is refused until the next hour, with the seconds left in the body and in Retry-After
    assert (sixth.status, sixth.code, sixth.body["retry_after"]) == (429, "too_many_codes", 20 * 60)
    assert sixth.headers["retry-after"] == "1200"
    assert "a5@example.com" not in str(sixth.body)
    # And nothing was sent for it, nor kept: the table holds counters with their expiry, never the address
    assert len({inbox.detail(r.body["verification_id"])["to"] for r in sent}) == 5
    counters = [i for i in services.table.scan() if str(i["PK"]).startswith("CODES#")]
    assert counters and all(int(i["expires"]) > int(clock.now.timestamp()) for i in counters)
    assert not any("example.com" in str(i) for i in counters)
    # When other members ask for one address (m2, then members m3-m6): five codes an hour, whoever asks
    target = {"kind": "phone", "value": "+44 7911 123456"}
    others = [m2, *(api.key_for(PrincipalKind.MEMBER, f"m{n}") for n in range(3, 7))]
    paths = ["/programs/demo/members/m2", *(f"/programs/demo/members/m{n}" for n in range(3, 7))]
    replies = [
        api.call("POST", f"{path}/identities/verifications", key=key, body=target)
        for path, key in zip([*paths, paths[0]], [*others, others[0]], strict=True)
    ]
    assert [r.status for r in replies] == [201] * 5 + [429]
    assert "+44" not in str(replies[-1].body) and "7911" not in str(replies[-1].body)
    # Then the next hour, m1 asks again
    clock.now += timedelta(minutes=20)
    assert api.call("POST", CODES, key=m1, body={"kind": "email", "value": "a5@example.com"}).status == 201
