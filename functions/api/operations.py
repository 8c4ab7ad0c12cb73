"""What the OpenAPI document says about each operation beyond its types: its area and the problem
codes its use cases can refuse with. Who may call it is the permission table's (`functions.permissions`).

One row per route function. The codes every operation of a kind answers with are added by
`functions.api.openapi` (`forbidden` on every guarded route, `invalid_input` wherever there is a
parameter or body, `malformed_json` and `unsupported_media_type` with a body, `idempotency_conflict`,
`idempotency_in_progress` and `payload_too_large` on every mutation); the rows name the rest, read off
the use cases each route calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from functions.api.routes import (
    admin,
    channels,
    dead_letters,
    draws,
    exchange,
    figures,
    flags,
    gifts,
    holds,
    identities,
    keys,
    member_imports,
    members,
    operations_desk,
    partner_files,
    redemptions,
    service,
    support,
)

if TYPE_CHECKING:
    from collections.abc import Callable


class Tag(Enum):
    """The document's tags, in the order Swagger UI lists them, with their descriptions."""

    MEMBERS = ("members", "A member's points: balance by bucket, statement, tier and progress.")
    IDENTITIES = (
        "identities",
        "Linking an e-mail, phone, card, partner id or shop customer id to a member, with proof; provisional "
        "members merge, registered ones only by support.",
    )
    REDEMPTIONS = ("redemptions", "The live catalogue; redeeming points or rewards (points + cash); donations.")
    HOLDS = ("holds", "Checkout holds: reserve points, then capture (all or part) or release; unsettled holds lapse.")
    GIFTS = ("gifts", "Points sent from one member to another in the same program.")
    DRAWS = ("draws", "Points draws with a committed seed: tickets bought with points, winners anyone can verify.")
    EXCHANGE = ("exchange", "Exchanging points between two programs under an agreement: a quote, then its execution.")
    PARTNERS = ("partners", "Partner brands: points transferred in and out, and their settlement statements.")
    ADMIN = ("admin", "Operators: versioned program, catalogue and agreement config, dry runs, sunset.")
    KEYS = ("keys", "API keys: minted, listed, revoked and rotated by operators; shown once, stored hashed.")
    FLAGS = ("flags", "Members flagged by the velocity checks, and the operator's decision on their held points.")
    FIGURES = ("figures", "Program figures for operators, projected from the ledger's stream.")
    CHANNELS = (
        "channels",
        "Operators: the shops, Square sellers, till feeds, partners and apps that feed programs, each a record "
        "checked when written; secrets stored as secrets, never shown.",
    )
    SUPPORT = (
        "support",
        "Support's desk: find a member by e-mail, phone, card or id; the member's page; adjustments, reversals and "
        "tier overrides, each with a reason and the agent on record.",
    )
    OPERATIONS = (
        "operations",
        "Operators: the dead-letter queues with each message's reason and a redrive, and every partner's and "
        "till's files.",
    )
    SERVICE = ("service", "The service itself.")

    def __init__(self, label: str, description: str) -> None:
        self.label = label
        self.description = description


@dataclass(frozen=True)
class Operation:
    tag: Tag
    refusals: tuple[str, ...] = ()  # problem codes beyond those every operation of its kind gets


# Codes shared by routes that call the same use case.
ACCOUNT = ("unknown_program", "unknown_member")
# A debit of the member's points (ledger spend or hold): the program must still allow spending.
SPEND = (
    "unknown_program",
    "redemption_closed",
    "unknown_member",
    "account_closed",
    "insufficient_points",
    "member_on_hold",
    "too_many_lots",
    "idempotency_conflict",
    "contention",
)
# Capturing or releasing a hold the member (or a partner transfer) made.
SETTLE = ("unknown_entry", "account_closed", "already_settled", "contention")
REWARD = ("reward_unavailable", "out_of_stock", "limit_reached")
# Claiming or merging an identity (`shared.earning.linking`): it may move a provisional member's points.
LINK = ("unknown_program", "invalid_identity", "invalid_input", "identity_taken", "too_many_lots", "contention")

