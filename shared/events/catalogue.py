"""The outbound events: what Pointbridge tells a CRM, a mailer or a data warehouse, as a contract.

Every event goes to the notifications bus (EventBridge) with a `source`, a `detail-type` (the
model's name) and a `detail` that is one of these models as JSON. The JSON Schemas committed under
docs/events/ are generated from them (`python -m shared.events.catalogue`); a unit test keeps the
two equal, and the integration and e2e tests validate what was published against the committed
files. Adding an optional field is compatible; removing or renaming one, or making it required, is
not, and needs a new detail-type.

Every detail has an `id` that is stable for its cause (the ledger entry, the tier move, the flag,
the reminder's date): a stream record delivered again publishes the same id, so a subscriber that
keeps the ids it has seen drops the rare duplicate. Texts meant for the member come in both of the
platform's languages (`words`), as the member's statement says them.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

LEDGER_EVENTS = "pointbridge.ledger"  # from ledger entries, published by the table's stream (WatchFunction)
MEMBER_EVENTS = "pointbridge.members"  # tier moves and flags, published by the table's stream
JOB_EVENTS = "pointbridge.jobs"  # reminders and the notice that a program ends (ReminderFunction)
IDENTITY_EVENTS = "pointbridge.identities"  # one-time codes (ApiFunction)
SOURCES = (LEDGER_EVENTS, MEMBER_EVENTS, JOB_EVENTS, IDENTITY_EVENTS)


class Words(BaseModel):
    """One text for the member, in each language the platform speaks."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    en: str = Field(description="English.")
    zh_cn: str = Field(alias="zh-CN", description="Simplified Chinese.")


class OutboundEvent(BaseModel):
    """What every outbound event's detail carries."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    SOURCE: ClassVar[str]

    id: str = Field(description="Stable for the event's cause: the same id on a redelivery; drop duplicates by it.")
    program: str = Field(description="The loyalty program.")
    member: str = Field(description="The member the event is about.")

    @classmethod
    def detail_type(cls) -> str:
        return cls.__name__

    def detail(self) -> dict[str, Any]:
        """The event's detail as published (JSON-ready, languages by their tags)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


class PointsEarned(OutboundEvent):
    """Points credited to a member: a purchase, a partner's points, a behaviour (a review, a birthday)."""

    SOURCE: ClassVar[str] = LEDGER_EVENTS

    points: int = Field(gt=0, description="Points earned.")
    pending: bool = Field(description="True while they wait for the return window (or a review) before they count.")
    channel: str | None = Field(default=None, description="online, pos, partner, app; null if not from a channel.")
    occurred_at: datetime = Field(description="When the purchase or action happened.")
    rule_version: int = Field(description="The program config version whose rules computed the points.")
    words: Words = Field(description="The statement's line for it.")


class PointsRedeemed(OutboundEvent):
    """Points spent on a reward, a donation, a draw or a checkout."""

    SOURCE: ClassVar[str] = LEDGER_EVENTS

    points: int = Field(gt=0, description="Points spent.")
    reward: str | None = Field(default=None, description="The reward's id, when one was redeemed.")
    occurred_at: datetime
    words: Words = Field(description="The statement's line for it.")


class PointsExpired(OutboundEvent):
    """Points that reached their expiry date unspent (or the program's end)."""

    SOURCE: ClassVar[str] = LEDGER_EVENTS

    points: int = Field(gt=0, description="Points that expired.")
    occurred_at: datetime = Field(description="When they expired.")
    words: Words = Field(description="The statement's line: which earn expired, and when.")


class TransferPending(OutboundEvent):
    """Points on their way out or in, not final yet: a transfer to a partner, a gift held until a date."""

    SOURCE: ClassVar[str] = LEDGER_EVENTS

    points: int = Field(gt=0)
    direction: Literal["out", "in"] = Field(description="out: reserved for a partner; in: a gift held for the member.")
    counterparty: str = Field(description="The partner, or the member who sent the gift.")
    occurred_at: datetime
    words: Words = Field(description="The statement's line for it.")


class ExpiringEarn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    points: int = Field(gt=0, description="Points of this earn that expire on the date.")
    earned: Words = Field(description="Which earn they came from, as the statement names it.")


class PointsExpiring(OutboundEvent):
    """A reminder, `reminder_days` before: these points expire on this date unless spent (or kept by activity)."""

    SOURCE: ClassVar[str] = JOB_EVENTS

    points: int = Field(description="All points expiring on the date.")
    date: dt.date = Field(description="The expiry date, in the program's time zone.")
    earns: list[ExpiringEarn] = Field(default_factory=list, description="The earns they came from.")
    words: Words | None = Field(default=None, description="The reminder as a sentence for the member.")


class ProgramEnding(OutboundEvent):
    """The program ends: the member's points can be spent until the date, and expire then."""

    SOURCE: ClassVar[str] = JOB_EVENTS

    points: int = Field(description="The points the member holds.")
    date: dt.date = Field(description="The program's last day, in its time zone.")


class TierChanged(OutboundEvent):
    """The member moved up (at once, on reaching a threshold) or down (at the end of a period)."""

    SOURCE: ClassVar[str] = MEMBER_EVENTS

    from_tier: str
    to_tier: str
    direction: Literal["up", "down"]
    reason: str = Field(description="Why: the activity measured against the tier's threshold.")
    occurred_at: datetime


class FlagRaised(OutboundEvent):
    """The anomaly watch flagged the member: their new points wait until an operator decides."""

    SOURCE: ClassVar[str] = MEMBER_EVENTS

    check: str = Field(description="The check that fired: card_velocity, order_two_channels, exchange_burst...")
    reason: str
    occurred_at: datetime


class VerificationCodeIssued(OutboundEvent):
    """A one-time code to deliver to an e-mail address or a phone: the only place the raw address travels."""

    SOURCE: ClassVar[str] = IDENTITY_EVENTS

    channel: Literal["email", "phone"]
    to: str = Field(description="The address or number to send the code to.")
    code: str = Field(pattern=r"^[0-9]{6}$")
    expires_at: datetime


CATALOGUE: tuple[type[OutboundEvent], ...] = (
    PointsEarned,
    PointsRedeemed,
    PointsExpiring,
    PointsExpired,
    TierChanged,
    TransferPending,
    FlagRaised,
    VerificationCodeIssued,
    ProgramEnding,
)
BY_TYPE: dict[str, type[OutboundEvent]] = {event.detail_type(): event for event in CATALOGUE}
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "events"


def schema(event: type[OutboundEvent]) -> dict[str, Any]:
    """The JSON Schema of one event's detail, with where it comes from."""
    body = event.model_json_schema(by_alias=True, mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"pointbridge/events/{event.detail_type()}.json",
        "x-source": event.SOURCE,
        "x-detail-type": event.detail_type(),
        **body,
    }


def schema_text(event: type[OutboundEvent]) -> str:
    return json.dumps(schema(event), indent=2, ensure_ascii=False) + "\n"


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for event in CATALOGUE:
        path = folder / f"{event.detail_type()}.json"
        path.write_text(schema_text(event), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(path)
