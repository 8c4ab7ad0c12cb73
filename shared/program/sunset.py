"""A program's announced end, as the HTTP API enforces it (the dates come from shared.expiry).

- Spending (redemptions, donations, checkout holds, gifts, draw tickets, exchanges out of the
  program, transfers out to a partner) needs `redemption_open`: refused from `ends_at` on.
- Crediting (inbound partner transfers, exchanges into the program) needs `earning_open`:
  refused from `earning_ends_at` on.
- A request the ledger already posted before the close is still a replay: it returns the stored
  entry rather than a refusal, so retrying with the same reference stays safe forever. That costs
  one GetItem, and only for requests that arrive after the close.
- Settling what was started while the program was open (capturing or releasing a hold, a partner
  confirming or rejecting an outbound transfer) is not refused: the member's decision was made in
  time, and refusing the capture would only hand back points that are about to expire.
- The sunset is set by its own announcement (`shared.expiry.announce_sunset`, with its notice
  rules); a config published the ordinary way may not set, move or drop it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from shared.errors import ConfigError, EarningClosedError, RedemptionClosedError, SunsetError
from shared.program.config import Sunset

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.program.config import ProgramConfig
    from shared.program.store import ProgramRepository

MIN_NOTICE_DAYS = 30


def require_redemption_open(config: ProgramConfig, at: datetime, already_posted: Callable[[], bool]) -> None:
    if redemption_open(config, at) or already_posted():
        return
    assert config.sunset is not None
    ended = config.sunset.ends_at.isoformat()
    raise RedemptionClosedError(f"{config.program} ended at {ended}: its points can no longer be spent", ended_at=ended)


def require_earning_open(config: ProgramConfig, at: datetime, already_posted: Callable[[], bool]) -> None:
    if earning_open(config, at) or already_posted():
        return
    assert config.sunset is not None
    ended = config.sunset.earning_ends_at.isoformat()
    raise EarningClosedError(f"{config.program} stopped crediting points at {ended}", earning_ended_at=ended)


def check_publish(live: ProgramConfig | None, draft: ProgramConfig) -> None:
    """A published config keeps the live sunset as it is (None for a new program)."""
    current = live.sunset if live is not None else None
    if draft.sunset != current:
        raise ConfigError(
            f"{draft.program}'s end is announced through POST /admin/programs/{draft.program}/sunset; "
            "a config may not set, change or drop it (copy the live `sunset` unchanged)"
        )


def announce_sunset(
    programs: ProgramRepository, program: str, at: datetime, notice_days: int, redemption_days: int
) -> ProgramConfig:
    """Announce the end of a program: earning stops after the notice, redemption a while later."""
    if notice_days < MIN_NOTICE_DAYS:
        raise SunsetError(f"members need at least {MIN_NOTICE_DAYS} days' notice, not {notice_days}")
    if redemption_days < 0:
        raise SunsetError("redemption cannot close before earning does")
    config = programs.get(program)
    if config.sunset is not None:
        raise SunsetError(f"{program} already ends on {config.sunset.ends_at.date().isoformat()}")
    earning_ends = at + timedelta(days=notice_days)
    sunset = Sunset(
        announced_at=at, earning_ends_at=earning_ends, ends_at=earning_ends + timedelta(days=redemption_days)
    )
    return programs.publish(config.model_copy(update={"version": config.version + 1, "sunset": sunset}))


def earning_open(config: ProgramConfig, at: datetime) -> bool:
    """Whether the ingest path may still credit points in this program at `at`."""
    return config.sunset is None or at < config.sunset.earning_ends_at


def redemption_open(config: ProgramConfig, at: datetime) -> bool:
    return config.sunset is None or at < config.sunset.ends_at
