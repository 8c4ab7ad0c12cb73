"""Every problem code the HTTP API answers with: its status, what it means to a client, an example.

The status and code come from the error class (`shared.errors` and the areas' own errors), so the
document cannot promise a status the code does not send. `functions.api.operations` says which
codes each operation can answer with; `functions.api.openapi` turns both into the document.
Errors the API never raises (the jobs', the webhooks' adapters') are not here; a unit test keeps
this list and the error classes in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from functions.api.routes.identities import ProofRequiredError
from functions.api.routes.keys import UnknownKeyError
from functions.problems import MALFORMED_JSON, NO_SUCH_ROUTE, TYPE_BASE
from integrations.errors import ChannelDisabledError
from shared import errors
from shared.access.keys import KeyRefusal
from shared.channels.files import UnknownFileError
from shared.channels.records import ChannelChangedError, ChannelExistsError, UnknownChannelError
from shared.events.identity import InvalidIdentityError
from shared.exchange.agreements import UnknownQuoteError
from shared.jobs.notify import NotifyError
from shared.members import verification
from shared.members.flags import FlagDecidedError, FlagNotFoundError
from shared.members.support import AlreadyReversedError, UnknownTierError
from shared.projections.dead_letters import RedriveFailedError, UnknownDeadLetterError
from shared.rewards.draws import DrawClosedError, UnknownDrawError


@dataclass(frozen=True)
class Refusal:
    code: str
    status: int
    meaning: str  # when a client gets it, and what to do
    detail: str  # an example `detail`, as the API writes it
    extra: dict[str, Any] = field(default_factory=dict)  # the example's context fields

    def example(self) -> dict[str, Any]:
        """An example reply body, exactly the shape `functions.problems.problem` writes."""
        return {
            "type": TYPE_BASE + self.code,
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }


def _of(error: type[errors.PointbridgeError], meaning: str, detail: str, **extra: Any) -> Refusal:
    return Refusal(error.code, error.status, meaning, detail, extra)


_SCHEMA_ERRORS = [{"loc": ["body", "points"], "type": "greater_than", "msg": "Input should be greater than 0"}]

# What API Gateway answers, from the authorizer's verdict, before the API runs (template.yaml's
# GatewayResponses write them: the same problem shape).
KEY_REFUSALS = (
    Refusal(
        KeyRefusal.MISSING.value,
        401,
        "No `x-api-key` header. Every operation but the health check needs a key.",
        "an API key is needed in the x-api-key header",
    ),
    Refusal(
        KeyRefusal.INVALID.value,
        401,
        "The key is not a key this API issued: malformed, unknown, or not matching its id.",
        "this API key is not valid",
    ),
    Refusal(
        KeyRefusal.EXPIRED.value,
        401,
        "The key expired. Ask an operator for a new one (or a rotation).",
        "this API key expired",
    ),
    Refusal(
        KeyRefusal.REVOKED.value, 401, "The key was revoked. Ask an operator for a new one.", "this API key was revoked"
    ),
)

REFUSALS: dict[str, Refusal] = {
    r.code: r
    for r in (
        # 400
        _of(
            errors.InvalidInputError,
            "The request is not valid. A parameter, header or body field fails the operation's schema "
            "(`errors` lists where and why, never the input), or the operation refuses a value the schema "
            "allows (a period over 93 days, a gift to oneself, an `Idempotency-Key` over 200 characters...). "
            "Nothing was written; fix the request.",
            "the request does not match the API's schema",
            errors=_SCHEMA_ERRORS,
        ),
        Refusal(
            MALFORMED_JSON,
            400,
            "The body is not JSON: not UTF-8 text, not JSON syntax (`errors` says where), nested deeper than 32 "
            "levels, or holding a number too long to read. Nothing was written.",
            "the body is not valid JSON",
            {"errors": [{"loc": ["body", "14"], "type": "json_invalid", "msg": "JSON decode error"}]},
        ),
        _of(
            InvalidIdentityError,
            "The identity cannot be read. An e-mail address or phone number that cannot be normalised, or a "
            "card number that is not 4-32 letters or digits; nothing was linked.",
            "not a phone number",
        ),
        # 403
        _of(
            errors.ForbiddenError,
            "The key's principal may not do this, by the permission table (docs/api.md): a role the operation "
            "does not grant, a program outside the key, another member's account, a partner acting for another "
            "partner or a member who did not link it. Decided before anything about the target is read, so it "
            "says nothing about it.",
            "a member may only see and move its own points",
        ),
        _of(
            ProofRequiredError,
            "The caller cannot vouch for this identity. A channel links cards it saw and its own customer ids, "
            "a partner its own member ids; e-mails and phones are proved by a one-time code "
            "(`POST .../identities/verifications`). Nothing was linked.",
            "e-mails and phones are proved by a one-time code (POST .../identities/verifications)",
        ),
        # 404
        Refusal(NO_SUCH_ROUTE, 404, "No operation has this method and path.", "no route matches this method and path"),
        _of(errors.UnknownProgramError, "The program has no live configuration.", "no program 'demo'", program="demo"),
        _of(
            errors.UnknownMemberError,
            "The member has no account in the program. It never earned there.",
            "member m1 has no account in demo",
            member="m1",
        ),
        _of(
            errors.UnknownEntryError,
            "No open hold (or outbound transfer) with that reference for this member. Never made, or lapsed "
            "and released; a settled one answers `already_settled`, or replays the same request.",
            "no open hold checkout:basket-1 for member m1",
        ),
        _of(
            errors.UnknownCatalogueError,
            "No catalogue version was ever published for the program.",
            "no catalogue 'demo' was ever published",
        ),
        _of(errors.UnknownAgreementError, "No active agreement with that id.", "no active agreement 'demo-air'"),
        _of(UnknownQuoteError, "No quote with that id.", "no quote '4b1f0c9e2a7d4e53a1c6f0e8d2b9a731'"),
        _of(UnknownDrawError, "No draw with that id in the program.", "no draw 'summer' in demo"),
        _of(FlagNotFoundError, "No flag on that member in the program.", "no flag for m1 in demo", member="m1"),
        _of(
            verification.UnknownVerificationError,
            "No verification with that id for this member (in this program).",
            "no verification 9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e for this member",
        ),
        _of(UnknownKeyError, "No key (or no active key, to rotate) with that id.", "no key 3f9a0c2e1b7d4a55"),
        # 409
        _of(
            errors.IdempotencyConflictError,
            "The key or reference was already used with a different request. The `Idempotency-Key`, or the "
            "caller's own reference in the body (`reference`, `transfer_id`), names another request; nothing "
            "was done. Send the new request under a new key or reference.",
            "Idempotency-Key 'k-1' was used with a different request",
            key="k-1",
        ),
        _of(
            errors.AlreadySettledError,
            "The hold (or outbound transfer) was already settled another way. Captured, released or lapsed.",
            "checkout:basket-1 was already settled by a release",
        ),
        _of(
            errors.AccountClosedError,
            "The member's account was merged into another. Their identities were linked, and `survivor` "
            "names the member to use. Nothing was written: send the same request for the survivor (no new "
            "reference or `Idempotency-Key` is needed).",
            "member p-3f2a's account in demo was merged into m1; use that member",
            survivor="m1",
            member="p-3f2a",
        ),
        _of(
            errors.MemberOnHoldError,
            "An open flag on the member holds spending, gifting and exchanging until an operator decides it "
            "(the program's `flags` settings say which). Nothing was spent; retry after the decision.",
            "member m1 is flagged in demo: spending is on hold until the flag is decided",
        ),
        _of(errors.OutOfStockError, "The reward is out of stock. Nothing was spent.", "reward 'mug' is out of stock"),
        _of(
            errors.SecretNotReplayedError,
            "The key was already minted under this `Idempotency-Key`. A minted key is shown once only; mint another.",
            "the request under Idempotency-Key 'k-1' was done; its secret is shown once (ask for another)",
            key="k-1",
        ),
        _of(
            errors.IdentityTakenError,
            "The identity belongs to another registered member. It does not move, and the reply does not say "
            "whose it is; when both accounts are the same person's, support merges them "
            "(`POST /admin/programs/{program}/members/{member}/merges`, with a reason).",
            "this identity belongs to another member; ask support to merge the accounts",
        ),
        _of(
            errors.IdempotencyInProgressError,
            "A request under this `Idempotency-Key` is still running. Nothing else ran; retry the same request "
            "in a moment to get its reply.",
            "the request under Idempotency-Key 'k-1' is still running; retry it in a moment",
            key="k-1",
        ),
        _of(
            FlagDecidedError,
            "The flag was already closed by the other decision.",
            "the flag on m1 was already closed (released); it cannot be voided now",
            member="m1",
            flag_status="released",
        ),
        # 413, 415
        _of(
            errors.PayloadTooLargeError,
            "The body is over 64 KiB. No valid request is that large; nothing was read.",
            "request body over 65536 bytes",
        ),
        _of(
            errors.UnsupportedMediaTypeError,
            "The body is not JSON by its `Content-Type`. The API reads `application/json` bodies only; nothing "
            "was read.",
            "the API reads JSON bodies only (Content-Type application/json), not multipart/form-data",
        ),
        # 422
        _of(
            errors.InsufficientPointsError,
            "The member has too few points. Fewer unexpired available points than the operation needs "
            "(`needed`, `available`); nothing was spent.",
            "needs 500 points, 120 available",
            needed=500,
            available=120,
        ),
        _of(
            errors.CaptureExceedsHoldError,
            "The capture is larger than the hold.",
            "capture of 90 exceeds the hold of 60",
            hold=60,
        ),
        _of(
            errors.TooManyLotsError,
            "The debit would touch too many lots. A lot is an earn with its own expiry date, and one "
            "transaction holds only so many; spend fewer points at once.",
            "this debit would touch 120 lots; at most 96 at once",
            lots=120,
        ),
        _of(
            errors.ConfigError,
            "The configuration is refused. It failed validation (`reasons` says why), or its version is not "
            "newer than the live one; the live version stays in force.",
            "invalid program config: tiers: the lowest tier 'member' must have threshold 0",
            reasons="tiers: the lowest tier 'member' must have threshold 0",
        ),
        _of(
            errors.RewardUnavailableError,
            "The reward cannot be redeemed. Unknown, outside its availability window, for other tiers, or it "
            "needs a larger balance.",
            "reward 'lounge' is for gold members",
        ),
        _of(
            errors.LimitReachedError,
            "A limit would be passed. A per-member, per-period, gift, draw-ticket or exchange daily limit; "
            "nothing was written.",
            "gifts are limited to 5000 points a day",
        ),
        _of(
            errors.QuoteExpiredError,
            "The quote expired. Ask for a new one.",
            "quote 4b1f0c9e2a7d4e53a1c6f0e8d2b9a731 expired at 2026-12-01T10:05:00+00:00",
        ),
        _of(
            DrawClosedError,
            "The draw is closed, or not yet. Tickets after it closed, or a reveal before it closes.",
            "draw summer closed at 2026-12-01T00:00:00+00:00",
        ),
        _of(
            errors.RedemptionClosedError,
            "The program has ended. Its points can no longer be spent (`ended_at`); a retry of a request "
            "posted before the end still replays.",
            "demo ended at 2027-06-30T00:00:00+00:00: its points can no longer be spent",
            ended_at="2027-06-30T00:00:00+00:00",
        ),
        _of(
            errors.EarningClosedError,
            "The program stopped crediting points. Since `earning_ended_at`; a retry of a request posted "
            "before then still replays.",
            "demo stopped crediting points at 2027-03-31T00:00:00+00:00",
            earning_ended_at="2027-03-31T00:00:00+00:00",
        ),
        _of(
            errors.SunsetError,
            "The program's end cannot be announced so. Under 30 days' notice, a negative redemption period, "
            "or a second announcement.",
            "members need at least 30 days' notice, not 7",
        ),
        _of(
            verification.CodeExpiredError,
            "The code expired (10 minutes) or was used already. Ask for a new one.",
            "the code expired or was used; ask for a new one",
        ),
        _of(
            verification.WrongCodeError,
            "The code is not the one sent. `attempts_left` more guesses are allowed; nothing was linked.",
            "that is not the code; 4 attempt(s) left",
            attempts_left=4,
        ),
        _of(
            verification.TooManyAttemptsError,
            "The code's 5 attempts are spent. Ask for a new code; nothing was linked.",
            "no attempts left for this code; ask for a new one",
        ),
        # 429
        _of(
            verification.TooManyCodesError,
            "Too many codes asked for: 5 an hour per member, and 5 an hour per e-mail address or phone whoever "
            "asks. Nothing was sent; ask again after `retry_after` seconds (also the `Retry-After` header).",
            "5 codes an hour for this member: ask again in 1740 seconds",
            retry_after=1740,
        ),
        # 502, 503
        _of(
            NotifyError,
            "The code could not be sent: the notifications bus refused the event. Nothing can be confirmed "
            "with it; ask for a code again.",
            "EventBridge refused 9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e: ThrottlingException",
        ),
        _of(
            errors.ContentionError,
            "The account stayed busy. Concurrent updates kept it changing and no points moved; retry the same "
            "request (same reference or `Idempotency-Key`) after a moment.",
            "account m1 stayed busy; retry later",
            member="m1",
        ),
    )
} | {r.code: r for r in KEY_REFUSALS}

# Channels and partners' files (issue 13).
REFUSALS |= {
    r.code: r
    for r in (
        _of(
            errors.InvalidChannelError,
            "The channel record is refused as written. `field` names what is wrong (`id`, `program`, `secret`, "
            "`settings.<path>`, `kind`, `status`); nothing was written, and the channel as it was and every other "
            "channel keep working.",
            "the signature_key must be 16-256 characters of base64 or base64url",
            field="secret",
        ),
        _of(
            ChannelExistsError,
            "A channel of that kind and id exists already (a shop's domain is compared in any case). Change it, "
            "or enable it if it is disabled.",
            "a shopify channel 'acme.myshopify.com' exists already: change it, or enable it if it is disabled",
            field="id",
        ),
        _of(
            ChannelChangedError,
            "The channel changed since it was read (`version` is the current one). Read it again and make the "
            "change on that version.",
            "the shopify channel 'acme.myshopify.com' is at version 3, not 2: read it again and make the change "
            "on that",
            version=3,
        ),
        _of(UnknownChannelError, "No channel of that kind and id.", "no partner channel 'skyair'"),
        _of(
            ChannelDisabledError,
            "The channel is disabled by an operator: its events and files are refused until it is enabled.",
            "partner skyair's channel is disabled",
            source="skyair",
        ),
        _of(UnknownFileError, "No file with that id from this partner.", "no file '20261207T101500Z-1a2b3c4d'"),
        # Support's desk
        _of(
            errors.NotReversibleError,
            "The entry is not reversed: it is settled another way (pending points are voided, holds released, "
            "expiries and refunds adjusted), or it is final (merges, exchanges, reversals). Adjust the points "
            "instead, with a reason.",
            "expired points are not reversed: adjust the points instead, with a reason",
        ),
        _of(
            AlreadyReversedError,
            "The entry was reversed before; a reversal is done once. The statement shows it.",
            "redemption:r-1 was reversed before",
        ),
        _of(UnknownTierError, "The program has no such tier (`detail` lists them).", "demo has no tier 'platinum'"),
        _of(
            UnknownDeadLetterError,
            "No message with that id in the dead-letter queue: already redriven, or never there. List the queue again.",
            "no message 5fd0c3b2-9a1e-4c55-8d1f-2b7c0e6a9f10 in the watch dead-letter queue",
            queue="watch",
        ),
        _of(
            RedriveFailedError,
            "The redriven message failed again. It stays in its dead-letter queue, with the new error as its reason "
            "(each entry that failed and its error, in `detail`); what replayed before the failure counts once and "
            "replays harmlessly next time.",
            "the redrive failed again and the message stays with the new reason: E#ghost#01J...: UnknownProgramError: "
            "no program 'ghost'",
            message_id="5fd0c3b2-9a1e-4c55-8d1f-2b7c0e6a9f10",
        ),
    )
}
