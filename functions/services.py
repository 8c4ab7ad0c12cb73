"""The composition root: every store, use case and job the functions use, built in one place.

One `Services` per warm container, built on first use (so moto, the sandbox or AWS are in place
first) and each part built on its first use: a webhook receiver that only queues events never
imports the ledger. Handlers and routes ask `services()` for what they need and never construct
a store or a use case themselves. Tests swap the table, the clock (and anything else) with
`use(Services(...))`, not by patching module paths.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shared.events import catalogue
from shared.infra import aws
from shared.infra.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient

    from integrations.channels import ChannelSources, ChannelView
    from integrations.sources import Sources
    from shared.access.store import AccessItems
    from shared.channels.files import ChannelFiles
    from shared.channels.registry import ChannelRegistry
    from shared.channels.store import ChannelItems, ChannelSecrets
    from shared.earning.ingest import Ingest
    from shared.earning.queue import EventQueue
    from shared.earning.store import EarningItems
    from shared.exchange.store import ExchangeItems
    from shared.files.splitter import FileSplitter, SplitterLimits
    from shared.files.store import FileRuns
    from shared.infra.table import Table
    from shared.jobs.digest import DigestJob
    from shared.jobs.expiry import ExpiryJob
    from shared.jobs.holds import HoldLapseJob
    from shared.jobs.notify import Notifier
    from shared.jobs.reminders import ReminderJob
    from shared.jobs.settlement import SettlementJob
    from shared.jobs.store import JobItems
    from shared.jobs.tiers import TierReviewJob
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoLedgerStore
    from shared.members.store import MemberDirectory
    from shared.members.tiers import Tiers
    from shared.program.store import Documents, ProgramRepository
    from shared.projections.dead_letters import DeadLetterQueues
    from shared.projections.outbound import Outbound
    from shared.projections.store import FailureNotes, FigureItems, WatchItems
    from shared.projections.watch import Watch
    from shared.rewards.store import KmsDrawSigner, RewardItems


IDENTITY_EVENTS = catalogue.IDENTITY_EVENTS


def utcnow() -> datetime:
    return datetime.now(UTC)


class Services:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        table_name: str | None = None,
        client: DynamoDBClient | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        config_cache_seconds: float | None = None,
        notifier: Notifier | None = None,
        channel_cache_seconds: float | None = None,
        events_client: Any = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._table_name = table_name or self.settings.table_name
        self._client = client
        self.clock = clock
        self._sleep = sleep
        self._config_cache_seconds = config_cache_seconds
        self._notifier = notifier
        self._channel_cache = channel_cache_seconds
        self._events_client = events_client  # None: the default client (the function's own endpoint)

    def now(self) -> datetime:
        """The clock every part reads (through this method, so a test may swap `clock` at any time)."""
        return self.clock()

    # Storage

    @cached_property
    def table(self) -> Table:
        from shared.infra.table import Table

        return Table(self._table_name, self._client)

    @cached_property
    def ledger_store(self) -> DynamoLedgerStore:
        from shared.ledger.store import DynamoLedgerStore

        return DynamoLedgerStore(self.table)

    @cached_property
    def programs(self) -> ProgramRepository:
        from shared.program.store import CONFIG_CACHE_SECONDS, ProgramRepository

        cache = CONFIG_CACHE_SECONDS if self._config_cache_seconds is None else self._config_cache_seconds
        return ProgramRepository(self.table, cache_seconds=cache, clock=self.now)

    @cached_property
    def documents(self) -> Documents:
        from shared.program.store import Documents

        return Documents(self.table, clock=self.now)

    @cached_property
    def members(self) -> MemberDirectory:
        from shared.members.store import MemberDirectory

        return MemberDirectory(self.table)

    @cached_property
    def earning_items(self) -> EarningItems:
        from shared.earning.store import EarningItems

        return EarningItems(self.table)

    @cached_property
    def access_items(self) -> AccessItems:
        from shared.access.store import AccessItems

        return AccessItems(self.table)

    @cached_property
    def exchange_items(self) -> ExchangeItems:
        from shared.exchange.store import ExchangeItems

        return ExchangeItems(self.table)

    @cached_property
    def reward_items(self) -> RewardItems:
        from shared.rewards.store import RewardItems

        return RewardItems(self.table)

    @cached_property
    def job_items(self) -> JobItems:
        from shared.jobs.store import JobItems

        return JobItems(self.table)

    @cached_property
    def file_runs(self) -> FileRuns:
        from shared.files.store import FileRuns

        return FileRuns(self.table)

    def file_splitter(self, bucket: str, limits: SplitterLimits) -> FileSplitter:
        """The file splitter for one bucket (an S3 event names its bucket)."""
        from shared.files.splitter import FileSplitter
        from shared.files.store import FileBucket

        return FileSplitter(FileBucket(bucket, aws.s3), self.file_runs, self.ingest_queue.send, limits)

    @cached_property
    def figure_items(self) -> FigureItems:
        from shared.projections.store import FigureItems

        return FigureItems(self.table)

    @cached_property
    def failure_notes(self) -> FailureNotes:
        from shared.projections.store import FailureNotes

        return FailureNotes(self.table)

    @cached_property
    def watch_items(self) -> WatchItems:
        from shared.projections.store import WatchItems

        return WatchItems(self.table)

    # Use cases

    @cached_property
    def ledger(self) -> Ledger:
        from shared.ledger.ledger import Ledger
        from shared.members.flags import FlagHolds

        # An open flag holds the member's debits as the program says (spending, gifting, exchanging).
        return Ledger(
            self.ledger_store,
            self.programs,
            clock=self.now,
            sleep=self._sleep,
            holds=FlagHolds(self.programs),
            chain_key=lambda: self.settings.chain_hash_key.encode(),
        )

    @cached_property
    def tiers(self) -> Tiers:
        from shared.members.tiers import Tiers

        return Tiers(self.programs, self.members)

    @cached_property
    def ingest(self) -> Ingest:
        from shared.earning.ingest import Ingest

        return Ingest(
            self.ledger,
            self.ledger_store,
            self.members,
            self.earning_items,
            self.programs,
            clock=self.now,
            tiers=self.tiers,
        )

    @cached_property
    def watch(self) -> Watch:
        from shared.projections.watch import Watch

        return Watch(self.programs, self.watch_items, self.members)

    @cached_property
    def outbound(self) -> Outbound:
        """The outbound events of the stream's records (`shared.events.catalogue`), one publisher per source."""
        from shared.jobs.notify import EventBridgeNotifier
        from shared.projections.outbound import Outbound
        from shared.projections.store import OutboundMarks

        def publisher(source: str) -> Notifier:
            if self._notifier is not None:
                return self._notifier
            return EventBridgeNotifier(self.settings.notifications_bus, client=self._events_client, source=source)

        def rank(program: str, tier: str) -> int:
            return self.programs.get(program).held_tier(tier).rank

        return Outbound(
            OutboundMarks(self.table),
            {source: publisher(source) for source in catalogue.SOURCES},
            self.ledger_store.get_entry,
            rank,
            clock=self.now,
        )

    # Scheduled jobs

    @cached_property
    def notifier(self) -> Notifier:
        if self._notifier is not None:
            return self._notifier
        from shared.jobs.notify import EventBridgeNotifier

        return EventBridgeNotifier(self.settings.notifications_bus)

    @cached_property
    def identity_notices(self) -> Notifier:
        """Where one-time codes go out (`VerificationCodeIssued`, source `pointbridge.identities`)."""
        if self._notifier is not None:
            return self._notifier
        from shared.jobs.notify import EventBridgeNotifier

        return EventBridgeNotifier(self.settings.notifications_bus, source=IDENTITY_EVENTS)

    @cached_property
    def expiry_job(self) -> ExpiryJob:
        from shared.jobs.expiry import ExpiryJob

        return ExpiryJob(self.ledger, self.programs, self.job_items, clock=self.now)

    @cached_property
    def reminder_job(self) -> ReminderJob:
        from shared.jobs.reminders import ReminderJob

        return ReminderJob(self.ledger, self.programs, self.job_items, self.notifier, clock=self.now)

    @cached_property
    def tier_review_job(self) -> TierReviewJob:
        from shared.jobs.tiers import TierReviewJob

        return TierReviewJob(self.ledger, self.programs, self.job_items, self.tiers, clock=self.now)

    @cached_property
    def hold_lapse_job(self) -> HoldLapseJob:
        from shared.jobs.holds import HoldLapseJob

        return HoldLapseJob(self.ledger, self.programs, self.job_items, clock=self.now)

    @cached_property
    def settlement_job(self) -> SettlementJob:
        from shared.jobs.settlement import SettlementJob
        from shared.jobs.store import StatementFiles

        files = StatementFiles(self.settings.statements_bucket, aws.s3)
        return SettlementJob(self.ledger, self.programs, self.job_items, self.exchange_items, files, clock=self.now)

    @cached_property
    def draw_signer(self) -> KmsDrawSigner:
        from shared.rewards.store import KmsDrawSigner

        return KmsDrawSigner(self.settings.draw_signing_key, aws.kms)

    @cached_property
    def digest_job(self) -> DigestJob:
        from shared.jobs.digest import DigestJob
        from shared.jobs.store import DigestFiles

        files = DigestFiles(self.settings.digests_bucket, aws.s3)
        return DigestJob(self.ledger_store.accounts, files, clock=self.now)

    # Channels

    @cached_property
    def sources(self) -> Sources | ChannelSources:
        """The adapters' configs: from the channel records (each cached for CHANNEL_CACHE_SECONDS), or
        from a fixed SOURCES JSON document when one is given (tests, local runs)."""
        text = self.settings.sources.strip()
        if text and text != "{}":
            from integrations.sources import parse_sources

            return parse_sources(text, self.settings.identity_hash_key)
        from integrations.channels import ChannelSources

        return ChannelSources(
            self.channel_view,
            lambda: self.settings.identity_hash_key,
            ttl_seconds=self._channel_cache_seconds(),
        )

    def channel_view(self, kind: str, channel_id: str) -> ChannelView | None:
        """A channel's record and its secret, as the adapters' configs are built from them."""
        from integrations.channels import ChannelView

        record = self.channel_items.get(kind, channel_id)
        if record is None:
            return None
        secret = None
        if record.secret_version is not None:
            secret = self.channel_secrets.get(kind, channel_id, record.secret_version)
        return ChannelView(
            kind=record.kind,
            channel_id=record.id,
            program=record.program,
            settings=record.settings,
            status=record.status,
            version=record.version,
            secret=secret,
        )

    def _channel_cache_seconds(self) -> float:
        return self.settings.channel_cache_seconds if self._channel_cache is None else self._channel_cache

    @cached_property
    def channel_items(self) -> ChannelItems:
        from shared.channels.store import ChannelItems

        return ChannelItems(self.table)

    @cached_property
    def channel_secrets(self) -> ChannelSecrets:
        from shared.channels.store import ChannelSecrets

        return ChannelSecrets(self.settings.channel_secrets_path)

    @cached_property
    def channel_files(self) -> ChannelFiles:
        from shared.channels.files import ChannelFiles
        from shared.channels.store import FileObjects

        return ChannelFiles(self.channel_items, FileObjects(self.settings.files_bucket), self.now)

    @cached_property
    def channels(self) -> ChannelRegistry:
        from integrations import channels as rules
        from shared.channels.registry import ChannelRegistry

        return ChannelRegistry(self.channel_items, self.channel_secrets, self.programs, rules, self.now)

    @cached_property
    def ingest_queue(self) -> EventQueue:
        from shared.earning.queue import EventQueue

        return EventQueue(self.settings.ingest_queue_url)

    @cached_property
    def dead_letter_queue(self) -> EventQueue:
        from shared.earning.queue import EventQueue

        return EventQueue(self.settings.ingest_dlq_url)

    @cached_property
    def dead_letter_queues(self) -> DeadLetterQueues:
        from shared.projections.dead_letters import DeadLetterQueues

        return DeadLetterQueues(
            sqs=aws.sqs(),
            ingest_dlq_url=self.settings.ingest_dlq_url,
            ingest_queue_url=self.settings.ingest_queue_url,
            watch_dlq_url=self.settings.watch_dlq_url,
            notes=self.failure_notes,
            replay=self.replay_entry,
            now=self.now,
        )

    def replay_entry(self, entry_pk: str) -> set[tuple[str, str]]:
        """Project one ledger entry again, as the stream watch would (each projection counts it once).

        Returns the (program, UTC day) of a partner statement that may need rewriting."""
        from functions.watch.app import project
        from shared.infra.keys import ItemKey
        from shared.ledger.models import Account, Entry

        item = self.table.get(ItemKey(entry_pk, "E"))
        if item is None:
            raise LookupError(f"no entry item {entry_pk}")
        entry = Entry.model_validate_json(str(item["body"]))
        project(self, entry)
        if not any(posting.account is Account.PARTNER for posting in entry.postings):
            return set()
        return {(entry.program, entry.recorded_at.date().isoformat())}

    # Per container

    @cached_property
    def memo(self) -> dict[str, Any]:
        """Small facts a container learns once (e.g. the programs it has already registered holds for)."""
        return {}


_current: Services | None = None


def services() -> Services:
    """This container's services, built from the environment on first use."""
    global _current
    if _current is None:
        _current = Services()
    return _current


def use(replacement: Services) -> Services:
    """Make `replacement` what every handler and route gets (tests: another table, a fixed clock)."""
    global _current
    _current = replacement
    return replacement


def reset() -> None:
    """Forget the built services; the next `services()` builds them afresh from the environment."""
    global _current
    _current = None
