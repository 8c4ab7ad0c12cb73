"""Members enrolled from a brand's own member list (`POST /admin/programs/{program}/members/imports`).

Each record carries identities already hashed with the stack's identity key (the API hashes the
raw e-mail, phone or card before anything here sees it), a name and a language. Enrolling is
idempotent: a record whose identities are all the member's, with the same name and language, changes
nothing. A record is refused, and nothing of it is written, when its identities belong to different
members, or to a member other than the one it names: support decides those (a merge, with a reason).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from shared.errors import IdentityTakenError

if TYPE_CHECKING:
    from shared.events.model import Identity
    from shared.members.store import MemberDirectory

Outcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class Enrolment:
    """One member of a brand's list: who they are (hashed identities), their name and language."""

    identities: tuple[Identity, ...]
    member: str = ""  # the brand's own id for the member; "" = derived from the first identity
    name: str = ""
    language: str = ""


@dataclass(frozen=True)
class Enrolled:
    member: str
    outcome: Outcome


def enrolled_member(identity: Identity) -> str:
    """A new member's id, derived from their first identity: two imports of one record make one member."""
    return "mb-" + hashlib.sha256(identity.key.encode()).hexdigest()[:24]


def enrol(directory: MemberDirectory, record: Enrolment) -> Enrolled:
    """Claim the record's identities for one member and set the name and language (see the module)."""
    if not record.identities:
        raise ValueError("a record names at least one identity")
    holders = {key: directory.member_for(key) for key in dict.fromkeys(i.key for i in record.identities)}
    members = {holder for holder in holders.values() if holder is not None}
    if record.member and members - {record.member}:
        raise IdentityTakenError(f"its identities belong to another member, not {record.member}")
    if len(members) > 1:
        raise IdentityTakenError("its identities belong to different members: support merges them, with a reason")
    member = record.member or (members.pop() if members else enrolled_member(record.identities[0]))
    created = directory.profile(member) is None
    for key, holder in holders.items():
        if holder is None and directory.claim(key, member, provisional=False) != member:
            raise IdentityTakenError("one of its identities was claimed by another member meanwhile")
    claimed = any(holder is None for holder in holders.values())
    detailed = directory.set_details(member, record.name, record.language)
    if created:
        return Enrolled(member, "created")
    return Enrolled(member, "updated" if claimed or detailed else "unchanged")
