"""Every error the domain raises, rooted at PointbridgeError.

Each carries a stable `code` (what API replies and DLQ messages use) and a sentence for people.
Handlers map these to HTTP problem details or DLQ reasons in one place each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime


class PointbridgeError(Exception):
    """Root of every error Pointbridge raises on purpose."""

    code = "pointbridge_error"
    status = 500
    # An internal error's detail names configuration: it is logged, never sent to the caller.
    internal = False

    def __init__(self, detail: str, **context: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class InvalidInputError(PointbridgeError):
    """Raised when a request or event fails validation before anything is read or written."""

    code = "invalid_input"
    status = 400


class NotFoundError(PointbridgeError):
    """Raised when something the caller named does not exist."""

    code = "not_found"
    status = 404


class UnknownProgramError(NotFoundError):
    """Raised when an operation names a program that has no live configuration."""

    code = "unknown_program"


class UnknownMemberError(NotFoundError):
    """Raised when a spend, hold or lookup names a member with no account in the program."""

    code = "unknown_member"


class UnknownEntryError(NotFoundError):
    """Raised when an operation refers to an entry (a hold, a pending earn) that does not exist."""

    code = "unknown_entry"


class UnknownCatalogueError(NotFoundError):
    """Raised when an operator asks for a program's catalogue and no version was ever published."""

    code = "unknown_catalogue"


class UnknownAgreementError(NotFoundError):
    """Raised when an exchange names an agreement that does not exist or is not active."""

    code = "unknown_agreement"


class LedgerError(PointbridgeError):
    """Raised when the ledger refuses an operation; nothing has been written."""

    code = "ledger_error"
    status = 409


class InsufficientPointsError(LedgerError):
    """Raised when a debit needs more unexpired available points than the member has."""

    code = "insufficient_points"
    status = 422


class IdempotencyConflictError(LedgerError):
    """Raised when a (source, external id) already posted a different operation."""

    code = "idempotency_conflict"


class IdempotencyInProgressError(PointbridgeError):
    """Raised when a request under an Idempotency-Key arrives while the first one under it still runs."""

    code = "idempotency_in_progress"
    status = 409


class IdentityTakenError(LedgerError):
    """Raised when an identity belongs to another registered member: support decides (a merge, with a reason)."""

    code = "identity_taken"


class AlreadySettledError(LedgerError):
    """Raised when a hold or pending earn was already captured, released, activated or voided."""

    code = "already_settled"


class AccountClosedError(LedgerError):
    """Raised when an operation would credit or debit an account a merge closed; names the survivor.

    A merge folds a provisional member into another and closes its account in the same transaction
    that moves its points, so nothing can land there afterwards: the caller re-targets the survivor.
    """

    code = "account_closed"

    def __init__(self, detail: str, survivor: str, **context: object) -> None:
        super().__init__(detail, survivor=survivor, **context)
        self.survivor = survivor


class RefundExceedsOrderError(InvalidInputError):
    """Raised when a refund would bring its order's refunds above the money the order earned on.

    Refused, never clamped: the sender's data is wrong (a duplicate under a new id, the wrong order),
    and guessing which part is right would hide it. Nothing is taken back for it.
    """

    code = "refund_exceeds_order"
    status = 422


class MemberOnHoldError(LedgerError):
    """Raised when a flagged member spends, gifts or exchanges while the program's flags hold that.

    Checked in the debit's own transaction (a flag raised an instant before the commit still holds
    it); a retry of a request that succeeded before the flag replays its entry.
    """

    code = "member_on_hold"


class NotReversibleError(LedgerError):
    """Raised when asked to reverse an entry whose kind has its own undo (void, release)."""

    code = "not_reversible"
    status = 422


class CaptureExceedsHoldError(LedgerError):
    """Raised when a capture asks for more points than its hold reserved."""

    code = "capture_exceeds_hold"
    status = 422


class TooManyLotsError(LedgerError):
    """Raised when one debit would touch more lots than one DynamoDB transaction can hold."""

    code = "too_many_lots"
    status = 422


