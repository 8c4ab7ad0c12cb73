"""Typed errors the channel adapters raise; each has a stable code for API replies and DLQ reasons."""

from __future__ import annotations

from shared.errors import InvalidInputError


class AdapterError(InvalidInputError):
    """Raised when a channel payload cannot become a normalised event; nothing downstream ran."""

    code = "adapter_error"


class BadSignatureError(AdapterError):
    """Raised when a webhook's signature is missing or does not match the raw body."""

    code = "bad_signature"
    status = 401


class StaleWebhookError(AdapterError):
    """Raised when a webhook or event time falls outside the accepted window around `now`."""

    code = "stale_webhook"


class MalformedPayloadError(AdapterError):
    """Raised when a body is not the documented shape: not JSON, missing or mistyped fields."""

    code = "malformed_payload"


class AmountOutOfRangeError(AdapterError):
    """Raised when an amount or points value is negative, zero where it must not be, or absurd."""

    code = "amount_out_of_range"


class UnsupportedCurrencyError(AdapterError):
    """Raised when a currency is unknown or differs from the program's with no configured rate."""

    code = "unsupported_currency"


class UnknownSourceError(AdapterError):
    """Raised when a payload names a shop, merchant or partner this configuration is not for."""

    code = "unknown_source"


class ChannelDisabledError(AdapterError):
    """Raised when a shop, seller, feed, partner or app is configured but disabled by an operator."""

    code = "channel_disabled"
    status = 403


class UnsupportedEventError(AdapterError):
    """Raised when a topic or event type is one this adapter does not turn into events."""

    code = "unsupported_event"


class MissingIdentityError(AdapterError):
    """Raised when a payload carries nothing that identifies a member (no card, phone, e-mail, id)."""

    code = "missing_identity"
