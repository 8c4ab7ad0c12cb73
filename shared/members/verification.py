"""Proof that a member holds an e-mail address or phone number: a one-time code.

The code goes out through the outbound events (a `VerificationCodeIssued` event on the
notifications bus, for whatever delivers e-mails and texts); the table keeps only a keyed hash of
it, next to the identity's keyed hash, an expiry and the attempts left. The member confirms it;
every guess spends an attempt first (a conditional decrement), so no amount of concurrency gets
more than `MAX_ATTEMPTS` guesses. A confirmed verification is used once.

Asking for codes is limited too: `CODES_PER_HOUR` per member and as many per identity (whoever
asks), counted in clock hours by an atomic ADD before anything is sent, so neither a member nor
many members together can flood one address or phone, or buy fresh guesses without end. The
counters carry `expires` (the table's TTL) and vanish after their hour.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import LedgerError, NotFoundError, PointbridgeError
from shared.events.model import Identity, IdentityKind

if TYPE_CHECKING:
    from datetime import datetime

CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 5
CODES_PER_HOUR = 5
EVENT = "VerificationCodeIssued"
VERIFIABLE = frozenset({IdentityKind.EMAIL, IdentityKind.PHONE})


class UnknownVerificationError(NotFoundError):
    """Raised when a verification id names no verification of this member."""

    code = "unknown_verification"


class CodeExpiredError(LedgerError):
    """Raised when a code is confirmed after its lifetime, or after it was used."""

    code = "code_expired"
    status = 422


class WrongCodeError(LedgerError):
    """Raised when a confirmed code is not the one sent; says how many attempts are left."""

    code = "wrong_code"
    status = 422


class TooManyAttemptsError(LedgerError):
    """Raised when a verification's attempts are spent: ask for a new code."""

    code = "too_many_attempts"
    status = 422


class TooManyCodesError(PointbridgeError):
    """Raised when a member, or an identity, asked for `CODES_PER_HOUR` codes this hour already:
    `retry_after` says in how many seconds the next hour starts."""

    code = "too_many_codes"
    status = 429


@dataclass(frozen=True)
class Verification:
    verification_id: str
    program: str
    member: str
    kind: IdentityKind
    identity_hash: str  # the identity's keyed hash, as every channel spells it
    code_hash: str
    expires_at: datetime
    attempts_left: int
    used: bool = False

    @property
    def identity(self) -> Identity:
        return Identity(kind=self.kind, value=self.identity_hash)


class VerificationItems(Protocol):
    def put_verification(self, verification: Verification) -> None: ...

    def get_verification(self, member: str, verification_id: str) -> Verification | None: ...

    def spend_attempt(self, member: str, verification_id: str) -> int | None:
        """Take one attempt; the attempts left after it, or None when none was left (or it was used)."""
        ...

    def use_verification(self, member: str, verification_id: str) -> bool:
        """Mark it used; False when it was used already."""
        ...

    def count_code_request(self, counted: str, hour: str, expires: int) -> int:
        """Add one to the codes `counted` asked for in `hour`; the count after it."""
        ...


class Publish(Protocol):
    def __call__(self, detail_type: str, event_id: str, detail: dict[str, Any]) -> None: ...


def code_hash(secret: bytes, verification_id: str, code: str) -> str:
    return hmac.new(secret, f"{verification_id}:{code}".encode(), hashlib.sha256).hexdigest()


def issue(
    items: VerificationItems,
    publish: Publish,
    secret: bytes,
    *,
    program: str,
    member: str,
    identity: Identity,
    destination: str,
    now: datetime,
) -> Verification:
    """Send a code for `identity` (whose raw form, `destination`, only the outbound event carries)."""
    if identity.kind not in VERIFIABLE:
        raise ValueError(f"a {identity.kind} is not proved by a code")
    _within_limits(items, member, identity, now)
    verification_id = secrets.token_hex(16)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    verification = Verification(
        verification_id=verification_id,
        program=program,
        member=member,
        kind=identity.kind,
        identity_hash=identity.value,
        code_hash=code_hash(secret, verification_id, code),
        expires_at=now + CODE_LIFETIME,
        attempts_left=MAX_ATTEMPTS,
    )
    items.put_verification(verification)
    publish(
        EVENT,
        verification_id,
        {
            "program": program,
            "member": member,
            "channel": identity.kind.value,
            "to": destination,
            "code": code,
            "expires_at": verification.expires_at.isoformat(),
        },
    )
    return verification


def _within_limits(items: VerificationItems, member: str, identity: Identity, now: datetime) -> None:
    """Count this request for the member, then for the identity; TooManyCodesError past either limit.

    The member's count comes first, so a member over his limit spends none of the identity's."""
    hour_start = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    next_hour = hour_start + timedelta(hours=1)
    hour = hour_start.strftime("%Y-%m-%dT%H")
    # Kept an hour past its own, so a reader never sees a counter that TTL's lag has not yet removed.
    expires = int((next_hour + timedelta(hours=1)).timestamp())
    retry_after = max(1, math.ceil((next_hour - now).total_seconds()))
    for counted, whose in ((f"M#{member}", "this member"), (f"ID#{identity.key}", "this e-mail address or phone")):
        if items.count_code_request(counted, hour, expires) > CODES_PER_HOUR:
            raise TooManyCodesError(
                f"{CODES_PER_HOUR} codes an hour for {whose}: ask again in {retry_after} seconds",
                retry_after=retry_after,
            )


def confirm(
    items: VerificationItems, secret: bytes, *, member: str, verification_id: str, code: str, now: datetime
) -> Verification:
    """The verification a correct code proves, used up; a typed refusal otherwise."""
    found = items.get_verification(member, verification_id)
    if found is None:
        raise UnknownVerificationError(f"no verification {verification_id} for this member")
    if found.used or found.expires_at <= now:
        raise CodeExpiredError("the code expired or was used; ask for a new one")
    left = items.spend_attempt(member, verification_id)
    if left is None:
        raise TooManyAttemptsError("no attempts left for this code; ask for a new one")
    if not hmac.compare_digest(found.code_hash, code_hash(secret, verification_id, code)):
        raise WrongCodeError(f"that is not the code; {left} attempt(s) left", attempts_left=left)
    if not items.use_verification(member, verification_id):
        raise CodeExpiredError("the code was used already")
    return found