class NotDueError(LedgerError):
    """Raised when asked to expire a lot before its effective expiry (e.g. kept alive by activity)."""

    code = "not_due"

    def __init__(self, detail: str, due: datetime, **context: object) -> None:
        super().__init__(detail, due=due.isoformat(), **context)
        self.due = due


class ContentionError(LedgerError):
    """Raised when an account stayed too busy to update after every retry; safe to retry later."""

    code = "contention"
    status = 503


class ConfigError(PointbridgeError):
    """Raised when a program configuration is invalid; the live version stays in force."""

    code = "invalid_config"
    status = 422


class ServiceMisconfiguredError(PointbridgeError):
    """Raised when the stack itself cannot serve a request as configured: a channel record written
    around its checks, a SOURCES document that does not validate, a function without its identity
    hash key. The caller did nothing wrong and learns nothing of the configuration (`internal`):
    the reply says only that the service is unavailable; the detail goes to the function's log."""

    code = "service_unavailable"
    status = 503
    internal = True


class ChannelUnavailableError(ServiceMisconfiguredError):
    """Raised when a channel's record cannot be used as stored; its events are refused (with a status
    the sender retries) until an operator corrects it."""

    code = "channel_unavailable"


class InvalidChannelError(PointbridgeError):
    """Raised when a channel record (a shop, seller, till feed, partner or app) is refused as written:
    `field` names what is wrong; the channel as it was, and every other channel, stay in force."""

    code = "invalid_channel"
    status = 422

    def __init__(self, detail: str, *, field: str, **context: object) -> None:
        super().__init__(detail, field=field, **context)
        self.field = field


# --- Raised by the HTTP API's use cases (catalogue, exchange, access) ---


class ForbiddenError(PointbridgeError):
    """Raised when an authenticated principal asks for something outside what its kind may touch."""

    code = "forbidden"
    status = 403


class PayloadTooLargeError(InvalidInputError):
    """Raised when a request body is larger than any valid request could be."""

    code = "payload_too_large"
    status = 413


class UnsupportedMediaTypeError(InvalidInputError):
    """Raised when a request body is not JSON by its Content-Type (the API reads JSON only)."""

    code = "unsupported_media_type"
    status = 415


class SecretNotReplayedError(PointbridgeError):
    """Raised when a request whose reply held a secret shown once (a minted key) is retried under its
    Idempotency-Key: it was done, and the secret was not stored to be shown again."""

    code = "secret_not_replayed"
    status = 409


class RewardUnavailableError(LedgerError):
    """Raised when a reward is unknown, outside its availability window, tier-only or below its minimum balance."""

    code = "reward_unavailable"
    status = 422


class OutOfStockError(LedgerError):
    """Raised when a reward's stock is used up; nothing is written."""

    code = "out_of_stock"


class LimitReachedError(LedgerError):
    """Raised when a per-member, per-period or daily limit would be passed; nothing is written."""

    code = "limit_reached"
    status = 422


class QuoteExpiredError(LedgerError):
    """Raised when an exchange quote is executed after its lifetime."""

    code = "quote_expired"
    status = 422


class ProgramClosedError(PointbridgeError):
    """Raised when a program's announced end (sunset) has closed what was asked; nothing is written."""

    code = "program_closed"
    status = 422


class EarningClosedError(ProgramClosedError):
    """Raised when points would be credited in a program after its earning ended (API and ingest alike)."""

    code = "earning_closed"


class RedemptionClosedError(ProgramClosedError):
    """Raised when points would be spent in a program after it ended."""

    code = "redemption_closed"


class JobError(PointbridgeError):
    """Raised when a scheduled job is asked to do something it must refuse; nothing is written."""

    code = "job_error"
    status = 422


class StaleRunError(JobError):
    """Raised when a job's "now" is earlier than what it has already processed."""

    code = "stale_run"
    status = 409


class FutureRunError(JobError):
    """Raised when a job's "now" is ahead of the wall clock and the caller did not say it simulates time."""

    code = "future_run"
    status = 422


class SunsetError(JobError):
    """Raised when a program's end is announced with a notice period that makes no sense."""

    code = "invalid_sunset"
