"""The velocity windows counted a stream batch at once (`Watch.observe_quiet`) end exactly as counted
entry by entry (`Watch.observe`): the same window items, the same flags and flag records, the same
findings, through redeliveries and batches that pass a threshold; and a quiet batch costs one
transaction instead of an UpdateItem per entry."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from functions.services import use
from shared.ledger.models import Account, Entry, EntryKind, Posting
from shared.program.config import AnomalyRules, ProgramConfig
from tests.support.aws import create_table
from tests.support.services import table_services
from tests.support.stream import deliver, entry_records

if TYPE_CHECKING:
    from functions.services import Services
    from shared.infra.table import Table
    from shared.members.flags import Finding

NOW = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
TWIN = "points-twin"
RULES = AnomalyRules(
    max_earns_per_card_per_hour=2, max_exchanges_per_member_per_hour=2, max_gifts_per_member_per_hour=2
)
KINDS = [EntryKind.EARN, EntryKind.EARN, EntryKind.EARN_PENDING, EntryKind.TRANSFER_OUT, EntryKind.SPEND]


def entry(rng: random.Random, n: int) -> Entry:
    kind = rng.choice(KINDS)
    member = rng.choice(["ann", "bob", "cy"])
    counter = rng.choice([Account.ISSUANCE, Account.PARTNER, Account.TRANSFER])
    points = -10 if kind in (EntryKind.TRANSFER_OUT, EntryKind.SPEND) else 10
    details = {"card": rng.choice(["c1", "c2", "c3"])} if rng.random() < 0.7 else {}
    source = rng.choice(["shop", "app", "till"])
    external = rng.choice(["o1", "o2", "o3", "o4", f"x{n}"])
    return Entry(
        program="demo",
        entry_id=f"{source}:{external}:{n}",
        member=member,
        kind=kind,
        source=source,
        external_id=external,
        reason="test",
        config_version=1,
        postings=(Posting(account=Account.AVAILABLE, amount=points), Posting(account=counter, amount=-points)),
        event_time=NOW + timedelta(minutes=rng.randrange(0, 90)),
        recorded_at=NOW + timedelta(minutes=90 + n),
        details=details,
        fingerprint="f",
        seq=1,
        prev_hash="",
    )


def one_by_one(services: Services, batch: list[Entry]) -> list[Finding]:
    return [finding for e in batch for finding in services.watch.observe(e)]


def at_once(services: Services, batch: list[Entry]) -> list[Finding]:
    counted = services.watch.observe_quiet(batch)
    return [finding for e in batch if (e.program, e.entry_id) not in counted for finding in services.watch.observe(e)]


def items(table: Table) -> list[dict[str, Any]]:
    return sorted(table.scan(), key=lambda item: (str(item["PK"]), str(item["SK"])))


@pytest.fixture
def twin(services: Services) -> Services:
    """A second table and services on it: the same batches, counted entry by entry there."""
    create_table(services.table.client, TWIN)
    other = table_services(TWIN, services.table.client, services.clock)
    for side in (services, other):
        side.programs.publish(ProgramConfig(program="demo", name="Demo", anomaly=RULES))
    return other


@pytest.mark.parametrize("seed", range(40))
def test_a_batch_counted_at_once_ends_as_counted_entry_by_entry(services: Services, twin: Services, seed: int) -> None:
    rng = random.Random(seed)
    delivered: list[Entry] = []
    for n in range(rng.randrange(2, 7)):
        # A batch of new entries, or a redelivery (part of what came before, the rest new)
        batch = [entry(rng, 100 * n + i) for i in range(rng.randrange(1, 12))]
        if delivered and rng.random() < 0.4:
            start = rng.randrange(len(delivered))
            batch = delivered[start : start + rng.randrange(1, 8)] + batch[: rng.randrange(0, 3)]
        if rng.random() < 0.2:
            services.watch.observe_quiet(batch)  # a crash after the batch's transaction: delivered again
        assert at_once(services, batch) == one_by_one(twin, batch)
        delivered += batch
        assert items(services.table) == items(twin.table)


def test_a_quiet_batch_costs_one_transaction_and_a_crowded_one_is_counted_entry_by_entry(
    services: Services, twin: Services
) -> None:
    rng = random.Random(7)
    # Ten earns of ten orders, no card: each counted in its order's window, none flags
    postings = (Posting(account=Account.AVAILABLE, amount=10), Posting(account=Account.ISSUANCE, amount=-10))
    plain = {"kind": EntryKind.EARN, "details": {}, "postings": postings}
    quiet = [entry(rng, n).model_copy(update={**plain, "external_id": f"q{n}"}) for n in range(10)]
    services.table.stats.reset()
    assert at_once(services, quiet) == []
    written = services.table.stats.requests  # (and the program's config, read afresh in these tests)
    assert (written["TransactWriteItems"], written["UpdateItem"]) == (1, 0)
    # Three earns on one card in the hour: the third flags, as it does entry by entry
    crowded = [
        e.model_copy(update={"kind": EntryKind.EARN, "details": {"card": "c9"}, "event_time": NOW, "member": "ann"})
        for e in (entry(rng, 50 + n) for n in range(3))
    ]
    services.table.stats.reset()
    findings = at_once(services, crowded)
    assert [f.check for f in findings] == [f.check for f in one_by_one(twin, quiet + crowded)] and findings
    # ...counted entry by entry: an UpdateItem per window of each entry
    assert services.table.stats.requests["UpdateItem"] == sum(len(services.watch.counts(e)) for e in crowded)


def test_the_watch_function_counts_a_batch_at_once_and_flags_as_before(services: Services, twin: Services) -> None:
    # Given entries in the table as the stream brings them (one card over its limit in the hour)
    rng = random.Random(3)
    batch = [entry(rng, n) for n in range(12)]
    for e in batch:
        services.ledger_store.table.put(
            {"PK": f"E#demo#{e.entry_id}", "SK": "E", "type": "entry", "body": e.model_dump_json()}
        )
    records = entry_records(services.table)
    order = [Entry.model_validate_json(r["dynamodb"]["NewImage"]["body"]["S"]) for r in records]
    use(services)
    # When the watch function gets them, twice (at least once)
    deliver(records)
    deliver(records)
    # Then its windows and flags are those of counting entry by entry
    one_by_one(twin, order)
    one_by_one(twin, order)
    windows = [i for i in items(services.table) if i.get("type") in ("velocity", "flag", "flag_decision")]
    assert windows == [i for i in items(twin.table) if i.get("type") in ("velocity", "flag", "flag_decision")]
