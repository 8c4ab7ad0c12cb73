"""Linking two identities: a provisional member folds into the other through ledger transfers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.earning.core import MAX_DECISIONS, IngestCore, LinkResult, MergeConflictError, provisional_member
from shared.errors import (
    AccountClosedError,
    ContentionError,
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
                self._merge(program, named, self._follow(profile.merged_into), at)
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
        return LinkResult(self._merge(program, merged, survivor, at), merged)

    def _merge(self, program: str, merged: str, survivor: str, at: datetime | None) -> str:
        """Steps (2) to (4) of a link; returns the survivor (followed, if it was merged meanwhile)."""
        # Everything moves at once and the account closes in the same transaction (even an account
        # not opened yet), so an earn that resolved the merged member just before cannot land there.
        for _ in range(MAX_DECISIONS):
            try:
                self._ledger.transfer(
                    Transfer(
                        program=program,
                        member=merged,
                        to_member=survivor,
                        external_id=f"merge:{merged}:{survivor}",
                        reason="identities linked: provisional account merged",
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

    def _provisional(self, member: str) -> bool:
        profile = self._members.profile(member)
        return bool(profile and profile.provisional)
