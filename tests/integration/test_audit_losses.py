"""The audit sees losses, not only arithmetic (issue 12): seeded with each story's bad state, written
as the old code would have written it, it fails with the named class; a clean run has none.

Every seeded state balances (the arithmetic audit passes it): only the loss checks can see it.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import boto3
from moto import mock_aws

from pointbridge.audit import audit_dead_letters, audit_file_drops, report_lines, run_audit, run_command, with_found
from shared.earning.core import provisional_member
from shared.earning.ingest import Ingest
from shared.events.model import BehaviourAction, Channel, Identity, IdentityKind, PurchaseEvent
from shared.exchange.settlement import record_partner_postings
from shared.exchange.store import SettlementLine
from shared.infra.codec import ts
from shared.jobs.audit import audit_table
from shared.jobs.settlement import statement_keys
from shared.jobs.store import Progress
from shared.ledger.audit import audit
from shared.ledger.commands import (
    Activate,
    Authorise,
    Cause,
    CauseKind,
    ClawBack,
    Earn,
    ExpireLot,
    Release,
    Spend,
    Void,
)
from shared.ledger.ledger import Ledger
from shared.members.flags import decide_flag
from shared.members.view import REFERRAL_AWAITING, Referral
from shared.program.config import ProgramConfig, RefundRules, ShortfallPolicy, Tier
from shared.projections.watch import Finding
from tests.integration.conftest import TABLE
from tests.integration.ingest_support import (
    EMAIL,
    NOW,
    PARTNER,
    Clock,
    behaviour,
    partner_points,
    program,
    purchase,
    refund,
    wire,
)

if TYPE_CHECKING:
    import pytest

    from functions.services import Services
    from shared.earning.core import Event
    from shared.ledger.models import Entry
    from shared.members.view import MemberView

ORDER = "shopify:acme.myshopify.com:1001"


def classes(services: Services, now: datetime | None = None) -> list[str]:
    """The classes of loss the whole audit finds (judged at `now`, if given); the arithmetic must pass all the same."""
    report = audit_table(services.table, now=now)
    ledger = audit(*services.ledger_store.audit_records())
    losses = {str(loss) for loss in ledger.losses}
    assert [problem for problem in ledger.problems if problem not in losses] == []
    return sorted({loss.kind for loss in report.losses})


class FixedPrograms:
    """A ledger's view of the config as an older deployment had it (the table holds the new one)."""

    def __init__(self, config: ProgramConfig) -> None:
        self._config = config

    def get(self, program: str) -> ProgramConfig:
        return self._config

    def at(self, program: str, moment: object) -> ProgramConfig:
        return self._config

    def since(self, program: str) -> datetime | None:
        return None  # no publication history: the tests here never walk a job from it


def test_a_void_of_held_points_for_no_refund_is_a_takeback_without_cause(services: Services) -> None:
    # The old code: a flagged member's partner credit voided "refunded in full" by its own redelivery
    ingest = wire(services, program(), Clock())
    member = provisional_member(PARTNER)
    services.watch.flag("demo", Finding(member, "exchange_burst", "11 credits"), NOW, "c-1")
    ingest.handle(partner_points("p-2", 300))
    assert classes(services) == []
    bogus = Cause(kind=CauseKind.REFUND, ref="partner:airline:p-2")  # no such refund was ever received
    services.ledger.void(Void(program="demo", member=member, entry_id="partner:airline:p-2", cause=bogus), at=NOW)
    assert classes(services) == ["takeback_without_cause"]


def test_a_refund_left_parked_on_an_activated_order_is_a_refund_never_applied(services: Services) -> None:
    # The old code after a crash: the activation committed, the refund parked on it never applied
    ingest = wire(services, program(return_window_days=30), Clock())
    ingest.handle(purchase("1001", "100"))
    ingest.handle(refund("r-1", "1001", "30"))
    member = provisional_member(EMAIL)
    services.ledger.activate(Activate(program="demo", member=member, entry_id=ORDER), at=NOW + timedelta(days=31))
    assert classes(services) == ["refund_never_applied"]


