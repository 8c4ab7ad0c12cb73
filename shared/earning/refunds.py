"""Refunds claw back in proportion to the money refunded; a refund before its order waits for it."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from shared.earning.core import (
    MAX_DECISIONS,
    MONEY_SCALE,
    REFERRAL_SOURCE,
    IngestCore,
    Outcome,
    entry_key,
    event_hash,
    parse_event,
)
from shared.earning.rating import TOP_UP_SOURCE, TOPPED
from shared.errors import (
    AccountClosedError,
    AlreadySettledError,
    ContentionError,
    IdempotencyConflictError,
    RefundExceedsOrderError,
    UnknownEntryError,
)
from shared.events.model import (
    RefundEvent,
)
from shared.ledger.commands import Cause, CauseKind, ClawBack, Void
from shared.ledger.contract import CheckFailedError, Tally, TallyChangedError
from shared.ledger.models import Account, EntryKind
from shared.members import activity
from shared.program.rules import (
    refund_clawback,
)

if TYPE_CHECKING:
    from shared.ledger.models import Entry
    from shared.program.config import ProgramConfig


class Refunds(IngestCore):
    def _refund(self, event: RefundEvent, follow_up: bool = True) -> Outcome:
        """Claw back for a refund, or park it until its order posts or activates.

        A refund of an order already settled carries on what the settlement left to do (`_follow_up`,
        for a process that stopped after the settlement); not when applied from that very step.
        """
        config = self._programs.get(event.program)
        digest = event_hash(event)
        order_id = f"{event.source}:{event.order_external_id}"
        earned = self._earned_entry(event.program, order_id)
        if earned is None:
            # Park first, then look again: whichever of order and refund lands second applies it.
            self._items.park_refund(event.program, order_id, entry_key(event), event.model_dump_json())
            earned = self._earned_entry(event.program, order_id)
            if earned is None and self._void_if_fully_refunded(config, event.program, order_id):
                earned = self._earned_entry(event.program, order_id)
            if earned is None:
                return Outcome("parked", entry_key(event), note=f"waiting for {order_id} to post or activate")
            # The order came (or was settled) between our two looks: apply it here, and off the list.
            outcome = self._apply_refund(config, event, earned, digest)
            self._items.drop_refund(event.program, order_id, entry_key(event))
            return outcome
        if follow_up and earned.kind is EntryKind.EARN_PENDING:
            self._follow_up(config, order_id)  # voided: drop the refunds the void settled, end the referral
        return self._apply_refund(config, event, earned, digest)

    def _void_if_fully_refunded(self, config: ProgramConfig, program: str, order_id: str) -> bool:
        """An order refunded in full within its return window never pays out: void its pending earn.

        Only refunds that exist can do it: with none waiting there is nothing to void for, whatever
        the order's amount (an earn with no purchase amount, such as partner points or a flagged
        member's behaviour points, used to count as "refunded in full" by nothing at all).
        """
        order = self._entries.get_entry(program, order_id)
        if order is None or order.kind is not EntryKind.EARN_PENDING:
            return False
        refunds = [
            r for r in map(parse_event, self._items.waiting_refunds(program, order_id)) if isinstance(r, RefundEvent)
        ]
        if not refunds:
            return False
        total = sum((r.refunded_amount for r in refunds), Decimal(0))
        basis = Decimal(order.details.get("basis_amount", "0"))
        if total < basis:
            return False
        holder = self._follow(order.member)  # a merge moved the pending earn to the survivor
        cause = Cause(kind=CauseKind.REFUND, ref=" ".join(sorted(entry_key(r) for r in refunds)))
        justified = {"refunded": str(total), "basis_amount": str(basis)}
        if basis > 0 and total > basis:
            justified["over_refunded"] = str(total - basis)  # refunds of more than the order: noted, not hidden
        # The void settles the parked refunds (they are dropped) and the referral its purchase paid;
        # `_void` does both after the void's commit, and leaves them to the activation job's next run
        # if it stops in between (its follow-up mark).
        return self._void(config, holder, order, "refunded in full in its window", cause, justified)

    def _void(
        self,
        config: ProgramConfig,
        holder: str,
        earned: Entry,
        reason: str,
        cause: Cause,
        justified: dict[str, str] | None = None,
    ) -> bool:
        """Void a pending earn on its holder, for `cause`; its qualifying activity goes with it.

        True when the earn is voided (now, or before: a retry whose first attempt was cut short).
        """
        basis = Decimal(earned.details.get("basis_amount", "0"))
        taken_back = activity.change(config, earned.event_time, -earned.delta(Account.PENDING), -basis)
        waiting = self._items.no_refund_waiting(earned.program, earned.entry_id)
        marked = False
        for _ in range(MAX_DECISIONS):
            cmd = Void(
                program=earned.program,
                member=holder,
                entry_id=earned.entry_id,
                reason=reason[:300],
                cause=cause,
                details=justified or {},
            )
            tallies = [activity.tally(earned.program, holder, taken_back)]
            try:
                if marked:
                    mark = self._items.follow_up(earned.program, earned.entry_id, holder, self._clock())
                    self._ledger.void(cmd, tallies=tallies, marks=[mark])
                else:
                    self._ledger.void(cmd, tallies=tallies, checks=[waiting])
            except CheckFailedError:
                marked = True  # refunds wait on it: void with a follow-up mark, so none is left behind
                continue
            except AccountClosedError as closed:
                holder = self._follow(closed.survivor)  # a merge moved the pending earn after we looked
                continue
            except (AlreadySettledError, UnknownEntryError):
                settled = self._entries.get_entry(earned.program, f"settle:{earned.entry_id}")
                return settled is not None and settled.kind is EntryKind.VOID
            if marked or cause.kind is CauseKind.REFUND:
                self._follow_up(config, earned.entry_id)
            self._void_top_ups(config, earned, reason)
            return True
        return False

    def _void_top_ups(self, config: ProgramConfig, earned: Entry, reason: str) -> None:
        """A voided earn takes its pending tier top-ups with it (they re-rated it; it never paid out)."""
        if earned.source == TOP_UP_SOURCE or earned.source == REFERRAL_SOURCE:
            return
        cause = Cause(kind=CauseKind.ENTRY, ref=f"settle:{earned.entry_id}")
        for top_up_id in self._top_ups_of(earned.program, earned):
            top_up = self._entries.get_entry(earned.program, top_up_id)
            if top_up is not None and top_up.kind is EntryKind.EARN_PENDING:
                self._void(config, self._follow(top_up.member), top_up, f"{reason} (tier top-up)", cause)

    def _follow_up(self, config: ProgramConfig, order_id: str, settled: Entry | None = None) -> None:
        """What follows an order's settlement, each step idempotent: apply (or, after a void, drop)
        the refunds that waited on it; after a void for refunds, end the referral its purchase paid;
        then take the order out of the activation job's index."""
        marked = self._apply_waiting(config.program, order_id)
        settled = settled or self._entries.get_entry(config.program, f"settle:{order_id}")
        if settled is not None and settled.kind is EntryKind.VOID and settled.details.get("cause_kind") == "refund":
            order = self._entries.get_entry(config.program, order_id)
            if order is not None:
                self._void_referral_of(config, self._follow(order.member), order)
        if marked:
            self._items.followed_up(config.program, order_id)

    def _earned_entry(self, program: str, order_id: str) -> Entry | None:
        """The entry holding the order's spendable points: the earn, or its activation once pending ends."""
        order = self._entries.get_entry(program, order_id)
        if order is None or order.kind is EntryKind.EARN:
            return order
        if order.kind is EntryKind.EARN_PENDING:
            settled = self._entries.get_entry(program, f"settle:{order_id}")
            if settled is not None and settled.kind is EntryKind.ACTIVATE:
                return settled
            if settled is not None:
                return order  # voided: nothing left to claw back
        return None

    def _apply_refund(self, config: ProgramConfig, event: RefundEvent, earned: Entry, digest: str) -> Outcome:
        order_id = f"{event.source}:{event.order_external_id}"
        if earned.kind is EntryKind.EARN_PENDING:
            return Outcome("skipped", entry_key(event), earned.member, note=f"{order_id} was voided in its window")
        order = earned if earned.kind is not EntryKind.ACTIVATE else self._entries.get_entry(event.program, order_id)
        assert order is not None
        points = earned.delta(Account.AVAILABLE) + earned.delta(Account.DEBT)  # a repaid debt was earned too
        basis = Decimal(order.details.get("basis_amount", "0"))
        owner = order.member  # refund tallies stay with the order, even after a merge
        # With the order's refund tallies, the tier top-ups it got when an upgrade arrived late: a
        # refund takes back from all of what the order earned (`shared.earning.rating`).
        names = [f"refunded#{order_id}", f"clawed#{order_id}", f"{TOPPED}{order_id}"]
        view = self._members.view(event.program, owner, names, full=False)
        # The points are wherever the earn (or its activation) put them, followed through merges.
        if earned.member != owner:
            member = self._follow(earned.member)
        else:
            member = self._follow(view.merged_into) if view.merged_into else owner
        for _ in range(MAX_DECISIONS):
            refunded, clawed = view.tally(names[0]).value, view.tally(names[1]).value
            earned_points = points + view.tally(names[2]).value
            previously = Decimal(refunded) / MONEY_SCALE
            if basis > 0 and previously + event.refunded_amount > basis:
                self._refuse_over_refund(event, order_id, previously, basis)
            due = refund_clawback(config, earned_points, basis, event.refunded_amount, clawed, previously)
            refunded_spend = min(event.refunded_amount, max(basis - previously, Decimal(0)))
            cmd = ClawBack(
                program=event.program,
                member=member,
                entry_id=earned.entry_id,
                points=due,
                source=event.source,
                external_id=event.external_id,
                reason="refund",
                details={
                    "explanation": (
                        f"-{due} = {earned_points} earned on {order_id} x refunded {event.refunded_amount} "
                        f"of {basis} (cumulative {previously + event.refunded_amount})"
                    ),
                    "order": order_id,
                    "refunded_amount": str(event.refunded_amount),
                    "currency": event.currency,
                    **({"order_ref": order.details["order_ref"]} if "order_ref" in order.details else {}),
                    "event_hash": digest,
                },
            )
            taken_back = activity.change(config, order.event_time, -due, -refunded_spend)
            tallies = [
                Tally(event.program, owner, names[0], int(event.refunded_amount * MONEY_SCALE), refunded),
                Tally(event.program, owner, names[1], due, clawed),
                activity.tally(event.program, member, taken_back),
            ]
            try:
                entry = self._ledger.claw_back(cmd, tallies=tallies)
            except TallyChangedError:
                view = self._members.view(event.program, owner, names, full=False)
                continue
            except AccountClosedError as closed:
                member = self._follow(closed.survivor)  # merged after we looked: the points are there now
                continue
            except IdempotencyConflictError:
                # Applied before (a redelivery, or the order's own pass over its waiting refunds).
                existing = self._existing(event, entry_key(event), digest)
                if existing is None:
                    raise
                return existing
            return Outcome("posted", entry.entry_id, member, -entry.delta(Account.AVAILABLE))
        raise ContentionError(f"order {order_id} kept changing; retry later", order=order_id)

    def _refuse_over_refund(self, event: RefundEvent, order_id: str, previously: Decimal, basis: Decimal) -> None:
        """A refund taking its order's refunds past the order's amount is refused (unless it is the
        redelivery of one applied before, whose own amount the tally already holds)."""
        refund_id = entry_key(event)
        if self._entries.get_entry(event.program, refund_id) is not None:
            return
        raise RefundExceedsOrderError(
            f"refund {refund_id} of {event.refunded_amount} would bring the refunds of {order_id} to "
            f"{previously + event.refunded_amount}, more than its {basis}",
            order=order_id,
            refunded=str(previously),
        )

    def _apply_waiting(self, program: str, order_id: str) -> bool:
        """Apply (or drop, if settled otherwise) each refund waiting on the order; True if its list
        carries a follow-up mark (`_follow_up` clears it once they are all applied)."""
        bodies, marked = self._items.waiting(program, order_id)
        for body in bodies:
            refund = parse_event(body)
            assert isinstance(refund, RefundEvent)
            try:
                applied = self._refund(refund, follow_up=False).status != "parked"
            except RefundExceedsOrderError as refused:
                # Refused, but not at the cost of the order being handled: kept on the list with the reason.
                self._items.refuse_refund(program, order_id, entry_key(refund), refused.detail)
                continue
            if applied:
                self._items.drop_refund(program, order_id, entry_key(refund))
        return marked
