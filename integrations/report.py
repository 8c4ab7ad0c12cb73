"""The row-by-row outcome of a batch file: what became events and which lines were refused, why."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.events.model import BehaviourEvent, PointsEvent, PurchaseEvent, RefundEvent

Event = PurchaseEvent | RefundEvent | PointsEvent | BehaviourEvent


@dataclass(frozen=True)
class RejectedRow:
    line: int  # 1-based physical line where the row starts; 0 when the whole file is unreadable
    code: str  # the AdapterError code, e.g. "malformed_payload"
    reason: str


@dataclass
class BatchReport:
    accepted: list[Event] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