def test_a_shortfall_not_put_on_the_debt_of_a_recovering_program_is_an_unrecovered_shortfall(
    services: Services,
) -> None:
    # The program recovers shortfalls; an older deployment wrote the claw-back off all the same
    config = program(refunds=RefundRules(shortfall=ShortfallPolicy.RECOVER))
    ingest = wire(services, config, Clock())
    ingest.handle(purchase("1001", "300"))
    member = provisional_member(EMAIL)
    services.ledger.spend(
        Spend(program="demo", member=member, points=300, source="redemption", external_id="s-1", reason="x"), at=NOW
    )
    old = Ledger(services.ledger_store, FixedPrograms(program()), clock=services.now)  # write_off, as before
    cmd = ClawBack(
        program="demo",
        member=member,
        entry_id=ORDER,
        points=300,
        source="shopify:acme.myshopify.com",
        external_id="r-1",
        reason="refund",
        details={"order": ORDER, "refunded_amount": "300"},
    )
    old.claw_back(cmd, at=NOW)
    assert classes(services) == ["unrecovered_shortfall"]


def test_refunds_adding_up_to_more_than_their_order_are_an_over_refund(services: Services) -> None:
    ingest = wire(services, program(), Clock())
    ingest.handle(purchase("1001", "470"))
    member = provisional_member(EMAIL)
    for ref, amount, points in (("r-1", "400", 400), ("r-2", "352", 70)):  # the old code took both
        cmd = ClawBack(
            program="demo",
            member=member,
            entry_id=ORDER,
            points=points,
            source="shopify:acme.myshopify.com",
            external_id=ref,
            reason="refund",
            details={"order": ORDER, "refunded_amount": amount},
        )
        services.ledger.claw_back(cmd, at=NOW)
    assert classes(services) == ["over_refund"]


def test_an_earn_decided_by_todays_config_for_last_weeks_order_is_rules_not_of_event_time(
    services: Services,
) -> None:
    clock = Clock()
    services.clock = clock
    clock.now = NOW - timedelta(days=30)
    services.programs.publish(program())
    clock.now = NOW - timedelta(hours=1)
    services.programs.publish(program(version=2, base_rate=Decimal(2)))
    clock.now = NOW
    # The old code: the live version (2) for an order from six days ago, when version 1 was live
    old = Earn(
        program="demo",
        member="m-1",
        points=200,
        source="shop",
        external_id="o-old",
        reason="online purchase",
        event_time=NOW - timedelta(days=6),
        config_version=2,
        details={"breakdown": "[]", "tier": "member", "basis_amount": "100"},
    )
    services.ledger.earn(old, at=NOW)
    assert classes(services) == ["rules_not_of_event_time"]


class OldIngest(Ingest):
    """Ingest as it rated before 2026-12-07: the tier held on arrival, no re-rating of later earns."""

    def _tier_at(self, config: ProgramConfig, event: Event, view: MemberView) -> Tier:
        return config.held_tier(view.tier)

    def _rerate_if_late(self, view: MemberView, entry: Entry) -> None:
        return None


def test_the_650_of_the_660_story_is_a_tier_not_of_event_time(services: Services) -> None:
    silver = Tier(name="silver", rank=1, threshold=Decimal(500), multiplier=Decimal("1.2"))
    config = program(tiers=(Tier(name="member", rank=0), silver))
    clock = Clock()
    services.clock = clock
    clock.now = NOW - timedelta(days=30)
    services.programs.publish(config)
    clock.now = NOW
    s = services
    old = OldIngest(s.ledger, s.ledger_store, s.members, s.earning_items, s.programs, clock=s.now, tiers=s.tiers)
    # The reverse arrival, rated as the old code did: 50 + 300 + 300 = 650
    for order, amount, days in (("o-3", "50", 1), ("o-2", "300", 2), ("o-1", "300", 3)):
        old.handle(purchase(order, amount, at=NOW - timedelta(days=days)))
    assert classes(services) == ["tier_not_of_event_time"]
    found = audit_table(services.table).losses
    assert [loss.detail.split(" was rated")[0] for loss in found] == [
        "shopify:acme.myshopify.com:o-3 of " + provisional_member(EMAIL)
    ]


def test_a_referral_waiting_for_a_purchase_already_made_is_a_referral_unpaid(services: Services) -> None:
    ingest = wire(services, program(behaviour={"referral": 200}), Clock())
    services.members.claim(EMAIL.key, "m-new", provisional=False)
    ingest.handle(purchase("1001", "40"))
    # The old code refused a late referral... and the state a crash left: awaiting, with the purchase made
    record = Referral(
        referrer="m-ref", status=REFERRAL_AWAITING, source="app:app", event_id="ref-1", recorded_at=NOW.isoformat()
    )
    seq = services.ledger_store.get_account("demo", "m-new")
    assert seq is not None
    assert services.earning_items.record_referral("demo", "m-new", record, balance_seq=seq.seq)
    assert classes(services) == ["referral_unpaid"]


