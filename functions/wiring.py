"""Built once per warm container, on first use: the store, the ledger, ingest and the sources config."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from integrations.sources import Sources, parse_sources
from shared.earning.queue import EventQueue
from shared.infra import aws
from shared.infra.settings import get_settings

if TYPE_CHECKING:
    from shared.earning.ingest import Ingest


@cache
def ingest_service() -> Ingest:
    # Imported here, not at the top: the webhook receiver shares this module for its sources and
    # queue but never posts to the ledger, and should not pay the ledger's import on a cold start.
    from shared.earning.ingest import Ingest
    from shared.ledger.ledger import Ledger
    from shared.ledger.store import DynamoStore, JobStore, MemberDirectory, ProgramRepository
    from shared.members.tiers import Tiers

    store = DynamoStore()
    programs = ProgramRepository(store)
    ledger = Ledger(store, programs)
    return Ingest(ledger, store, MemberDirectory(store), programs, tiers=Tiers(ledger, programs, JobStore(store)))


@cache
def sources() -> Sources:
    settings = get_settings()
    text = settings.sources
    if text.startswith("ssm:"):
        # Secrets stay out of the function's environment: SOURCES names an SSM SecureString.
        text = aws.ssm().get_parameter(Name=text.removeprefix("ssm:"), WithDecryption=True)["Parameter"]["Value"]
    return parse_sources(text, settings.identity_hash_key)


@cache
def ingest_queue() -> EventQueue:
    return EventQueue(get_settings().ingest_queue_url)


@cache
def dead_letter_queue() -> EventQueue:
    return EventQueue(get_settings().ingest_dlq_url)


def reset() -> None:
    """Forget everything built (tests switch emulators and settings between cases)."""
    for factory in (ingest_service, sources, ingest_queue, dead_letter_queue):
        factory.cache_clear()
