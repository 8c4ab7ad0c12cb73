"""Ingest: one normalised event in, ledger entries out, exactly once, whatever the arrival order.

Per event: find the member behind the identity (an unknown identity gets a provisional member,
so no point is lost), read in one batch everything the rules need about the member at the EVENT's
time (tier, points earned that local day, sign-in days, qualifying activity, balance, flag),
evaluate the program's rules and post the result. The ledger key is the source's own id
(`<source>:<external id>`), so a redelivery finds its entry and changes nothing. Every entry
carries the rule version, the explanation and the breakdown, so any balance can be explained.

- A flagged member's earns are posted pending and held until an operator decides the flag.
- Nothing earns once the program's sunset stopped earning (by event time) or after its end.
- An earn that takes qualifying activity (monthly tallies, `shared.activity`) over a tier's
  threshold upgrades the member at once, so the next earn uses the new multiplier.

Refunds claw back in proportion to the money refunded, cumulatively per order; a refund that
arrives before its order (or while the order's points are still pending) waits in a list keyed by
the order and is applied when the order posts (or activates): the order's earn is conditional on
that list being empty, so whichever of order and refund is written second sees the other. Linking
two identities merges a provisional member into the surviving one with ledger transfer entries
(available and pending points), never by editing balances.

Ingest does no I/O of its own: the ledger and the members' and earning's stores are passed in.
Each part lives in its own module: purchases, refunds, referrals, held (pending earns, flags), linking.
docs/channels.md describes the pipeline, the refund policy and identity merging in prose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.earning.held import HeldEarns
from shared.earning.linking import Linking
from shared.earning.purchases import Purchases
from shared.earning.referrals import Referrals
from shared.earning.refunds import Refunds
from shared.events.model import BehaviourAction, BehaviourEvent, RefundEvent

if TYPE_CHECKING:
    from shared.earning.core import Event, Outcome
    from shared.events.model import PointsEvent, PurchaseEvent
    from shared.program.rules import EarnDecision


class Ingest(Purchases, Referrals, Refunds, HeldEarns, Linking):
    """One normalised event in, ledger entries out (`handle`); every part of ingest on one object."""

    def handle(self, event: Event) -> Outcome:
        if isinstance(event, RefundEvent):
            return self._refund(event)
        if isinstance(event, BehaviourEvent) and event.action is BehaviourAction.REFERRAL:
            return self._record_referral(event)
        return self._earn(event)

    def dry_run(self, event: PurchaseEvent | PointsEvent | BehaviourEvent) -> EarnDecision:
        """The decision `handle` would record for this event now, writing nothing."""
        self._refuse_if_closed(self._programs.get(event.program), event, self._clock())
        config = self._programs.at(event.program, event.occurred_at)  # the rules of the event's time
        view = self._view(config, event, self._identify(event.identity, event.program, create=False))
        decision, _ = self._decide(config, event, view)
        return decision