def test_one_order_earned_through_the_shop_and_the_app_is_a_duplicate_order(services: Services) -> None:
    wire(services, program(), Clock())
    for source in ("shopify:acme.myshopify.com", "app:app"):  # the old code posted both
        earn = Earn(
            program="demo",
            member="m-1",
            points=10,
            source=source,
            external_id="o-1",
            reason="online purchase",
            event_time=NOW - timedelta(minutes=5),
            details={"basis_amount": "10"},
        )
        services.ledger.earn(earn, at=NOW)
    assert classes(services) == ["duplicate_order"]


def test_a_flagged_member_redeeming_is_a_held_member_debited(services: Services) -> None:
    wire(services, program(), Clock())
    earn = Earn(program="demo", member="ann", points=100, source="shop", external_id="o-1", reason="x", event_time=NOW)
    services.ledger.earn(earn, at=NOW - timedelta(hours=2))
    services.watch.flag("demo", Finding("ann", "card_velocity", "21 earns"), NOW - timedelta(hours=1), "c-1")
    old = Ledger(services.ledger_store, services.programs, clock=services.now)  # no flag holds, as before
    old.spend(
        Spend(program="demo", member="ann", points=50, source="redemption", external_id="r-1", reason="x"), at=NOW
    )
    assert classes(services) == ["held_member_debited"]


def test_a_refund_both_clawed_back_and_named_by_a_void_is_a_duplicate_effect(services: Services) -> None:
    ingest = wire(services, program(return_window_days=30), Clock())
    ingest.handle(purchase("1001", "100"))
    ingest.handle(refund("r-1", "1001", "100"))  # voided in its window, naming r-1
    ingest.handle(purchase("1002", "100"))
    ingest.activate_due("demo", NOW + timedelta(days=31))
    member = provisional_member(EMAIL)
    cmd = ClawBack(
        program="demo",
        member=member,
        entry_id="settle:shopify:acme.myshopify.com:1002",
        points=10,
        source="shopify:acme.myshopify.com",
        external_id="r-1",  # the same refund, applied a second time to another order
        reason="refund",
        details={"order": "shopify:acme.myshopify.com:1002", "refunded_amount": "10"},
    )
    services.ledger.claw_back(cmd, at=NOW + timedelta(days=32))
    assert "duplicate_effect" in classes(services)


def earned(services: Services, member: str, points: int, expires_at: datetime | None = None) -> None:
    cmd = Earn(
        program="demo",
        member=member,
        points=points,
        source="shop",
        external_id=f"o-{member}",
        reason="online purchase",
        event_time=NOW - timedelta(days=1),
        expires_at=expires_at,
    )
    services.ledger.earn(cmd, at=NOW - timedelta(days=1))


def hold_lapsing_at_now(services: Services) -> str:
    earned(services, "ann", 100)
    cmd = Authorise(
        program="demo", member="ann", points=60, source="checkout", external_id="c-1", reason="x", lapses_at=NOW
    )
    return services.ledger.authorise(cmd, at=NOW - timedelta(minutes=30)).entry_id


def test_a_hold_still_open_days_after_it_lapsed_is_a_hold_past_lapse(services: Services) -> None:
    # The old code's job looked back two days only: after a three-day outage the hold stayed held
    wire(services, program(), Clock())
    hold = hold_lapsing_at_now(services)
    assert classes(services, now=NOW) == []  # not lapsed yet
    assert classes(services, now=NOW + timedelta(days=3)) == ["hold_past_lapse"]
    services.ledger.release(Release(program="demo", member="ann", hold_id=hold), at=NOW + timedelta(days=3))
    assert classes(services, now=NOW + timedelta(days=3)) == []


def test_an_expiry_run_with_a_now_months_ahead_is_expired_early_and_its_progress_clock_ahead(
    services: Services,
) -> None:
    # `pointbridge run ExpiryFunction --now <three months ahead>` with the old code: the lot expired
    # at a time that had not come, and the job's progress went there with it
    wire(services, program(), Clock())
    earned(services, "ann", 100, expires_at=NOW + timedelta(days=60))
    assert classes(services, now=NOW) == []
    ahead = NOW + timedelta(days=90)
    services.ledger.expire_lot(ExpireLot(program="demo", member="ann", lot_id="shop:o-ann"), at=ahead)
    services.job_items.save_progress("expiry", "demo", Progress(through=ts(ahead), target=ts(ahead)))
    assert classes(services, now=NOW) == ["clock_ahead", "expired_early"]
    assert classes(services, now=ahead) == []  # once the clock gets there, nothing was early


