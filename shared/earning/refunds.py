"""Refunds claw back in proportion to the money refunded; a refund before its order waits for it."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from shared.earning.core import MAX_DECISIONS, MONEY_SCALE, IngestCore, Outcome, entry_key, event_hash, parse_event
from shared.errors import (
    AccountClosedError,
    AlreadySettledError,
    ContentionError,
    IdempotencyConflictError,
    UnknownEntryError,
)
from shared.events.model import (
    RefundEvent,
)
from shared.ledger.commands import ClawBack, Void
from shared.ledger.contract import Tally, TallyChangedError
from shared.ledger.models import Account, EntryKind
from shared.members import activity
from shared.program.rules import (
    refund_clawback,
)

if TYPE_CHECKING:
    from shared.ledger.models import Entry
    from shared.program.config import ProgramConfig


class Refunds(IngestCore):
    def _refund(self, event: RefundEvent) -> Outcome:
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
        return self._apply_refund(config, event, earned, digest)

    def _void_if_fully_refunded(self, config: ProgramConfig, program: str, order_id: str) -> bool:
        """An order refunded in full within its return window never pays out: void its pending earn."""
        order = self._entries.get_entry(program, order_id)
        if order is None or order.kind is not EntryKind.EARN_PENDING:
            return False
        refunds = [parse_event(body) for body in self._items.waiting_refunds(program, order_id)]
        total = sum((r.refunded_amount for r in refunds if isinstance(r, RefundEvent)), Decimal(0))
        if total < Decimal(order.details.get("basis_amount", "0")):
            return False
        holder = self._follow(order.member)  # a merge moved the pending earn to the survivor
        if not self._void(config, holder, order, "refunded in full in its window"):
            return False  # activated meanwhile: the refunds claw back from the activation instead
        self._apply_waiting(program, order_id)  # the parked refunds are settled by the void: drop them
        self._void_referral_of(config, holder, order)
        return True

    def _void(self, config: ProgramConfig, holder: str, earned: Entry, reason: str) -> bool:
        """Void a pending earn on its holder; its qualifying activity goes with it."""
        basis = Decimal(earned.details.get("basis_amount", "0"))
        taken_back = activity.change(config, earned.event_time, -earned.delta(Account.PENDING), -basis)
        for _ in range(MAX_DECISIONS):
            cmd = Void(program=earned.program, member=holder, entry_id=earned.entry_id, reason=reason[:300])
            try:
                self._ledger.void(cmd, tallies=[activity.tally(earned.program, holder, taken_back)])
            except AccountClosedError as closed:
                holder = self._follow(closed.survivor)  # a merge moved the pending earn after we looked
                continue
            except (AlreadySettledError, UnknownEntryError):
                return False
            return True
        return False

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
        points = earned.delta(Account.AVAILABLE)
        basis = Decimal(order.details.get("basis_amount", "0"))
        owner = order.member  # refund tallies stay with the order, even after a merge
        names = [f"refunded#{order_id}", f"clawed#{order_id}"]
        view = self._members.view(event.program, owner, names, full=False)
        # The points are wherever the earn (or its activation) put them, followed through merges.
        if earned.member != owner:
            member = self._follow(earned.member)
        else:
            member = self._follow(view.merged_into) if view.merged_into else owner
        for _ in range(MAX_DECISIONS):
            refunded, clawed = view.tally(names[0]).value, view.tally(names[1]).value
            previously = Decimal(refunded) / MONEY_SCALE
            due = refund_clawback(config, points, basis, event.refunded_amount, clawed, previously)
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
                        f"-{due} = {points} earned on {order_id} x refunded {event.refunded_amount} "
                        f"of {basis} (cumulative {previously + event.refunded_amount})"
                    ),
                    "order": order_id,
                    "refunded_amount": str(event.refunded_amount),
                    "currency": event.currency,
                    **({"order_ref": order.details["order_ref"]} if "order_ref" in order.details else {}),
                    "event_hash": digest,
                    "shortfall_policy": "write_off",
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

    def _apply_waiting(self, program: str, order_id: str) -> None:
        for body in self._items.waiting_refunds(program, order_id):
            refund = parse_event(body)
            assert isinstance(refund, RefundEvent)
            if self._refund(refund).status != "parked":
                self._items.drop_refund(program, order_id, entry_key(refund))
