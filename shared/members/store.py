"""The members area's items: identity links, profiles, tallies, tiers and their history, flags.

Keys in `shared.infra.keys`. An identity link is claimed once (a conditional put), so two channels
seeing a new card at once still make one member. The read ingest decides an earn on is one
consistent BatchGetItem of the member's items (`view`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.events.identity import is_card_hash
from shared.events.model import IdentityKind
from shared.infra import keys
from shared.infra.codec import parse_ts, to_item, ts
from shared.infra.counters import SHARDS, counters_update, shard_of
from shared.infra.table import TransactionCanceledError
from shared.ledger.contract import Tally
from shared.ledger.store import account_from, tally_update
from shared.members.records import Flag, FlagDecision, Profile, TierChange, TierRecord
from shared.members.verification import Verification
from shared.members.view import REFERRAL_AWAITING, MemberView, Referral, Tallied

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shared.infra.keys import ItemKey
    from shared.infra.table import Table

# The program figures count members per tier (`shared.projections.figures` reads them): the tier
# move's own transaction moves the counts, in the figures' TIERS bucket, sharded by member.
TIERS_BUCKET = "TIERS"
TIER_PREFIX = "tier:"


def tier_count_change(previous: str | None, tier: str) -> dict[str, int]:
    """How a tier move changes the tier counts: one more in `tier`, one less in the tier item's old one."""
    if previous == tier:
        return {}
    change = {TIER_PREFIX + tier: 1}
    if previous is not None:
        change[TIER_PREFIX + previous] = -1
    return change


def counters_of(item: dict[str, Any]) -> dict[str, int]:
    """A tally item's named counters (Tally.counters): its numbers other than the main value."""
    return {name: int(v) for name, v in item.items() if isinstance(v, Decimal) and name != "value"}


@dataclass(frozen=True)
class ViewWanted:
    """A member's view an earn is about to read (`MemberDirectory.view`, full): the named tallies,
    and whether who referred the member is read too."""

    program: str
    member: str
    tallies: tuple[str, ...]
    referral: bool


@dataclass(frozen=True)
class _ViewAhead:
    view: MemberView
    keys: frozenset[ItemKey]


@dataclass
class CardsHashed:
    """What `hash_stored_cards` did: cards rewritten, and (member, holder of the hash) left for support."""

    hashed: int = 0
    conflicts: list[tuple[str, str]] = field(default_factory=list)


