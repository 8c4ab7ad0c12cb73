"""Evidence an insider cannot forge (issue 11): keyed chain hashes, and digests of every account head in
an Object Lock bucket, against which the audit names each account changed after the digest."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError

from shared.infra.settings import LOCAL_CHAIN_KEY
from shared.jobs.digest import DigestJob
from shared.jobs.store import DigestFiles
from shared.ledger.audit import AuditReport, audit
from shared.ledger.commands import Earn, Spend
from shared.ledger.models import KEYED_HASH, UNKEYED_HASH
from tests.conftest import T0
from tests.support.forgery import inflate_credit, keyed_with, truncate, unkeyed

if TYPE_CHECKING:
    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from tests.integration.conftest import Clock

BUCKET = "digests"


@pytest.fixture
def digests(services: Services) -> DigestFiles:
    """The digests bucket as template.yaml declares it: Object Lock, versioned, default retention."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=BUCKET,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    return DigestFiles(BUCKET, lambda: s3)


def fund(ledger: Ledger, member: str) -> None:
    ledger.earn(
        Earn(
            program="demo",
            member=member,
            points=100,
            source="shop",
            external_id=f"{member}-1",
            reason="order",
            event_time=T0,
        ),
        at=T0,
    )
    ledger.spend(
        Spend(program="demo", member=member, points=10, source="web", external_id=f"{member}-2", reason="mug"), at=T0
    )


def check(services: Services, digests: DigestFiles | None, key: bytes | None = LOCAL_CHAIN_KEY.encode()) -> AuditReport:
    anchors = digests.anchors() if digests is not None else None
    return audit(*services.ledger_store.audit_records(), chain_key=key, anchors=anchors)


def test_the_audit_names_each_account_changed_after_the_digest(
    services: Services, ledger: Ledger, digests: DigestFiles, clock: Clock
) -> None:
    # Given four accounts, each an earn of 100 and a spend, and a digest of their heads
    for member in ("edited", "guessed", "truncated", "honest"):
        fund(ledger, member)
    entries, *_ = services.ledger_store.audit_records()
    assert {e.hash_version for e in entries} == {KEYED_HASH}
    job = DigestJob(services.ledger_store.accounts, digests, clock=clock)
    assert job.run().accounts == 4
    assert check(services, digests).ok
    # When an insider turns edited's 100-point credit into 100,100 and recomputes the chain unkeyed,
    # does the same to guessed's with a guessed key, and drops truncated's spend
    inflate_credit(services, "demo", "edited", "shop:edited-1", 100_000, unkeyed)
    inflate_credit(services, "demo", "guessed", "shop:guessed-1", 100_000, keyed_with(b"pointbridge"))
    truncate(services, "demo", "truncated")
    assert services.ledger_store.get_account("demo", "edited").available == 100_090  # type: ignore[union-attr]
    # Then the arithmetic alone is fooled: every sum, lot and link checks out without key and digest
    fooled = audit(*services.ledger_store.audit_records())
    assert fooled.ok, fooled.problems
    # But the audit with the key and the digests fails and names exactly those three accounts
    found = check(services, digests)
    assert not found.ok
    assert found.accounts_changed == ["demo/edited", "demo/guessed", "demo/truncated"]
    problems = "\n".join(found.problems)
    assert "demo/truncated: truncated since the digest" in problems
    assert "demo/edited: changed since the digest" in problems
    assert (
        "demo/guessed: hash of entry shop:guessed-1 (seq 1) does not match its content under the chain key" in problems
    )
    assert found.digest_at == T0.isoformat()


def test_without_a_digest_the_key_still_tells_a_guessed_key_and_a_late_unkeyed_entry(
    services: Services, ledger: Ledger, digests: DigestFiles, clock: Clock
) -> None:
    fund(ledger, "guessed")
    inflate_credit(services, "demo", "guessed", "shop:guessed-1", 100_000, keyed_with(b"guess"))
    assert check(services, None).accounts_changed == ["demo/guessed"]
    # An account made after the first digest cannot hold an unkeyed entry: nobody writes one any more
    DigestJob(services.ledger_store.accounts, digests, clock=clock).run()
    clock.now += timedelta(hours=1)
    fund(ledger, "late")
    inflate_credit(services, "demo", "late", "shop:late-1", 100_000, unkeyed)
    found = check(services, digests)
    assert "demo/late" in found.accounts_changed
    assert any(
        "demo/late: unkeyed entry shop:late-1 at seq 1, beyond the first digest's seq 0" in p for p in found.problems
    )


def test_entries_hashed_before_the_key_stay_verifiable(
    services: Services, ledger: Ledger, digests: DigestFiles, clock: Clock
) -> None:
    # Given an account whose entries were written unkeyed, before the chain key existed (no marker stored)
    fund(ledger, "old")
    inflate_credit(services, "demo", "old", "shop:old-1", 0, unkeyed)
    entries, *_ = services.ledger_store.audit_records()
    assert {e.hash_version for e in entries} == {UNKEYED_HASH}
    assert '"hash_version"' not in entries[0].model_dump_json(exclude={"hash_version"})
    # When the first digest anchors them and keyed entries follow
    DigestJob(services.ledger_store.accounts, digests, clock=clock).run()
    ledger.spend(Spend(program="demo", member="old", points=5, source="web", external_id="old-3", reason="pen"), at=T0)
    # Then the audit accepts the chain
    found = check(services, digests)
    assert found.ok, found.problems
    # And an unkeyed entry after a keyed one is refused even so
    inflate_credit(services, "demo", "old", "shop:old-1", 0, unkeyed)
    assert "demo/old" in check(services, digests).accounts_changed


def test_a_digest_cannot_be_deleted_or_replaced_in_the_object_lock_bucket(
    services: Services, ledger: Ledger, digests: DigestFiles, clock: Clock
) -> None:
    fund(ledger, "ann")
    key = DigestJob(services.ledger_store.accounts, digests, clock=clock).run().key
    s3 = boto3.client("s3")
    [version] = s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]
    assert s3.head_object(Bucket=BUCKET, Key=key)["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # A put to the same key adds a version: the digested one is still there
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]
    assert version["VersionId"] in {v["VersionId"] for v in versions}
