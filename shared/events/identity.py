"""Keyed hashes of e-mail addresses, phone numbers and card numbers, so events and the ledger never
hold any of them.

HMAC-SHA256 with a program secret rather than a plain hash: the space of phone numbers is small
enough to enumerate, so an unkeyed hash would be a reversible one. Each kind has its own label
inside the MAC, so the same string hashed as an e-mail and as a phone never gives the same value.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from shared.errors import InvalidInputError

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit; longer input is not an address
_CARD = re.compile(r"^[A-Z0-9]{4,32}$")


class InvalidIdentityError(InvalidInputError):
    """Raised when an e-mail or phone number cannot be normalised into something hashable."""

    code = "invalid_identity"


def normalise_email(email: str) -> str:
    """Trim and lowercase; local parts are case-sensitive in theory but never in practice at shops."""
    value = email.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or not domain or "@" in domain or len(value) > MAX_EMAIL_LENGTH:
        raise InvalidIdentityError("not an e-mail address")
    if any(ch.isspace() for ch in value):
        raise InvalidIdentityError("an e-mail address has no whitespace inside")
    return value


def normalise_card(card: str) -> str:
    """A loyalty card number as every channel must spell it: spaces and hyphens dropped, upper case.

    Tills print `6012 3456 78`, apps send `6012-3456-78`, Square notes hold `6012345678`: one card,
    one identity, or a member splits in two.
    """
    value = re.sub(r"[\s-]", "", card).upper()
    if not _CARD.match(value):
        raise InvalidIdentityError("a card number is 4-32 letters or digits (spaces and hyphens ignored)")
    return value


def normalise_phone(phone: str, default_region: str | None = None) -> str:
    """E.164 form. National numbers need the till's region to resolve their trunk prefix."""
    # Imported here: its metadata tables cost every function that merely imports this module
    # (the API, webhooks, ingest) about 25 ms of cold start, and only phone identities need it.
    import phonenumbers

    try:
        parsed = phonenumbers.parse(phone.strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentityError("not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidIdentityError("not a valid phone number for its region")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _mac(key: bytes, label: bytes, value: str) -> str:
    if not key:
        raise ValueError("identity hashing needs a non-empty key")
    return hmac.new(key, label + b"\x00" + value.encode("utf-8"), hashlib.sha256).hexdigest()


def hash_email(key: bytes, email: str) -> str:
    return _mac(key, b"email", normalise_email(email))


def hash_phone(key: bytes, phone: str, default_region: str | None = None) -> str:
    return _mac(key, b"phone", normalise_phone(phone, default_region))


def hash_card(key: bytes, card: str) -> str:
    """A loyalty card number as every channel stores it (the identity's value, and the card the
    anomaly watch counts earns per hour by): its keyed hash, never the number. Card numbers are as
    enumerable as phone numbers, so the hash is keyed like theirs."""
    return _mac(key, b"card", normalise_card(card))


def hash_card_fingerprint(key: bytes, processor: str, fingerprint: str) -> str:
    """A payment processor's own card fingerprint (the same card in every location), keyed: the
    processor's id for a card is as telling as the number to whoever holds the processor's data."""
    return _mac(key, b"card", f"{processor}:{fingerprint.strip()}")


def is_card_hash(value: str) -> bool:
    """Whether an identity value is a keyed hash (64 hex digits) rather than a number written before
    card numbers were hashed (docs/security.md, "Card numbers written before")."""
    return len(value) == 64 and all(ch in "0123456789abcdef" for ch in value)