class MemberDirectory:
    def __init__(self, table: Table) -> None:
        self._table = table
        self._read_ahead: dict[str, str] = {}
        self._views_ahead: dict[ViewWanted, _ViewAhead] = {}
        self._written_since: set[ItemKey] | None = None  # the table's writes since the views were read

    # Identities and profiles

    def member_for(self, identity_key: str) -> str | None:
        """The member an identity is linked to (None: nobody); a link read ahead is used once, then read afresh."""
        if identity_key in self._read_ahead:
            return self._read_ahead.pop(identity_key)
        item = self._table.get(keys.identity(identity_key))
        return str(item["member"]) if item else None

    def linked_ahead(self, identity_key: str) -> str | None:
        """The member a link read ahead names (None: not read ahead, or no link), leaving it for `member_for`."""
        return self._read_ahead.get(identity_key)

    def read_ahead(self, identity_keys: Sequence[str]) -> None:
        """Read the links of identities about to be looked up, in one consistent BatchGetItem.

        Each link found answers the next `member_for` of its identity once; one not found is read
        again then (it may be claimed meanwhile). A link read ahead may be a batch's time old: a
        link changes only by a merge, which first points the merged member at the survivor, and
        whoever reads the member's view follows that pointer, as when the merge lands between a
        fresh read of the link and the view.
        """
        self._read_ahead.clear()
        if not identity_keys:
            return
        found = self._table.batch_get([keys.identity(key) for key in identity_keys])
        for key in identity_keys:
            item = found.get(keys.identity(key))
            if item is not None:
                self._read_ahead[key] = str(item["member"])

    def read_views_ahead(self, wanted: Sequence[ViewWanted]) -> None:
        """Read the views earns are about to read, in one consistent BatchGetItem.

        Each answers the next `view` that asks for exactly it, once, unless the table wrote one of
        its items meanwhile (an earlier event of the batch: the member's own earn, a referral reward
        or a merge): that `view` reads afresh, as every later one does. A view read ahead is as old
        as the events before it in the batch; what an earn decides on it is guarded as for a fresh
        read (the balance and the daily tally by the earn's conditions, a merge by the closed account).
        """
        self._forget_views()
        if not wanted:
            return
        self._written_since = self._table.note_writes()
        items_of = {w: _view_keys(w.program, w.member, w.tallies, full=True, referral=w.referral) for w in wanted}
        found = self._table.batch_get([key for items in items_of.values() for key in items])
        for w, items in items_of.items():
            self._views_ahead[w] = _ViewAhead(_view_of(w.program, w.member, w.tallies, found), frozenset(items))

    def _view_ahead(self, wanted: ViewWanted) -> MemberView | None:
        ahead = self._views_ahead.pop(wanted, None)
        if ahead is None or self._written_since is None or not ahead.keys.isdisjoint(self._written_since):
            return None
        return ahead.view

    def _forget_views(self) -> None:
        self._views_ahead.clear()
        if self._written_since is not None:
            self._table.stop_noting(self._written_since)
            self._written_since = None

    def forget_read_ahead(self) -> None:
        self._read_ahead.clear()
        self._forget_views()

    def claim(self, identity_key: str, member: str, *, provisional: bool) -> str:
        """Link an unclaimed identity to `member` (creating its profile); returns whoever holds it."""
        link = keys.identity(identity_key)
        try:
            self._table.transact(
                [
                    self._table.put_action(
                        {"PK": link.pk, "SK": link.sk, "type": "identity", "member": member},
                        "attribute_not_exists(PK)",
                    ),
                    {"Update": self._profile_update(member, identity_key, provisional)},
                ]
            )
        except TransactionCanceledError:
            holder = self.member_for(identity_key)
            if holder is None:
                raise
            return holder
        return member

    def _profile_update(self, member: str, identity_key: str, provisional: bool) -> dict[str, Any]:
        return {
            "TableName": self._table.name,
            "Key": self._table.key(keys.profile(member)),
            "UpdateExpression": "SET #type = :type, provisional = if_not_exists(provisional, :p) ADD identities :id",
            "ExpressionAttributeNames": {"#type": "type"},
            "ExpressionAttributeValues": to_item({":type": "member", ":p": provisional, ":id": {identity_key}}),
        }

    def hash_stored_cards(self, hash_of: Callable[[str], str]) -> CardsHashed:
        """Rewrite every identity link that holds a card number written before card numbers were hashed
        (and its member's identity set) under the number's keyed hash. Two steps per card, each one
        transaction: the hashed link and the profile's new entry first, then the raw link and the
        profile's raw entry go; a run stopped between them is finished by the next. A card whose hash
        another member already holds (it was seen again after the deploy, before this ran) is left
        for support to merge, and named; it is rewritten by a run after the merge."""
        done = CardsHashed()
        prefix = keys.identity(f"{IdentityKind.CARD}#").pk
        for item in self._table.scan():
            pk = str(item["PK"])
            if not pk.startswith(prefix) or item.get("SK") != "ID" or is_card_hash(pk[len(prefix) :]):
                continue
            number, member = pk[len(prefix) :], str(item["member"])
            raw_key, hashed_key = f"{IdentityKind.CARD}#{number}", f"{IdentityKind.CARD}#{hash_of(number)}"
            holder = self.member_for(hashed_key)
            if holder is not None and holder != member:
                done.conflicts.append((member, holder))
                continue
            if holder is None:
                self.repoint(hashed_key, member)
            profile = self._table.key(keys.profile(member))
            self._table.transact(
                [
                    {"Delete": {"TableName": self._table.name, "Key": self._table.key(keys.identity(raw_key))}},
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": profile,
                            "UpdateExpression": "DELETE identities :raw",
                            "ExpressionAttributeValues": to_item({":raw": {raw_key}}),
                        }
                    },
                ]
            )
            done.hashed += 1
        return done

    def profile(self, member: str) -> Profile | None:
        item = self._table.get(keys.profile(member))
        return _profile(member, item) if item else None

    def set_details(self, member: str, name: str, language: str) -> bool:
        """The member's name and language, as given; False when the profile already says them."""
        written = self._table.update(
            keys.profile(member),
            "SET #type = :type, #name = :name, #language = :language",
            ConditionExpression="attribute_not_exists(#name) OR #name <> :name OR #language <> :language",
            ExpressionAttributeNames={"#type": "type", "#name": "name", "#language": "language"},
            ExpressionAttributeValues=to_item({":type": "member", ":name": name, ":language": language}),
            ReturnValues="UPDATED_NEW",
        )
        return written is not None

    def repoint(self, identity_key: str, member: str) -> None:
        """The identity link and the member's profile, in one transaction (a merge stops between none)."""
        link = keys.identity(identity_key)
        self._table.transact(
            [
                self._table.put_action({"PK": link.pk, "SK": link.sk, "type": "identity", "member": member}),
                {"Update": self._profile_update(member, identity_key, provisional=False)},
            ]
        )

    def mark_merged(self, member: str, into: str) -> None:
        self._table.update(
            keys.profile(member),
            "SET #type = :type, merged_into = :into",
            ExpressionAttributeNames={"#type": "type"},
            ExpressionAttributeValues=to_item({":type": "member", ":into": into}),
        )

    def merge_once(self, member: str, into: str) -> bool:
        """Point a member at the one it merges into, unless it already points elsewhere (False then):
        of two members folding in one provisional member at once, exactly one does."""
        updated = self._table.update(
            keys.profile(member),
            "SET #type = :type, merged_into = :into",
            ConditionExpression="attribute_not_exists(merged_into) OR merged_into = :into",
            ExpressionAttributeNames={"#type": "type"},
            ExpressionAttributeValues=to_item({":type": "member", ":into": into}),
        )
        return updated is not None

    # Identity verifications (one-time codes): only the code's keyed hash is kept

    def put_verification(self, verification: Verification) -> None:
        key = keys.verification(verification.member, verification.verification_id)
        self._table.put(
            {
                "PK": key.pk,
                "SK": key.sk,
                "type": "verification",
                "program": verification.program,
                "kind": verification.kind.value,
                "identity": verification.identity_hash,
                "code_hash": verification.code_hash,
                "expires_at": ts(verification.expires_at),
                "attempts_left": verification.attempts_left,
                "used": False,
            }
        )

    def get_verification(self, member: str, verification_id: str) -> Verification | None:
        item = self._table.get(keys.verification(member, verification_id))
        if item is None:
            return None
        return Verification(
            verification_id=verification_id,
            program=str(item["program"]),
            member=member,
            kind=IdentityKind(str(item["kind"])),
            identity_hash=str(item["identity"]),
            code_hash=str(item["code_hash"]),
            expires_at=parse_ts(str(item["expires_at"])),
            attempts_left=int(item["attempts_left"]),
            used=bool(item.get("used", False)),
        )

    def spend_attempt(self, member: str, verification_id: str) -> int | None:
        updated = self._table.update(
            keys.verification(member, verification_id),
            "SET attempts_left = attempts_left - :one",
            ConditionExpression="attempts_left > :zero AND used = :no",
            ExpressionAttributeValues=to_item({":one": 1, ":zero": 0, ":no": False}),
            ReturnValues="UPDATED_NEW",
        )
        return int(updated["attempts_left"]) if updated is not None else None

    def use_verification(self, member: str, verification_id: str) -> bool:
        updated = self._table.update(
            keys.verification(member, verification_id),
            "SET used = :yes",
            ConditionExpression="used = :no",
            ExpressionAttributeValues=to_item({":yes": True, ":no": False}),
        )
        return updated is not None

    def count_code_request(self, counted: str, hour: str, expires: int) -> int:
        updated = self._table.update(
            keys.code_requests(counted, hour),
            "ADD requests :one SET expires = :expires",
            ExpressionAttributeValues=to_item({":one": 1, ":expires": expires}),
            ReturnValues="UPDATED_NEW",
        )
        assert updated is not None  # no condition
        return int(updated["requests"])

    # What an earn decides on

    def view(
        self, program: str, member: str, tallies: Sequence[str] = (), *, full: bool = True, referral: bool = False
    ) -> MemberView:
        """One consistent BatchGetItem: the profile and the named tallies; with `full`, also the
        tier, the balance and the member's flag (everything an earn decides on); with `referral`,
        who referred the member (a purchase may owe that member a reward). A full view read ahead
        (`read_views_ahead`) answers instead, when nothing of it was written since."""
        if full and self._views_ahead:
            ahead = self._view_ahead(ViewWanted(program, member, tuple(tallies), referral))
            if ahead is not None:
                return ahead
        found = self._table.batch_get(_view_keys(program, member, tallies, full=full, referral=referral))
        return _view_of(program, member, tallies, found)

    # Tallies

    def bump(self, tally: Tally, once_for: str) -> None:
        """Apply a tally outside a transaction, once per `once_for` (the id that caused it)."""
        self._update_tally_once(tally, "seen", once_for)

    def merge_tally(self, program: str, name: str, merged: str, into: str) -> None:
        """Add a merged member's named counters of a tally to the survivor's, once per merged member."""
        counters = self.tally_counters(program, merged, name)
        self._update_tally_once(
            Tally(program, into, name, counters=tuple(sorted(counters.items()))), "merged_from", merged
        )

    def tally_counters(self, program: str, member: str, name: str) -> dict[str, int]:
        """A tally's named counters (e.g. the monthly qualifying activity the ingest path keeps)."""
        return counters_of(self._table.get(keys.tally(program, member, name)) or {})

    def _update_tally_once(self, tally: Tally, done_set: str, once_for: str) -> None:
        """Apply a tally update unless `once_for` is already in the item's set `done_set`, and add it there."""
        update = tally_update(self._table.name, tally)
        values = dict(update["ExpressionAttributeValues"]) | to_item({":once": {once_for}, ":one": once_for})
        self._table.update(
            keys.tally(tally.program, tally.member, tally.name),
            update["UpdateExpression"] + f", {done_set} :once",
            ConditionExpression=f"NOT contains({done_set}, :one)",
            ExpressionAttributeNames=update["ExpressionAttributeNames"],
            ExpressionAttributeValues=values,
        )

    # Tiers

    def get_tier(self, program: str, member: str) -> TierRecord | None:
        item = self._table.get(keys.tier(program, member))
        if item is None:
            return None
        return TierRecord(
            tier=str(item["tier"]),
            since=str(item["since"]),
            period_ends=str(item["period_ends"]),
            due_at=str(item["due_at"]),
            rev=int(item["rev"]),
        )

    def move_tier(
        self, program: str, member: str, record: TierRecord, change: TierChange, previous: str | None = None
    ) -> bool:
        """The member's tier and the record of the move, together; False if the tier changed meanwhile.

        `record.rev` is the revision read (0: no item yet), written as the next one; `previous` is the
        tier the item held (None: no item yet): the program's tier counts move in the same transaction.
        """
        key = keys.tier(program, member)
        tier_item = {
            "PK": key.pk,
            "SK": key.sk,
            "type": "tier",
            "tier": record.tier,
            "since": record.since,
            "period_ends": record.period_ends,
            "due_at": record.due_at,
            "program": program,
            "member": member,
            "rev": record.rev + 1,
            **keys.tier_index(program, member, record.due_at)._asdict(),
        }
        if record.rev == 0:
            put = self._table.put_action(tier_item, "attribute_not_exists(PK)")
        else:
            put = self._table.put_action(
                tier_item, "rev = :rev", ExpressionAttributeValues=to_item({":rev": record.rev})
            )
        log_key = keys.tier_log(program, member, change.at, change.to_tier)
        log = {
            "PK": log_key.pk,
            "SK": log_key.sk,
            "type": "tier_change",
            "program": program,  # named for the stream's outbound events (TierChanged)
            "member": member,
            "at": change.at,
            "from": change.from_tier,
            "to": change.to_tier,
            "reason": change.reason,
            "points": change.points,
            "spend": change.spend,
            "config_version": change.config_version,
        }
        actions = [put, self._table.put_action(log)]
        counts = tier_count_change(previous, record.tier)
        if counts:
            shard = keys.figures(program, TIERS_BUCKET, shard_of(member, SHARDS))
            labels = {"type": "figures", "program": program, "bucket": TIERS_BUCKET}
            actions.append({"Update": counters_update(self._table.name, shard, counts, labels)})
        try:
            self._table.transact(actions)
        except TransactionCanceledError:
            return False
        return True

    def tier_changes(self, program: str, member: str) -> list[TierChange]:
        return [
            TierChange(
                at=str(item["at"]),
                from_tier=str(item["from"]),
                to_tier=str(item["to"]),
                reason=str(item["reason"]),
                points=int(item["points"]),
                spend=str(item["spend"]),
                config_version=int(item["config_version"]),
            )
            for item in self._table.partition(keys.member_pk(member), keys.tier_log_prefix(program), consistent=False)
        ]

    # Flags (raised by the anomaly watch, decided by operators, read by ingest)

    def get_flag(self, program: str, member: str) -> Flag | None:
        item = self._table.get(keys.flag(program, member))
        return _flag(item) if item else None

    def put_flag(self, program: str, flag: Flag, decision: FlagDecision, only_if_open: bool = False) -> bool:
        """The flag's current state and the decision that set it, together; False if already recorded
        (or, with `only_if_open`, if the flag was no longer open: two operators deciding at once)."""
        key = keys.flag(program, flag.member)
        state = {
            "PK": key.pk,
            "SK": key.sk,
            "type": "flag",
            "status": flag.status,
            "reason": flag.reason,
            "check": flag.check,
            "since": flag.since,
            "decided_at": flag.decided_at or None,
            "operator": flag.operator or None,
            "note": flag.note or None,
        }
        if only_if_open:
            flag_put = self._table.put_action(
                state,
                "#s = :open",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=to_item({":open": "open"}),
            )
        else:
            flag_put = self._table.put_action(state)
        log_key = keys.flag_log(program, flag.member, decision.at, decision.id)
        log = {
            "PK": log_key.pk,
            "SK": log_key.sk,
            "type": "flag_decision",
            "program": program,  # named for the stream's outbound events (FlagRaised)
            "member": flag.member,
            "check": flag.check,
            "at": decision.at,
            "id": decision.id,
            "decision": decision.decision,
            "reason": decision.reason,
            "operator": decision.operator or None,
        }
        try:
            self._table.transact([flag_put, self._table.put_action(log, "attribute_not_exists(PK)")])
        except TransactionCanceledError:
            # The decision record exists (a redelivered stream record, already applied), or the flag was decided.
            return False
        return True

    def open_flags(self, program: str) -> list[Flag]:
        """Open flags of a program: one Query of its flag partition (decision records filtered out)."""
        return [
            _flag(item)
            for item in self._table.query(
                KeyConditionExpression="PK = :pk",
                FilterExpression="#t = :flag AND #s = :open",
                ExpressionAttributeNames={"#t": "type", "#s": "status"},
                ExpressionAttributeValues=to_item({":pk": keys.flag_pk(program), ":flag": "flag", ":open": "open"}),
                ConsistentRead=True,
            )
        ]

    def flag_log(self, program: str, member: str) -> list[FlagDecision]:
        return [
            FlagDecision(
                at=str(item["at"]),
                id=str(item["id"]),
                decision=str(item["decision"]),
                reason=str(item.get("reason", "")),
                operator=str(item.get("operator", "")),
            )
            for item in self._table.partition(keys.flag_pk(program), keys.flag_log_prefix(member), consistent=False)
        ]

    def flag_status(self, program: str, member: str) -> str:
        flag = self.get_flag(program, member)
        return flag.status if flag else ""


