"""A program's configuration: its point currency and the rules it runs by, as versioned data.

Every ledger entry records the version that produced it; changing the configuration never
rewrites history. Configs are validated here, so a bad one is refused before it can go live.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from dateutil.relativedelta import relativedelta
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ProgramId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")]

# Lots that never expire sort after every date in the store's keys.
NEVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


class ExpiryKind(StrEnum):
    NONE = "none"  # points never expire
    ROLLING = "rolling"  # N months after the earn
    CALENDAR_YEAR = "calendar_year"  # end of the year N years after the earn (N=0: same year)


class ExpiryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ExpiryKind = ExpiryKind.ROLLING
    months: Annotated[int, Field(ge=1, le=120)] = 12
    years: Annotated[int, Field(ge=0, le=10)] = 1

    def expires_at(self, earned_at: datetime) -> datetime:
        if self.kind is ExpiryKind.NONE:
            return NEVER
        if self.kind is ExpiryKind.ROLLING:
            return earned_at.astimezone(UTC) + relativedelta(months=self.months)
        return datetime(earned_at.year + self.years, 12, 31, 23, 59, 59, tzinfo=UTC)


class ProgramConfig(BaseModel):
    """The live rules of one program (one point currency). Extended by the rules and catalogue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    program: ProgramId
    version: Annotated[int, Field(ge=1)] = 1
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    expiry: ExpiryPolicy = ExpiryPolicy()
