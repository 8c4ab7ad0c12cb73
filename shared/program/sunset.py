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

from typing import TYPE_CHECKING

from shared.errors import ConfigError, EarningClosedError, RedemptionClosedError
from shared.jobs.expiry import earning_open, redemption_open

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from shared.program.config import ProgramConfig


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