def _view_keys(program: str, member: str, tallies: Sequence[str], *, full: bool, referral: bool) -> list[ItemKey]:
    wanted = [keys.profile(member), *(keys.tally(program, member, name) for name in tallies)]
    if full:
        wanted += [keys.tier(program, member), keys.balance(program, member), keys.flag(program, member)]
    if referral:
        wanted.append(keys.referral(program, member))
    return wanted


def _view_of(program: str, member: str, tallies: Sequence[str], found: dict[ItemKey, dict[str, Any]]) -> MemberView:
    """The member's view from a batch read of its items (`_view_keys`; an item not read counts as absent)."""
    referred = found.get(keys.referral(program, member))
    profile = _profile(member, found.get(keys.profile(member), {}))
    tier = found.get(keys.tier(program, member))
    balance = found.get(keys.balance(program, member))
    flag = found.get(keys.flag(program, member), {})
    read: dict[str, Tallied] = {}
    for name in tallies:
        item = found.get(keys.tally(program, member, name))
        if item:
            read[name] = Tallied(int(item.get("value", 0)), frozenset(item.get("marks", set())), counters_of(item))
    return MemberView(
        member=member,
        merged_into=profile.merged_into,
        provisional=profile.provisional,
        tier=str(tier["tier"]) if tier else None,
        tier_since=str(tier.get("since", "")) if tier else "",
        account=account_from(balance) if balance else None,
        tallies=read,
        flag_status=str(flag.get("status", "")),
        flag_reason=str(flag.get("reason", "")),
        referral=referral_from(referred) if referred else None,
    )


def _profile(member: str, item: dict[str, Any]) -> Profile:
    return Profile(
        member=member,
        provisional=bool(item.get("provisional", False)),
        merged_into=str(item.get("merged_into", "")),
        identities=frozenset(item.get("identities") or ()),
        name=str(item.get("name", "")),
        language=str(item.get("language", "")),
    )


def _flag(item: dict[str, Any]) -> Flag:
    return Flag(
        member=str(item["SK"]),
        status=str(item.get("status", "")),
        reason=str(item.get("reason", "")),
        check=str(item.get("check", "")),
        since=str(item.get("since", "")),
        decided_at=str(item.get("decided_at", "")),
        operator=str(item.get("operator", "")),
        note=str(item.get("note", "")),
    )


def referral_from(item: dict[str, Any]) -> Referral:
    return Referral(
        referrer=str(item["referrer"]),
        status=str(item.get("status", REFERRAL_AWAITING)),
        source=str(item.get("source", "")),
        event_id=str(item.get("event_id", "")),
        recorded_at=str(item.get("recorded_at", "")),
        reason=str(item.get("reason", "")),
        purchase=str(item.get("purchase", "")),
        reward=str(item.get("reward", "")),
    )
