"""The earning area's items: pending earns by the day they may activate, refunds waiting for their
order, and referrals. Keys in `shared.infra.keys`.

Open pending earns are ledger items, written and deleted in the ledger's transactions; this module
only reads their index (GSI1 `N#<program>#<until day>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.infra import keys
from shared.infra.codec import parse_ts, to_item, ts
from shared.infra.table import TransactionCanceledError
from shared.ledger.contract import Check, Mark
from shared.ledger.store import pending_from
from shared.members.view import REFERRAL_PAID

if TYPE_CHECKING:
    from datetime import datetime

    from shared.infra.table import Table
    from shared.ledger.models import PendingEarn
    from shared.members.view import Referral

# Present on a referral item only while it waits for the referred member's first purchase.
AWAITING = "awaiting"
WAITING_IDS = "ids"
# Set on an order's list of waiting refunds by the activation or void that settled the order while
# refunds were waiting; with it the list sits in the activation index until they are applied.
FOLLOW_UP = "follow_up"
ACTIVATION_JOB = "activation"  # its progress item: `JOB#activation#<program>`
REFUSED = "x#"  # a refused refund's reason, next to its body (`r#<refund entry>`)


@dataclass(frozen=True)
class FollowUp:
    """An order settled (activated or voided) while refunds waited on it: they are still to apply."""

    program: str
    order_entry_id: str


class EarningItems:
    def __init__(self, table: Table) -> None:
        self._table = table

    # How far the activation walk got: every index day before `through`'s day was walked to its end
    # (and everything up to `through` itself, when a run finished). Only ever moves forward.

    def activated_through(self, program: str) -> datetime | None:
        item = self._table.get(keys.job_progress(ACTIVATION_JOB, program))
        return parse_ts(str(item["through"])) if item else None

    def save_activated_through(self, program: str, through: datetime) -> None:
        key = keys.job_progress(ACTIVATION_JOB, program)
        # A slower concurrent run that saves an earlier point loses; the progress never goes back.
        self._table.put(
            {"PK": key.pk, "SK": key.sk, "type": "job_progress", "through": ts(through), "target": ts(through)},
            "attribute_not_exists(PK) OR through < :through",
            values_={":through": ts(through)},
        )

    def due_pending(self, program: str, day: str, until: datetime) -> list[PendingEarn | FollowUp]:
        """Open pending earns that may activate on `day` up to `until`, and orders settled that day
        whose waiting refunds are still to apply, in index order."""
        items: list[dict[str, Any]] = []
        for pk in keys.pending_index_pks(program, day):  # the day's shards: each is index order
            items += self._table.query(
                IndexName="GSI1",
                KeyConditionExpression="GSI1PK = :pk AND GSI1SK <= :until",
                ExpressionAttributeValues=to_item({":pk": pk, ":until": keys.through(until)}),
            )
        items.sort(key=lambda item: str(item["GSI1SK"]))
        return [FollowUp(program, str(i[FOLLOW_UP])) if i.get(FOLLOW_UP) else pending_from(i) for i in items]

    # Refunds waiting for their order (or for its return window to close): one item per order,
    # the refunds' ids in a set (gone when empty) and each body under its own attribute.

    def park_refund(self, program: str, order_entry_id: str, refund_entry_id: str, body: str) -> None:
        self._table.update(
            keys.waiting_refunds(program, order_entry_id),
            f"SET #type = :type, #body = :body ADD {WAITING_IDS} :id",
            ExpressionAttributeNames={"#type": "type", "#body": f"r#{refund_entry_id}"},
            ExpressionAttributeValues=to_item({":type": "waiting_refunds", ":body": body, ":id": {refund_entry_id}}),
        )

    def waiting_refunds(self, program: str, order_entry_id: str) -> list[str]:
        return self.waiting(program, order_entry_id)[0]

    def waiting(self, program: str, order_entry_id: str) -> tuple[list[str], bool]:
        """The bodies of the refunds waiting on an order, and whether a follow-up mark is on the list."""
        item = self._table.get(keys.waiting_refunds(program, order_entry_id))
        if not item:
            return [], False
        bodies = [item[f"r#{refund}"] for refund in sorted(item.get(WAITING_IDS, set())) if f"r#{refund}" in item]
        return bodies, FOLLOW_UP in item

    def drop_refund(self, program: str, order_entry_id: str, refund_entry_id: str) -> None:
        """Off the waiting set; its body stays, the record the audit checks a void's refunds against."""
        self._table.update(
            keys.waiting_refunds(program, order_entry_id),
            f"DELETE {WAITING_IDS} :id",
            ExpressionAttributeValues=to_item({":id": {refund_entry_id}}),
            ConditionExpression="attribute_exists(PK)",  # an update must not create the item
        )

    def follow_up(self, program: str, order_entry_id: str, member: str, at: datetime) -> Mark:
        """Written with the settlement of an order that refunds wait on: puts their list in the
        activation index (the day of `at`), so the job's next run applies them if this one stops."""
        index = keys.pending_index(program, member, f"{order_entry_id}#follow-up", at)
        values = {"type": "waiting_refunds", FOLLOW_UP: order_entry_id, **index._asdict()}
        return Mark(keys.waiting_refunds(program, order_entry_id), tuple(values.items()))

    def followed_up(self, program: str, order_entry_id: str) -> None:
        """Every refund of the list applied: out of the activation index (kept if one was parked meanwhile)."""
        self._table.update(
            keys.waiting_refunds(program, order_entry_id),
            f"REMOVE GSI1PK, GSI1SK, {FOLLOW_UP}",
            ConditionExpression=f"attribute_exists({FOLLOW_UP}) AND attribute_not_exists({WAITING_IDS})",
        )

    def refuse_refund(self, program: str, order_entry_id: str, refund_entry_id: str, reason: str) -> None:
        """A refund that can never apply (it exceeds its order): off the list, its body kept, the reason next to it."""
        self._table.update(
            keys.waiting_refunds(program, order_entry_id),
            f"SET #why = :why DELETE {WAITING_IDS} :id",
            ExpressionAttributeNames={"#why": f"{REFUSED}{refund_entry_id}"},
            ExpressionAttributeValues=to_item({":id": {refund_entry_id}, ":why": reason}),
            ConditionExpression="attribute_exists(PK)",
        )

    def refused_refunds(self, program: str, order_entry_id: str) -> dict[str, str]:
        """The refunds refused on an order's list, with their reasons."""
        item = self._table.get(keys.waiting_refunds(program, order_entry_id)) or {}
        return {name.removeprefix(REFUSED): str(why) for name, why in item.items() if name.startswith(REFUSED)}

    def no_refund_waiting(self, program: str, order_entry_id: str) -> Check:
        """A transaction condition: nothing is parked for this order (the set of refund ids is gone)."""
        return Check(key=keys.waiting_refunds(program, order_entry_id), attribute=WAITING_IDS)

    # Referrals: one item under the referred member, written once (the first referral wins).

    def record_referral(self, program: str, referred: str, referral: Referral, balance_seq: int = 0) -> bool:
        """Write the referral unless the member has one already; an awaiting one also needs the
        member's account to be as read (`balance_seq` entries: none for a new member), checked in
        the same transaction (so an earn and a referral cannot cross). False: either condition
        failed; read again."""
        key = keys.referral(program, referred)
        values = {
            "PK": key.pk,
            "SK": key.sk,
            "type": "referral",
            "referrer": referral.referrer,
            "status": referral.status,
            "source": referral.source,
            "event_id": referral.event_id,
            "recorded_at": referral.recorded_at,
            "reason": referral.reason or None,
            AWAITING: referral.referrer if referral.awaiting else None,
        }
        actions: list[Any] = [self._table.put_action(values, "attribute_not_exists(PK)")]
        if referral.awaiting:
            balance = {
                "TableName": self._table.name,
                "Key": self._table.key(keys.balance(program, referred)),
                "ConditionExpression": "attribute_not_exists(PK) OR seq = :read",
                "ExpressionAttributeValues": to_item({":read": balance_seq}),
            }
            actions.append({"ConditionCheck": balance})
        try:
            self._table.transact(actions)
        except TransactionCanceledError:
            return False
        return True

    def referral_paid(self, program: str, referred: str, reward: str, purchase: str, points: int) -> None:
        """Close an awaiting referral: the reward is posted (its entry id is the exactly-once key)."""
        self._table.update(
            keys.referral(program, referred),
            "SET #s = :paid, reward = :reward, purchase = :purchase, points = :points REMOVE #a",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeNames={"#s": "status", "#a": AWAITING},
            ExpressionAttributeValues=to_item(
                {":paid": REFERRAL_PAID, ":reward": reward, ":purchase": purchase, ":points": points}
            ),
        )

    def referral_ended(self, program: str, referred: str, status: str, reason: str) -> None:
        """A referral that will never pay (its first purchase was returned in its window)."""
        self._table.update(
            keys.referral(program, referred),
            "SET #s = :status, reason = :reason REMOVE #a",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeNames={"#s": "status", "#a": AWAITING},
            ExpressionAttributeValues=to_item({":status": status, ":reason": reason}),
        )

    def no_referral_awaiting(self, program: str, member: str) -> Check:
        """A transaction condition: nobody's referral of this member is waiting for its first purchase."""
        return Check(key=keys.referral(program, member), attribute=AWAITING)
