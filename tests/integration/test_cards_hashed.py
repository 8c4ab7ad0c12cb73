"""Card numbers stored before cards were hashed are rewritten as their keyed hashes, resumably, and a
card whose hash another member holds meanwhile is named for support rather than moved."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.events.identity import hash_card
from shared.events.model import Identity, IdentityKind

if TYPE_CHECKING:
    from functions.services import Services

KEY = b"stack-identity-key"


def _hashed(number: str) -> str:
    return Identity(kind=IdentityKind.CARD, value=hash_card(KEY, number)).key


def test_stored_card_numbers_become_keyed_hashes_and_a_taken_hash_is_left_for_support(services: Services) -> None:
    members = services.members
    # Given links written by an earlier version: two raw card numbers, and one whose hash a newer
    # provisional member already holds (the card was seen again after the deploy)
    members.claim("card#6012345678", "old-1", provisional=False)
    members.claim("card#ABC123", "old-2", provisional=True)
    members.claim("card#6012000009", "old-3", provisional=False)
    members.claim(_hashed("6012000009"), "pv-new", provisional=True)
    members.claim("email#" + "a" * 64, "old-1", provisional=False)

    # When the migration runs
    done = members.hash_stored_cards(lambda number: hash_card(KEY, number))

    # Then each card is found under its hash, by the same member, and its number is gone from the table
    assert (done.hashed, done.conflicts) == (2, [("old-3", "pv-new")])
    assert members.member_for(_hashed("6012345678")) == "old-1"
    assert members.member_for(_hashed("abc123")) == "old-2"
    assert members.member_for("card#6012345678") is None and members.member_for("card#ABC123") is None
    profile = members.profile("old-1")
    assert profile is not None and profile.identities == {_hashed("6012345678"), "email#" + "a" * 64}
    old_2 = members.profile("old-2")
    assert old_2 is not None and old_2.provisional and old_2.identities == {_hashed("ABC123")}
    table = str(list(services.table.scan()))
    assert "6012345678" not in table and "ABC123" not in table
    # And the conflict stays as it was until support merges; a second run changes nothing else
    assert members.member_for("card#6012000009") == "old-3"
    again = members.hash_stored_cards(lambda number: hash_card(KEY, number))
    assert (again.hashed, again.conflicts) == (0, [("old-3", "pv-new")])
