"""Outbound events from the table's stream: the stream is the outbox.

A ledger entry, a tier move's record and a flag's record are each written in the transaction that
made them happen, so the stream has every cause exactly once, whichever path wrote it (ingest, the
API, a job, a support action). The watch turns each into its event (`shared.events.catalogue`) and
publishes it with an id derived from the cause. A marker per event id, put after publishing, makes
a redelivered record skip what was sent; a crash between the two sends the event again with the
same id, which a subscriber drops. A stream batch is published at once (`Outbound.on_batch`);
what that leaves undone is sent record by record, each failure reported with its record.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.events.catalogue import (
    FlagRaised,
    OutboundEvent,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    TierChanged,
    TransferPending,
    Words,
)
from shared.ledger.models import MEMBER_ACCOUNTS, Account, Entry, EntryKind
from shared.ledger.statement import line, related_ids

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

# Names the ids: uuid5 of (detail-type, program, cause) is the same on every redelivery.
_ID_SPACE = uuid.UUID("5b0f3c1e-7d4a-4e59-9a7e-2f64b1c0d8a3")


class Publisher(Protocol):
    def publish(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None: ...

    def publish_all(self, events: Sequence[tuple[str, str, dict[str, Any]]]) -> set[str]: ...


class Marks(Protocol):
    def published(self, event_id: str) -> bool: ...

    def published_of(self, event_ids: Collection[str]) -> set[str]: ...

    def mark(self, event_id: str, detail_type: str, at: datetime) -> None: ...

    def mark_all(self, published: Sequence[tuple[str, str]], at: datetime) -> None: ...


def event_id(detail_type: str, program: str, cause: str) -> str:
    return str(uuid.uuid5(_ID_SPACE, f"{detail_type}|{program}|{cause}"))


def words(entry: Entry, related: Mapping[str, Entry]) -> Words:
    return Words(en=line(entry, "en", related).sentence, zh_cn=line(entry, "zh-CN", related).sentence)


def _member_delta(entry: Entry) -> int:
    return sum(entry.delta(account) for account in MEMBER_ACCOUNTS)


def entry_event(entry: Entry, related: Mapping[str, Entry]) -> OutboundEvent | None:
    """The event one ledger entry is, if it is one a subscriber hears of."""
    kind, program, member = entry.kind, entry.program, entry.member
    common: dict[str, Any] = {"program": program, "member": member, "occurred_at": entry.event_time}
    if kind in (EntryKind.EARN, EntryKind.EARN_PENDING):
        points = _member_delta(entry)
        if points <= 0:
            return None
        return PointsEarned(
            id=event_id("PointsEarned", program, entry.entry_id),
            points=points,
            pending=kind is EntryKind.EARN_PENDING,
            channel=entry.details.get("channel") or None,
            rule_version=entry.config_version,
            words=words(entry, related),
            **common,
        )
    spent = -_member_delta(entry)
    checkout = kind is EntryKind.CAPTURE and not entry.related.startswith("partner-out:")
    if (kind is EntryKind.SPEND or checkout) and spent > 0:
        return PointsRedeemed(
            id=event_id("PointsRedeemed", program, entry.entry_id),
            points=spent,
            reward=entry.details.get("reward") or None,
            words=words(entry, related),
            **common,
        )
    if kind is EntryKind.EXPIRY and spent > 0:
        return PointsExpired(
            id=event_id("PointsExpired", program, entry.entry_id), points=spent, words=words(entry, related), **common
        )
    if kind is EntryKind.HOLD and entry.source.startswith("partner-out:") and entry.delta(Account.HELD) > 0:
        return TransferPending(
            id=event_id("TransferPending", program, entry.entry_id),
            points=entry.delta(Account.HELD),
            direction="out",
            counterparty=entry.source.split(":")[1],
            words=words(entry, related),
            **common,
        )
    if kind is EntryKind.TRANSFER_IN and entry.delta(Account.HELD) > 0:
        return TransferPending(
            id=event_id("TransferPending", program, entry.entry_id),
            points=entry.delta(Account.HELD),
            direction="in",
            counterparty=entry.details.get("from", "").split("/", 1)[-1],
            words=words(entry, related),
            **common,
        )
    return None


def tier_event(item: Mapping[str, Any], ranks: Callable[[str, str], int]) -> TierChanged | None:
    """A tier move's record as TierChanged; None for a requalification (no move) or a record without its names."""
    program, member = str(item.get("program", "")), str(item.get("member", ""))
    before, after = str(item.get("from", "")), str(item.get("to", ""))
    if not program or not member or before == after:
        return None
    at = str(item["at"])
    return TierChanged(
        id=event_id("TierChanged", program, f"{member}|{at}|{after}"),
        program=program,
        member=member,
        from_tier=before,
        to_tier=after,
        direction="up" if ranks(program, after) > ranks(program, before) else "down",
        reason=str(item.get("reason", "")),
        occurred_at=_moment(at),
    )