def test_pointbridge_audit_prints_each_loss_under_its_class(services: Services) -> None:
    wire(services, program(), Clock())
    hold_lapsing_at_now(services)
    clean = run_audit(TABLE, now=NOW)
    assert clean["ok"], clean["problems"]
    assert report_lines(TABLE, clean)[-1].startswith("  OK")

    result = run_audit(TABLE, now=NOW + timedelta(days=3))
    lines = report_lines(TABLE, result)
    assert not result["ok"]
    assert [loss["class"] for loss in result["losses"]] == ["hold_past_lapse"]
    assert any(line.startswith("  LOSS hold_past_lapse (demo): checkout:c-1 of ann") for line in lines), lines
    assert lines[-2:] == ["  losses by class: hold_past_lapse 1", "  FAILED"]


def project_settlement_lines(services: Services) -> None:
    """What the stream consumer does with every entry (moto's table has no stream here)."""
    for entry in services.ledger_store.audit_records()[0]:
        record_partner_postings(services.exchange_items, entry)


def test_a_partner_credit_without_its_settlement_line_is_a_settlement_line_missing(services: Services) -> None:
    # The old stream consumer dropped a record after 10 failed retries: the line never written
    ingest = wire(services, program(), Clock())
    ingest.handle(partner_points("p-1", 300))
    assert classes(services, now=NOW + timedelta(minutes=5)) == []  # the stream has not caught up yet
    assert classes(services, now=NOW + timedelta(hours=2)) == ["settlement_line_missing"]
    project_settlement_lines(services)
    assert classes(services, now=NOW + timedelta(hours=2)) == []


def test_a_clean_run_through_every_story_has_no_loss(services: Services) -> None:
    config = program(return_window_days=30, behaviour={"referral": 200, "sign_in": 5})
    clock = Clock()
    ingest: Ingest = wire(services, config, clock)
    services.members.claim(EMAIL.key, "m-1", provisional=False)
    ingest.handle(behaviour(BehaviourAction.REFERRAL, "ref-1", "m-ref", at=NOW - timedelta(days=1), subject="m-1"))
    ingest.handle(purchase("1001", "100"))
    ingest.handle(purchase("1002", "50"))
    ingest.handle(refund("r-1", "1001", "30"))  # partial, parked until activation
    ingest.handle(refund("r-2", "1002", "50"))  # in full: the order is voided
    ingest.handle(partner_points("p-1", 300))
    services.watch.flag("demo", Finding(provisional_member(PARTNER), "exchange_burst", "11"), NOW, "c-1")
    ingest.handle(partner_points("p-2", 200))
    ingest.handle(partner_points("p-2", 200))  # a redelivery of the held credit: nothing voided
    decide_flag(services.members, "demo", provisional_member(PARTNER), "void", "ops-1", "fraud", NOW)
    ingest.settle_held("demo", provisional_member(PARTNER), "void", "fraud", NOW)
    duplicate = PurchaseEvent(
        program="demo",
        channel=Channel.APP,
        source="app:app",
        external_id="1001",
        identity=Identity(kind=IdentityKind.MEMBER, value="m-1"),
        occurred_at=NOW - timedelta(hours=1),
        currency="USD",
        eligible_amount=Decimal(100),
    )
    assert ingest.handle(duplicate).status == "skipped"
    ingest.activate_due("demo", NOW + timedelta(days=31))
    project_settlement_lines(services)
    assert classes(services, now=NOW + timedelta(days=31)) == []


