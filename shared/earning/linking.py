"""Linking identities: a provisional member folds into a registered one through ledger transfers.

Three ways in:

- `link(a, b)`: two identities are one person (ingest, the demo): a provisional member folds into
  the other; two registered members are an operator's decision.
- `claim(member, identity)`: a registered member takes an identity its caller has proved it holds
  (the channel saw the card, the partner vouches for its id, the member confirmed a code). An
  identity nobody holds is claimed once (a conditional put); one a provisional member holds brings
  that member's points along; one another registered member holds is refused, never moved. Two
  members claiming one identity at once: exactly one wins.
- `merge(merged, survivor, reason)`: support folds one member into another, registered or not,
  with a reason the transfer entry keeps.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from shared.earning.core import MAX_DECISIONS, IngestCore, LinkResult, MergeConflictError, provisional_member
from shared.errors import (
    AccountClosedError,
    ContentionError,
    IdentityTakenError,
    InvalidInputError,
)
from shared.events.model import (
    Identity,
    IdentityKind,
)
from shared.ledger.commands import Transfer
from shared.members import activity

if TYPE_CHECKING:
    from datetime import datetime

MAX_MERGE_ID = 200  # the ledger's limit for an external id
LINKED = "identities linked: provisional account merged"


class Linking(IngestCore):
    def link(self, program: str, a: Identity, b: Identity, at: datetime | None = None) -> LinkResult:
        """Make two identities one member: a provisional member folds into the other through the ledger.

        Steps, each idempotent, in an order a repeated link resumes from wherever a stopped one left
        off (docs/ledger.md, "Crash points"): (1) the merge pointer on the provisional member's
        profile, so new events land on the survivor; (2) the ledger transfer, which moves every
        point and closes the account in one transaction; (3) the merged member's qualifying activity,
        once; (4) each identity repointed (link and profile together). A link repeated after a stop
        meets the provisional member through an identity not yet repointed and finishes its merge.
        """
        named_a, named_b = self._named(a), self._named(b)
        resumed = ""
        for named in dict.fromkeys(n for n in (named_a, named_b) if n is not None):
            profile = self._members.profile(named)
            if profile is not None and profile.merged_into:
                resumed = named  # a merge that stopped before its end: finish it first
                self._merge(program, named, self._follow(profile.merged_into), LINKED, at)
        member_a = self._follow(named_a) if named_a is not None else None
        member_b = self._follow(named_b) if named_b is not None else None
        if member_a is None and member_b is None:
            member_a = self._members.claim(a.key, provisional_member(a), provisional=True)
        if member_a is None or member_b is None:
            survivor = member_a or member_b
            assert survivor is not None
            missing = a if member_a is None else b
            self._members.claim(missing.key, survivor, provisional=False)
            return LinkResult(survivor)
        if member_a == member_b:
            return LinkResult(member_a, resumed)
        prov_a, prov_b = self._provisional(member_a), self._provisional(member_b)
        if not prov_a and not prov_b:
            raise MergeConflictError(
                f"{member_a} and {member_b} are both registered members; merge them by hand", a=member_a, b=member_b
            )
        survivor, merged = (member_b, member_a) if prov_a and not prov_b else (member_a, member_b)
        self._members.mark_merged(merged, survivor)
        return LinkResult(self._merge(program, merged, survivor, LINKED, at), merged)

    def claim(self, program: str, member: str, identity: Identity, at: datetime | None = None) -> LinkResult:
        """A registered member takes an identity its caller proved it holds; IdentityTakenError when
        another registered member holds it (it never moves; support decides)."""
        claimant = self._follow(member)
        if self._provisional(claimant):
            raise InvalidInputError("identities are claimed by registered members, not provisional ones")
        for _ in range(MAX_DECISIONS):
            holder = self._known(identity)
            if holder is None:
                holder = self._members.claim(identity.key, claimant, provisional=False)
                if holder == claimant:
                    return LinkResult(claimant)
                continue  # another claim won meanwhile: judge against its holder
            if holder == claimant:
                return LinkResult(claimant)
            if not self._provisional(holder):
                raise IdentityTakenError("this identity belongs to another member; ask support to merge the accounts")
            if self._members.merge_once(holder, claimant):
                return LinkResult(self._merge(program, holder, claimant, LINKED, at), holder)
            # Another member folded the provisional holder in first: the identity is theirs now.
        raise ContentionError("the identity kept changing hands; retry the link", member=claimant)

    def merge(self, program: str, merged: str, survivor: str, reason: str, at: datetime | None = None) -> LinkResult:
        """Support folds `merged` into `survivor` (either may be registered), with the reason on the entry.

        Repeated after a stop between the merge pointer and the end (a crash), it finishes that merge
        first, as a repeated link does: the pointer alone would make the two look merged already.
        """
        pointer = self._members.profile(merged)
        if pointer is not None and pointer.merged_into:
            self._merge(program, merged, self._follow(pointer.merged_into), reason, at)
        merged, survivor = self._follow(merged), self._follow(survivor)
        if merged == survivor:
            return LinkResult(survivor)
        if not self._members.merge_once(merged, survivor):
            raise IdentityTakenError(f"{merged} was merged into another member meanwhile")
        return LinkResult(self._merge(program, merged, survivor, reason, at), merged)

    def _merge(self, program: str, merged: str, survivor: str, reason: str, at: datetime | None) -> str:
        """Steps (2) to (4) of a link, claim or merge; returns the survivor (followed, if it was merged meanwhile)."""
        # Everything moves at once and the account closes in the same transaction (even an account
        # not opened yet), so an earn that resolved the merged member just before cannot land there.
        for _ in range(MAX_DECISIONS):
            try:
                self._ledger.transfer(
                    Transfer(
                        program=program,
                        member=merged,
                        to_member=survivor,
                        external_id=_merge_id(merged, survivor),
                        reason=reason,
                    ),
                    at=at,
                )
                break
            except AccountClosedError as closed:
                survivor = self._follow(closed.survivor)  # the survivor was itself merged meanwhile
        else:
            raise ContentionError(f"the survivor of {merged} kept moving; retry the link", member=merged)
        self._members.merge_tally(program, activity.ACTIVITY, merged, survivor)
        profile = self._members.profile(merged)
        for key in sorted(profile.identities if profile else ()):
            self._members.repoint(key, survivor)
        return survivor

    def _named(self, identity: Identity) -> str | None:
        """The member an identity names (merges not followed); None for an identity nobody has."""
        if identity.kind is IdentityKind.MEMBER:
            return identity.value
        if identity.kind is IdentityKind.ORDER:
            raise InvalidInputError("an order is not an identity that can be linked")
        return self._members.member_for(identity.key)

    def _known(self, identity: Identity) -> str | None:
        """The member holding an identity now (merges followed); None for an identity nobody has."""
        member = self._named(identity)
        return self._follow(member) if member else None

    def _provisional(self, member: str) -> bool:
        profile = self._members.profile(member)
        return bool(profile and profile.provisional)


def _merge_id(merged: str, survivor: str) -> str:
    """The merge transfer's external id: readable while it fits the ledger's ids, a digest beyond."""
    readable = f"merge:{merged}:{survivor}"
    if len(readable) <= MAX_MERGE_ID:
        return readable
    return "merge:" + hashlib.sha256(f"{merged}\x00{survivor}".encode()).hexdigest()
