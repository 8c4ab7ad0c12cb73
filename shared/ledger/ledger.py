"""The points ledger: every movement of points, for every channel, goes through here.

Invariants, in plain words (the audit in `shared.audit` checks each one):

1. Append-only. An entry is never edited or deleted; a mistake is undone by a new entry that
   names the one it reverses.
2. Double entry. Every entry's postings sum to zero, so points are never created or destroyed
   silently; all accounts of a program sum to zero.
3. Exactly-once effect. An entry's id comes from its source and the source's own id (or from the
   entry it settles), and its write is conditional: a replay writes nothing and returns the stored
   entry; the same id with a different request is a typed conflict. This never expires.
   A rejected request (insufficient points, unknown member, ...) writes nothing, so retrying it
   later is evaluated afresh against the balance at that time.
4. Lots. Every credit to a member's available points is a lot with an expiry; debits consume lots
   earliest-expiry-first (ties by lot id) and never touch a lot that has expired, even before the
   expiry job has run; expiry debits exactly a lot's unspent remainder. Available = sum of lots.
   "Expired" is the lot's effective expiry: its own date, or, where the program extends expiry by
   activity, no earlier than N months after the member's last activity (kept on the balance).
   Likewise pending = sum of the member's open pending earns: each is held by one member at a
   time (a merge moves it) and is settled once, by an activation or a void on that member.
5. Guarded balances. The entry, the member's balance and the lots change in one transaction,
   conditional on the balance's sequence number and each lot's remaining points, so concurrent
   operations serialise and no bucket (available, pending, held) can go negative.
6. Tamper evidence. A member account's entries form a hash chain (seq 1, 2, ...; each hash covers
   the previous one); the balance item holds the head.
7. Closed accounts. A merge's transfer moves everything a member holds (unexpired lots, pending
   earns, holds) to the survivor and closes the account in the same transaction (`merged_into` on
   the balance). A closed account is neither credited nor debited (`AccountClosedError` names the
   survivor), so nothing can land there after the merge; only the lots that had already expired at
   the merge stay, for the expiry job, and a later transfer may still move leftovers onward.
"""

from __future__ import annotations

from shared.ledger.corrections import Corrections
from shared.ledger.credits import Credits
from shared.ledger.debits import Debits
from shared.ledger.transfers import Transfers


class Ledger(Credits, Debits, Corrections, Transfers):
    """Every use case that moves points; each operation lives with its kind (credits, debits, ...)."""