OPERATIONS: dict[Callable[..., object], Operation] = {
    service.health: Operation(Tag.SERVICE),
    members.balance: Operation(Tag.MEMBERS, ACCOUNT),
    members.statement: Operation(Tag.MEMBERS, ACCOUNT),
    members.tier: Operation(Tag.MEMBERS, ACCOUNT),
    identities.link: Operation(Tag.IDENTITIES, (*LINK, "proof_required")),
    identities.request_code: Operation(
        Tag.IDENTITIES, ("unknown_program", "invalid_identity", "too_many_codes", "notify_failed")
    ),
    identities.confirm_code: Operation(
        Tag.IDENTITIES, ("unknown_verification", "code_expired", "wrong_code", "too_many_attempts", *LINK)
    ),
    identities.merge_members: Operation(Tag.IDENTITIES, (*LINK, "unknown_member")),
    redemptions.rewards: Operation(Tag.REDEMPTIONS, ("unknown_program",)),
    redemptions.redeem: Operation(Tag.REDEMPTIONS, SPEND + REWARD),
    redemptions.donate: Operation(Tag.REDEMPTIONS, SPEND + REWARD),
    holds.authorise: Operation(Tag.HOLDS, SPEND),
    holds.capture: Operation(Tag.HOLDS, (*SETTLE, "capture_exceeds_hold")),
    holds.release: Operation(Tag.HOLDS, SETTLE),
    holds.settle_hold: Operation(Tag.HOLDS, (*SETTLE, "capture_exceeds_hold")),
    gifts.gift: Operation(Tag.GIFTS, (*SPEND, "limit_reached")),
    draws.create_draw: Operation(Tag.DRAWS, ("unknown_program",)),
    draws.get_draw: Operation(Tag.DRAWS, ("unknown_draw",)),
    draws.enter_draw: Operation(Tag.DRAWS, (*SPEND, "unknown_draw", "draw_closed", "limit_reached")),
    draws.reveal_draw: Operation(Tag.DRAWS, ("unknown_draw", "draw_closed")),
    exchange.create_quote: Operation(
        Tag.EXCHANGE, ("unknown_agreement", "redemption_closed", "earning_closed", "unknown_member")
    ),
    exchange.execute_quote: Operation(
        Tag.EXCHANGE,
        (
            "unknown_quote",
            "unknown_agreement",
            "redemption_closed",
            "earning_closed",
            "quote_expired",
            "limit_reached",
            "unknown_member",
            "account_closed",
            "insufficient_points",
            "member_on_hold",
            "too_many_lots",
            "contention",
        ),
    ),
    exchange.inbound: Operation(
        Tag.PARTNERS, ("unknown_program", "earning_closed", "account_closed", "idempotency_conflict", "contention")
    ),
    exchange.outbound: Operation(Tag.PARTNERS, SPEND),
    exchange.confirm_outbound: Operation(Tag.PARTNERS, (*SETTLE, "capture_exceeds_hold")),
    exchange.reject_outbound: Operation(Tag.PARTNERS, SETTLE),
    exchange.settlement: Operation(Tag.PARTNERS, ("unknown_program",)),
    admin.publish_program: Operation(Tag.ADMIN, ("invalid_config",)),
    admin.publish_catalogue: Operation(Tag.ADMIN, ("unknown_program", "invalid_config")),
    admin.publish_agreement: Operation(Tag.ADMIN, ("unknown_program", "invalid_config")),
    admin.dry_run: Operation(Tag.ADMIN, ("invalid_config",)),
    admin.announce_end: Operation(Tag.ADMIN, ("unknown_program", "invalid_sunset", "invalid_config")),
    admin.live_program: Operation(Tag.ADMIN, ("unknown_program",)),
    admin.program_versions: Operation(Tag.ADMIN, ("unknown_program",)),
    admin.live_catalogue: Operation(Tag.ADMIN, ("unknown_catalogue",)),
    admin.catalogue_versions: Operation(Tag.ADMIN, ("unknown_catalogue",)),
    admin.live_agreement: Operation(Tag.ADMIN, ("unknown_agreement",)),
    admin.agreement_versions: Operation(Tag.ADMIN, ("unknown_agreement",)),
    keys.create_key: Operation(Tag.KEYS, ("secret_not_replayed",)),
    keys.list_keys: Operation(Tag.KEYS),
    keys.revoke_key: Operation(Tag.KEYS, ("unknown_key",)),
    keys.rotate_key: Operation(Tag.KEYS, ("unknown_key", "secret_not_replayed")),
    flags.list_flags: Operation(Tag.FLAGS, ("unknown_program",)),
    flags.decide: Operation(Tag.FLAGS, ("unknown_program", "flag_not_found", "flag_already_decided", "contention")),
    figures.figures: Operation(Tag.FIGURES, ("unknown_program",)),
    figures.programs: Operation(Tag.FIGURES),
}