def flag_event(item: Mapping[str, Any]) -> FlagRaised | None:
    """A flag's record as FlagRaised when a check raised it (operators' decisions are not raised flags)."""
    program, member = str(item.get("program", "")), str(item.get("member", ""))
    if not program or not member or item.get("decision") != "flagged":
        return None
    decision = str(item.get("id", ""))
    return FlagRaised(
        id=event_id("FlagRaised", program, f"{member}|{decision}"),
        program=program,
        member=member,
        check=str(item.get("check") or decision.split(":", 1)[0]),
        reason=str(item.get("reason", "")),
        occurred_at=_moment(str(item["at"])),
    )


def _moment(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Outbound:
    """Publishes each cause's event once (by its marker), to the publisher of the event's source."""

    def __init__(
        self,
        marks: Marks,
        publishers: Mapping[str, Publisher],
        entries: Callable[[str, str], Entry | None],
        ranks: Callable[[str, str], int],
        clock: Callable[[], datetime],
    ) -> None:
        self._marks, self._publishers, self._entries, self._ranks, self._clock = (
            marks,
            publishers,
            entries,
            ranks,
            clock,
        )

    def on_entry(self, entry: Entry) -> OutboundEvent | None:
        return self._send(self._entry_event(entry))

    def on_item(self, item: Mapping[str, Any]) -> OutboundEvent | None:
        return self._send(self._item_event(item))

    def on_batch(self, causes: Mapping[str, Entry | Mapping[str, Any]]) -> set[str]:
        """A stream batch's causes (entries, tier moves, flags) by a key of the caller's: the keys done.

        One marker read for all, PutEvents ten at a time, one marker write per 25: what one cause at a
        time cost in three requests each. A cause whose event was not accepted is left out of the
        keys returned, for its record's own handling (`on_entry`, `on_item`) to send and report.
        """
        done: set[str] = set()
        events: dict[str, OutboundEvent] = {}
        for key, cause in causes.items():
            event = self._entry_event(cause) if isinstance(cause, Entry) else self._item_event(cause)
            if event is None:
                done.add(key)
            else:
                events[key] = event
        sent = self._marks.published_of({event.id for event in events.values()})
        fresh = {event.id: event for event in events.values() if event.id not in sent}
        by_source: dict[str, list[OutboundEvent]] = {}
        for event in fresh.values():
            by_source.setdefault(event.SOURCE, []).append(event)
        accepted: set[str] = set()
        for source, group in by_source.items():
            outgoing = [(event.detail_type(), event.id, event.detail()) for event in group]
            accepted |= self._publishers[source].publish_all(outgoing)
        self._marks.mark_all([(event_id, fresh[event_id].detail_type()) for event_id in accepted], self._clock())
        done.update(key for key, event in events.items() if event.id in sent or event.id in accepted)
        return done

    def _entry_event(self, entry: Entry) -> OutboundEvent | None:
        if entry.kind not in _PUBLISHED_KINDS:
            return None
        related: dict[str, Entry] = {}
        for wanted in related_ids([entry]):
            found = self._entries(entry.program, wanted)
            if found is not None:
                related[wanted] = found
        return entry_event(entry, related)

    def _item_event(self, item: Mapping[str, Any]) -> OutboundEvent | None:
        kind = item.get("type")
        if kind == "tier_change":
            return tier_event(item, self._ranks)
        if kind == "flag_decision":
            return flag_event(item)
        return None

    def _send(self, event: OutboundEvent | None) -> OutboundEvent | None:
        if event is None or self._marks.published(event.id):
            return None
        self._publishers[event.SOURCE].publish(event.detail_type(), event.id, event.detail())
        self._marks.mark(event.id, event.detail_type(), self._clock())
        return event


_PUBLISHED_KINDS = frozenset(
    {
        EntryKind.EARN,
        EntryKind.EARN_PENDING,
        EntryKind.SPEND,
        EntryKind.CAPTURE,
        EntryKind.EXPIRY,
        EntryKind.HOLD,
        EntryKind.TRANSFER_IN,
    }
)
