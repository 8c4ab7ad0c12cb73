"""What counts as a member's activity (for expiry extended by activity), from one entry alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.ledger.models import Account, AccountState, Entry, EntryKind, Posting, activity_time

AT = datetime(2026, 3, 20, 12, 0, 30, 123456, tzinfo=UTC)


def entry(kind: EntryKind, counter: Account, event_time: datetime = AT, **details: str) -> Entry:
    return Entry(
        program="demo",
        entry_id="x",
        member="ann",
        kind=kind,
        source="s",
        external_id="x",
        reason="r",
        config_version=1,
        postings=(Posting(account=Account.AVAILABLE, amount=-5), Posting(account=counter, amount=5)),
        event_time=event_time,
        recorded_at=AT,
        details=details,
        fingerprint="f",
        seq=1,
        prev_hash="0" * 64,
    )


@pytest.mark.parametrize(
    ("kind", "counter", "counts"),
    [
        (EntryKind.EARN, Account.ISSUANCE, True),
        (EntryKind.EARN, Account.PARTNER, True),  # a partner's earn
        (EntryKind.EARN_PENDING, Account.ISSUANCE, True),  # the purchase, before its return window
        (EntryKind.SPEND, Account.REDEMPTION, True),
        (EntryKind.CAPTURE, Account.REDEMPTION, True),
        (EntryKind.TRANSFER_OUT, Account.PARTNER, True),  # an exchange out to a partner program
        (EntryKind.TRANSFER_IN, Account.PARTNER, True),  # and in
        (EntryKind.TRANSFER_OUT, Account.TRANSFER, False),  # a gift sent
        (EntryKind.TRANSFER_IN, Account.TRANSFER, False),  # a gift received
        (EntryKind.EARN, Account.TRANSFER, False),  # points moved between members by the ledger
        (EntryKind.HOLD, Account.HELD, False),
        (EntryKind.RELEASE, Account.HELD, False),
        (EntryKind.ACTIVATE, Account.PENDING, False),
        (EntryKind.REVERSAL, Account.REDEMPTION, False),
        (EntryKind.CLAWBACK, Account.ISSUANCE, False),
        (EntryKind.EXPIRY, Account.BREAKAGE, False),
        (EntryKind.TRANSFER, Account.TRANSFER, False),  # a merge without a carried activity
    ],
)
def test_what_counts_as_activity(kind: EntryKind, counter: Account, counts: bool) -> None:
    assert (activity_time(entry(kind, counter)) is not None) is counts


def test_an_earn_held_because_the_member_is_flagged_does_not_count() -> None:
    held = entry(EntryKind.EARN_PENDING, Account.ISSUANCE, held="member flagged: velocity")
    assert activity_time(held) is None


def test_an_earn_counts_when_it_happened_never_in_the_future_in_whole_seconds() -> None:
    back_dated = AT - timedelta(days=20)
    assert activity_time(entry(EntryKind.EARN, Account.ISSUANCE, back_dated)) == back_dated.replace(microsecond=0)
    ahead = AT + timedelta(hours=1)
    assert activity_time(entry(EntryKind.EARN, Account.ISSUANCE, ahead)) == AT.replace(microsecond=0)


def test_a_merge_carries_the_merged_accounts_activity_and_the_balance_keeps_the_latest() -> None:
    merged = entry(EntryKind.TRANSFER, Account.TRANSFER, active_at="2026-03-01T09:00:00+00:00")
    assert activity_time(merged) == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    state = AccountState(program="demo", member="ann", available=10, active_at=datetime(2026, 3, 5, tzinfo=UTC))
    earlier = entry(EntryKind.EARN, Account.ISSUANCE, datetime(2026, 2, 1, tzinfo=UTC))
    assert state.after(earlier).active_at == datetime(2026, 3, 5, tzinfo=UTC)
    assert state.after(entry(EntryKind.SPEND, Account.REDEMPTION)).active_at == AT.replace(microsecond=0)
