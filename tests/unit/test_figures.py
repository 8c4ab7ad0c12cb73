"""What one entry adds to the program figures (pure): every posting counted once, under the right name."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InvalidInputError
from shared.infra.counters import SHARDS, shard_of
from shared.ledger.models import Account, Entry, EntryKind, Posting
from shared.members.store import tier_count_change
from shared.program.config import ProgramConfig, Tier
from shared.projections.figures import (
    Figures,
    buckets_of,
    entry_counters,
    money_value,
    month_bucket,
    period_bounds,
    series_steps,
    tier_mix,
)

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A, P, H = Account.AVAILABLE, Account.PENDING, Account.HELD


def entry(kind: EntryKind, *postings: tuple[Account, int, str], seq: int = 2, **details: str) -> Entry:
    return Entry(
        program="demo",
        entry_id="e",
        member="m",
        kind=kind,
        source="s",
        external_id="x",
        reason="r",
        config_version=1,
        postings=tuple(Posting(account=account, amount=amount, owner=owner) for account, amount, owner in postings),
        event_time=AT,
        recorded_at=AT,
        details=details,
        fingerprint="f",
        seq=seq,
        prev_hash="0" * 64,
    )


CASES = [
    # An earn through a channel opens the account: issued, and counted for its channel
    (
        entry(EntryKind.EARN, (Account.ISSUANCE, -100, ""), (A, 100, ""), seq=1, channel="pos"),
        {"earned": 100, "available": 100, "accounts_opened": 1, "channel:pos": 100},
    ),
    (
        entry(EntryKind.EARN_PENDING, (Account.PARTNER, -50, "air"), (P, 50, "")),
        {"partner_earned": 50, "pending": 50, "channel:partner": 50},
    ),
    (entry(EntryKind.ACTIVATE, (P, -50, ""), (A, 50, "")), {"pending": -50, "available": 50}),
    (entry(EntryKind.VOID, (P, -30, ""), (Account.ISSUANCE, 30, "")), {"pending": -30, "taken_back": 30}),
    (entry(EntryKind.CLAWBACK, (A, -5, ""), (Account.PARTNER, 5, "air")), {"available": -5, "partner_taken_back": 5}),
    (entry(EntryKind.REVERSAL, (A, -7, ""), (Account.PARTNER, 7, "air")), {"available": -7, "partner_taken_back": 7}),
    (entry(EntryKind.REVERSAL, (Account.PARTNER, -9, "b"), (A, 9, "")), {"available": 9, "to_partners_reversed": 9}),
    (entry(EntryKind.SPEND, (A, -20, ""), (Account.REDEMPTION, 20, "")), {"available": -20, "redeemed": 20}),
    # Support's adjustments: from and back to the goodwill account, apart from what the rules issued
    (
        entry(EntryKind.EARN, (Account.GOODWILL, -25, ""), (A, 25, "")),
        {"goodwill_given": 25, "available": 25},
    ),
    (entry(EntryKind.SPEND, (A, -8, ""), (Account.GOODWILL, 8, "")), {"available": -8, "goodwill_taken": 8}),
    (
        entry(EntryKind.REVERSAL, (Account.REDEMPTION, -20, ""), (A, 20, "")),
        {"available": 20, "redemptions_reversed": 20},
    ),
    (
        entry(EntryKind.CAPTURE, (H, -80, ""), (Account.PARTNER, 50, "hotel"), (A, 30, "")),
        {"held": -80, "to_partners": 50, "available": 30},
    ),
    (entry(EntryKind.EXPIRY, (A, -11, ""), (Account.BREAKAGE, 11, "")), {"available": -11, "expired": 11}),
    (
        entry(EntryKind.TRANSFER_OUT, (A, -40, ""), (Account.PARTNER, 40, "air")),
        {"available": -40, "exchanged_out": 40},
    ),
    (entry(EntryKind.TRANSFER_IN, (Account.PARTNER, -20, "demo"), (A, 20, "")), {"available": 20, "exchanged_in": 20}),
    (entry(EntryKind.TRANSFER_OUT, (A, -3, ""), (Account.TRANSFER, 3, "")), {"available": -3, "gifts_sent": 3}),
    (entry(EntryKind.TRANSFER_IN, (Account.TRANSFER, -3, ""), (H, 3, "")), {"held": 3, "gifts_received": 3}),
    (
        entry(EntryKind.TRANSFER, (A, -10, ""), (P, -5, ""), (Account.TRANSFER, 15, ""), to_member="m-2"),
        {"available": -10, "pending": -5, "merged_out": 15, "accounts_merged": 1},
    ),
    # A merged account that only owed points: its debt moves, and it still counts as merged
    (
        entry(EntryKind.TRANSFER, (Account.DEBT, 8, ""), (Account.TRANSFER, -8, ""), to_member="m-2"),
        {"debt": 8, "merged_in": 8, "accounts_merged": 1},
    ),
    # A refund after spending, under each shortfall policy, and an earn that repays a debt
    (
        entry(EntryKind.CLAWBACK, (A, -2, ""), (Account.ISSUANCE, 2, ""), shortfall="5", shortfall_policy="write_off"),
        {"available": -2, "taken_back": 2, "shortfall_written_off": 5},
    ),
    (
        entry(
            EntryKind.CLAWBACK,
            (A, -2, ""),
            (Account.DEBT, -5, ""),
            (Account.ISSUANCE, 7, ""),
            shortfall="5",
            shortfall_policy="recover",
        ),
        {"available": -2, "debt": -5, "taken_back": 7, "shortfall_owed": 5},
    ),
    (
        entry(EntryKind.EARN, (Account.ISSUANCE, -10, ""), (A, 6, ""), (Account.DEBT, 4, ""), debt_repaid="4"),
        {"available": 6, "debt": 4, "earned": 10, "debt_repaid": 4, "channel:api": 10},
    ),
    (
        entry(EntryKind.TRANSFER, (Account.TRANSFER, -15, ""), (A, 10, ""), (P, 5, "")),
        {"available": 10, "pending": 5, "merged_in": 15},
    ),
]


@pytest.mark.parametrize(("posted", "expected"), CASES, ids=[str(c[0].kind) for c in CASES])
def test_each_posting_lands_on_its_figure(posted: Entry, expected: dict[str, int]) -> None:
    # When the entry is counted
    counters = entry_counters(posted)
    # Then each posting is under its figure, and the liability it moved is explained by the flows
    assert counters == {"entries": 1, **expected}
    figures = Figures(counters=counters)
    assert figures.unexplained == 0


ACCOUNTS = st.sampled_from(list(Account))


@given(
    kind=st.sampled_from(list(EntryKind)),
    legs=st.lists(st.tuples(ACCOUNTS, st.integers(-1000, 1000)), min_size=1, max_size=4),
)
def test_any_zero_sum_entry_is_fully_explained(kind: EntryKind, legs: list[tuple[Account, int]]) -> None:
    # Given any entry whose postings sum to zero (what the ledger guarantees)
    balanced = [*legs, (Account.ISSUANCE, -sum(amount for _, amount in legs))]
    owned = [(account, amount, "x" if account is Account.PARTNER else "") for account, amount in balanced]
    posted = entry(kind, *owned)
    # Then the member buckets' change equals what the program-side flows say
    assert Figures(counters=entry_counters(posted)).unexplained == 0


def test_shards_tiers_and_periods() -> None:
    # A shard is stable and in range
    assert shard_of("shop:o-1") == shard_of("shop:o-1") and 0 <= shard_of("shop:o-1") < SHARDS
    # A tier move counts one in and one out; a first move has no item to leave; staying moves nothing
    assert tier_count_change("silver", "gold") == {"tier:gold": 1, "tier:silver": -1}
    assert tier_count_change(None, "gold") == {"tier:gold": 1}
    assert tier_count_change("gold", "gold") == {}
    # Members without a tier item (and in tiers the config dropped) are in the base tier
    ladder = (Tier(name="base", rank=0), Tier(name="gold", rank=1, threshold=Decimal(500)))
    config = ProgramConfig(program="demo", name="D", tiers=ladder)
    mix = tier_mix(config, 10, {"tier:gold": 3, "tier:base": 2, "tier:silver": 1})
    assert [(s.name, s.count, str(s.share)) for s in mix] == [("base", 7, "0.7000"), ("gold", 3, "0.3000")]
    # Periods: default 30 local days to today, any length up to ten years, never backwards
    assert period_bounds(config, AT, None, None) == (date(2026, 1, 31), date(2026, 3, 1))
    assert period_bounds(config, AT, date(2016, 2, 23), date(2026, 3, 1))[0] == date(2016, 2, 23)
    with pytest.raises(InvalidInputError, match="3660 days"):
        period_bounds(config, AT, date(2016, 2, 22), date(2026, 3, 1))  # 3,661 days
    with pytest.raises(InvalidInputError):
        period_bounds(config, AT, date(2026, 3, 2), date(2026, 3, 1))
    with pytest.raises(InvalidInputError, match="1970"):
        period_bounds(config, AT, date(1969, 12, 31), date(1970, 1, 2))


def test_a_period_reads_whole_months_and_only_its_ragged_edges_as_days() -> None:
    # A period from 30 January to 2 April: two day buckets, February and March whole, two day buckets
    assert buckets_of(date(2026, 1, 30), date(2026, 4, 2)) == [
        "2026-01-30",
        "2026-01-31",
        "2026-02",
        "2026-03",
        "2026-04-01",
        "2026-04-02",
    ]
    # A whole month is its month bucket; a part of one is its days; a year end rolls over
    assert buckets_of(date(2026, 12, 1), date(2027, 1, 1)) == ["2026-12", "2027-01-01"]
    assert buckets_of(date(2024, 2, 1), date(2024, 2, 29)) == ["2024-02"]  # a leap February
    assert buckets_of(date(2026, 3, 5), date(2026, 3, 5)) == ["2026-03-05"]
    # The series: a step per day up to 93 days; per calendar month (clipped) beyond
    interval, steps = series_steps(date(2026, 1, 1), date(2026, 4, 3))  # 93 days
    assert interval == "day" and len(steps) == 93 and steps[0] == (date(2026, 1, 1), date(2026, 1, 1))
    interval, steps = series_steps(date(2026, 1, 15), date(2026, 4, 20))
    assert interval == "month"
    assert steps == [
        (date(2026, 1, 15), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 31)),
        (date(2026, 4, 1), date(2026, 4, 20)),
    ]
    # And an entry counts in its day and its month
    assert month_bucket(date(2026, 3, 9)) == "2026-03"


def test_rewards_rates_and_money() -> None:
    # A reward redemption counts its points and quantity under the reward; a plain spend counts no reward
    spend = entry(EntryKind.SPEND, (A, -300, ""), (Account.REDEMPTION, 300, ""), reward="mug", quantity="2")
    assert entry_counters(spend) == {"entries": 1, "available": -300, "redeemed": 300, "reward:mug": 300,
                                     "reward_count:mug": 2}  # fmt: skip
    plain = entry(EntryKind.SPEND, (A, -5, ""), (Account.REDEMPTION, 5, ""))
    assert entry_counters(plain) == {"entries": 1, "available": -5, "redeemed": 5}
    # Top rewards: by points, largest first, with counts and shares
    figures = Figures(counters={"reward:mug": 300, "reward_count:mug": 2, "reward:tea": 100, "reward_count:tea": 4})
    assert [(r.reward, r.points, r.count, str(r.share)) for r in figures.rewards()] == [
        ("mug", 300, 2, "0.7500"),
        ("tea", 100, 4, "0.2500"),
    ]
    # Rates: per point earned (issued + partner-funded); a period may redeem more than it earned
    period = Figures(counters={"earned": 100, "partner_earned": 100, "redeemed": 500, "expired": 50})
    assert (str(period.redemption_rate), str(period.breakage_rate)) == ("2.5000", "0.2500")
    assert Figures().redemption_rate is None and Figures().breakage_rate is None
    # Money at the point value, to the cent
    assert money_value(12_345, Decimal("0.01")) == Decimal("123.45")
    assert money_value(-3, Decimal("0.0125")) == Decimal("-0.04")