def test_a_dead_letter_without_its_reason_is_named_and_left_in_its_queue() -> None:
    # The old workers parked crashes and poison in the DLQ with nothing saying why
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
        why = "occurred_at: year 9999 is out of range"
        poison = '{"program": "demo", "external_id": "9999"}'
        sqs.send_message(
            QueueUrl=url, MessageBody=poison, MessageAttributes={"reason": {"DataType": "String", "StringValue": why}}
        )
        assert audit_dead_letters(sqs, {"IngestDeadLetterQueue": url}) == []
        sqs.send_message(QueueUrl=url, MessageBody='{"program": "demo", "external_id": "o-7"}')
        sqs.send_message(QueueUrl=url, MessageBody="{not json")

        found = audit_dead_letters(sqs, {"IngestDeadLetterQueue": url})

        assert sorted((d["class"], d["program"]) for d in found) == [
            ("dead_letter_without_reason", "-"),
            ("dead_letter_without_reason", "demo"),
        ]
        # Looked at, not taken: all three are there for a redrive at once
        left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert len(left) == 3
        clean = {"ok": True, "entries": 0, "accounts": 0, "problems": [], "losses": [], "totals": {}}
        lines = report_lines("points", with_found(clean, found))
        assert lines[-2:] == ["  losses by class: dead_letter_without_reason 2", "  FAILED"]


def test_settlement_lines_of_a_day_without_its_statement_are_a_settlement_unwritten(services: Services) -> None:
    # The old job wrote yesterday's statement only: the days it was down were never written
    wire(services, program(), Clock())
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="statements")
    down, yesterday = (NOW - timedelta(days=3)).date(), (NOW - timedelta(days=1)).date()
    for day in (down, yesterday):
        line = SettlementLine(partner="airline", entry_id=f"x-{day}", points=100)
        services.exchange_items.add_settlement_line("demo", day.isoformat(), line)

    result = run_audit(TABLE, now=NOW, statements=(s3, "statements"))

    assert [(loss["class"], loss["program"]) for loss in result["losses"]] == [("settlement_unwritten", "demo")]
    assert down.isoformat() in result["losses"][0]["detail"]  # yesterday's is not due yet
    s3.put_object(Bucket="statements", Key=statement_keys("demo", down)[0], Body=b"{}")
    assert run_audit(TABLE, now=NOW, statements=(s3, "statements"))["ok"]


def test_a_dropped_file_without_its_report_is_a_file_unreported() -> None:
    # The old splitter timed out on a 50,000-row file three times and wrote no report
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="files")
        s3.put_object(Bucket="files", Key="partners/airline/big.csv", Body=b"member,points\n")
        s3.put_object(Bucket="files", Key="till/eod.csv", Body=b"sale\n")
        s3.put_object(Bucket="files", Key="reports/till/eod.csv.json", Body=b"{}")
        landed = datetime.now(UTC)

        assert audit_file_drops(s3, "files", landed) == []  # still within the splitter's time
        found = audit_file_drops(s3, "files", landed + timedelta(hours=1))

        assert [(d["class"], d["detail"].split(" landed")[0]) for d in found] == [
            ("file_unreported", "files/partners/airline/big.csv")
        ]


def test_pointbridge_audit_of_a_table_that_is_not_there_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        secret = boto3.client("secretsmanager").create_secret(Name="chain-key", SecretString="k")["ARN"]
        args = argparse.Namespace(
            table="no-such-table",
            json=False,
            dead_letter_queue=[],
            files_bucket=None,
            statements_bucket=None,
            chain_key_secret=secret,
            digests_bucket=None,
        )
        assert run_command(args) == 2
    assert capsys.readouterr().out.startswith("cannot audit: Scan failed: ResourceNotFoundException")


def test_pointbridge_audit_without_the_chain_key_refuses_to_run(capsys: pytest.CaptureFixture[str]) -> None:
    # A chain it cannot check would read as sound: no key, no audit
    args = argparse.Namespace(
        table="points",
        json=False,
        dead_letter_queue=[],
        files_bucket=None,
        statements_bucket=None,
        chain_key_secret=None,
        digests_bucket=None,
    )
    assert run_command(args) == 2
    assert capsys.readouterr().out.startswith("no chain key: give --chain-key-secret")


def test_the_reminder_walks_look_ahead_is_not_clock_ahead_but_beyond_it_is(services: Services) -> None:
    # A reminder run at NOW walks the lots due within reminder_days (14) after it, by design
    wire(services, program(reminder_days=14), Clock())
    services.job_items.save_progress(
        "reminders", "demo", Progress(through=ts(NOW + timedelta(days=14)), target=ts(NOW + timedelta(days=14)))
    )
    assert classes(services, now=NOW) == []
    # A run whose now was ahead of the clock walked further than its look-ahead: that is clock_ahead
    beyond = NOW + timedelta(days=20)
    moved = services.job_items.save_progress(
        "reminders", "demo", Progress(through=ts(beyond), target=ts(beyond), rev=1)
    )
    assert moved and classes(services, now=NOW) == ["clock_ahead"]
