from __future__ import annotations

from typing import TYPE_CHECKING

from shared.access.keys import PrincipalKind
from shared.events.identity import hash_email
from shared.events.model import Identity, IdentityKind
from shared.infra.settings import get_settings
from shared.ledger.audit import audit
from shared.ledger.commands import Earn
from tests.conftest import T0

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from tests.integration.api.conftest import Client


def test_linking_an_email_folds_its_provisional_points_into_the_member(
    services: Services, api: Client, funded: Ledger, store: DynamoLedgerStore
) -> None:
    # Given points earned online under an e-mail nobody had claimed (a provisional member)
    hashed = hash_email(get_settings().identity_hash_key.encode(), "Ann@Example.com")
    email = Identity(kind=IdentityKind.EMAIL, value=hashed)
    services.members.claim(email.key, "prov-ann", provisional=True)
    earn = Earn(program="demo", member="prov-ann", points=50, source="s", external_id="o9", reason="o9", event_time=T0)
    funded.earn(earn, at=T0)
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    # When the member links that e-mail (sent raw; hashed by the API)
    path = "/programs/demo/members/m1/identities"
    reply = api.call("POST", path, key=key, body={"kind": "email", "value": " ann@example.com "})
    # Then the provisional balance moved to the member through the ledger, and nothing raw was stored
    assert reply.status == 201, reply.body
    assert reply.body == {"member": "m1", "merged": "prov-ann"}
    assert api.call("GET", "/programs/demo/members/m1/balance", key=key).body["available"] == 1050
    assert not any("example.com" in str(item) for item in services.table.scan())
    assert audit(*store.ledger_records()).ok
    bad = api.call("POST", path, key=key, body={"kind": "email", "value": "not-an-email"})
    assert (bad.status, bad.code) == (400, "invalid_identity")


def test_a_card_number_links_however_it_is_spelled(api: Client, funded: Ledger, services: Services) -> None:
    # Given till points under card 6012345678, held by a provisional member
    card = Identity(kind=IdentityKind.CARD, value="6012345678")
    services.members.claim(card.key, "prov-card", provisional=True)
    earn = Earn(
        program="demo", member="prov-card", points=42, source="till", external_id="r1", reason="r1", event_time=T0
    )
    funded.earn(earn, at=T0)
    key = api.key_for(PrincipalKind.MEMBER, "m1")
    path = "/programs/demo/members/m1/identities"
    # When the member types the number as printed on the card, with spaces
    reply = api.call("POST", path, key=key, body={"kind": "card", "value": "6012 3456-78"})
    # Then it is the same card: the till's points fold into the member
    assert reply.status == 201, reply.body
    assert reply.body == {"member": "m1", "merged": "prov-card"}
    assert api.call("GET", "/programs/demo/members/m1/balance", key=key).body["available"] == 1042
    bad = api.call("POST", path, key=key, body={"kind": "card", "value": "12#4"})
    assert (bad.status, bad.code) == (400, "invalid_identity")