# Channels and partners' files (issue 13).
CHANNEL_WRITE = ("invalid_channel", "unknown_channel", "channel_changed")
PARTNER_FILES = ("unknown_channel", "channel_disabled")
OPERATIONS |= {
    channels.list_channels: Operation(Tag.CHANNELS),
    channels.create_channel: Operation(Tag.CHANNELS, ("invalid_channel", "channel_exists")),
    channels.get_channel: Operation(Tag.CHANNELS, ("unknown_channel",)),
    channels.change_channel: Operation(Tag.CHANNELS, CHANNEL_WRITE),
    channels.disable_channel: Operation(Tag.CHANNELS, CHANNEL_WRITE),
    channels.enable_channel: Operation(Tag.CHANNELS, CHANNEL_WRITE),
    partner_files.upload_file: Operation(Tag.PARTNERS, PARTNER_FILES),
    partner_files.list_files: Operation(Tag.PARTNERS, PARTNER_FILES),
    partner_files.file_report: Operation(Tag.PARTNERS, (*PARTNER_FILES, "unknown_file")),
}

# Support's desk (issue 14).
OPERATIONS |= {
    support.search: Operation(Tag.SUPPORT, ("unknown_program", "invalid_identity")),
    support.member_view: Operation(Tag.SUPPORT, ACCOUNT),
    support.adjust: Operation(
        Tag.SUPPORT,
        (
            *ACCOUNT,
            "insufficient_points",
            "account_closed",
            "member_on_hold",
            "idempotency_conflict",
            "too_many_lots",
            "earning_closed",
            "redemption_closed",
            "contention",
        ),
    ),
    support.reverse: Operation(
        Tag.SUPPORT,
        (
            *ACCOUNT,
            "unknown_entry",
            "not_reversible",
            "already_reversed",
            "insufficient_points",
            "account_closed",
            "member_on_hold",
            "idempotency_conflict",
            "too_many_lots",
            "contention",
        ),
    ),
    support.override_tier: Operation(Tag.SUPPORT, (*ACCOUNT, "unknown_tier", "contention")),
    # Each row's refusal is in the reply (200); the request's own are these.
    member_imports.import_members: Operation(Tag.SUPPORT, ("unknown_program",)),
}

# The operations page (issue 14): dead letters and every partner's and till's files.
OPERATIONS |= {
    dead_letters.list_dead_letters: Operation(Tag.OPERATIONS),
    dead_letters.redrive: Operation(Tag.OPERATIONS, ("unknown_dead_letter", "redrive_failed")),
    operations_desk.channel_files: Operation(Tag.OPERATIONS, ("unknown_channel",)),
    operations_desk.channel_file_report: Operation(Tag.OPERATIONS, ("unknown_channel", "unknown_file")),
}
