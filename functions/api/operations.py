"""What the OpenAPI document says about each operation beyond its types: area, who may call it, and
the problem codes its use cases can refuse with.

One row per route function. The codes every operation of a kind answers with are added by
`functions.api.openapi` (`forbidden` on every guarded route, `invalid_input` wherever there is a
parameter or body, `malformed_json` with a body, `idempotency_conflict` and `payload_too_large` on
every mutation); the rows name the rest, read off the use cases each route calls. The principals
are those the route checks today (`shared.access.keys`); a unit test matches each row's access to
the check in its route's source.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from functions.api.routes import (
    admin,
    channels,
    draws,
    exchange,
    figures,
    flags,
    gifts,
    holds,
    identities,
    members,
    partner_files,
    redemptions,
    service,
)

if TYPE_CHECKING:
    from collections.abc import Callable


class Tag(Enum):
    """The document's tags, in the order Swagger UI lists them, with their descriptions."""

    MEMBERS = ("members", "A member's points: balance by bucket, statement, tier and progress.")
    IDENTITIES = ("identities", "Linking an e-mail, phone, card or partner id to a member; provisional members merge.")
    REDEMPTIONS = ("redemptions", "The live catalogue; redeeming points or rewards (points + cash); donations.")
    HOLDS = ("holds", "Checkout holds: reserve points, then capture (all or part) or release; unsettled holds lapse.")
    GIFTS = ("gifts", "Points sent from one member to another in the same program.")
    DRAWS = ("draws", "Points draws with a committed seed: tickets bought with points, winners anyone can verify.")
    EXCHANGE = ("exchange", "Exchanging points between two programs under an agreement: a quote, then its execution.")
    PARTNERS = ("partners", "Partner brands: points transferred in and out, and their settlement statements.")
    ADMIN = ("admin", "Operators: versioned program, catalogue and agreement config, dry runs, API keys, sunset.")
    FLAGS = ("flags", "Members flagged by the velocity checks, and the operator's decision on their held points.")
    FIGURES = ("figures", "Program figures for operators, projected from the ledger's stream.")
    CHANNELS = (
        "channels",
        "Operators: the shops, Square sellers, till feeds, partners and apps that feed programs, each a record "
        "checked when written; secrets stored as secrets, never shown.",
    )
    SERVICE = ("service", "The service itself.")

    def __init__(self, label: str, description: str) -> None:
        self.label = label
        self.description = description


class Access(Enum):
    """Who may call an operation, as the route checks it (`shared.access.keys`), and that check."""

    OPEN = ("Anyone: no key.", "")
    ADMIN = ("An admin key only.", ".require_admin()")
    PROGRAM = (
        "Any key whose principal lists the program (a member, channel or partner key), or an admin key.",
        ".require_program(",
    )
    MEMBER = (
        "The member itself (a member key with this member id, listing the program); a channel or partner key "
        "listing the program; or an admin key.",
        ".require_member(",
    )
    STAFF = (
        "A channel or partner key listing the program, or an admin key. Never a member key: a member does not "
        "settle its own checkout.",
        ".require_staff(",
    )
    PARTNER = (
        "The partner named in the path, with its own key (a partner key with that id, listing the program); "
        "or an admin key.",
        "require_partner(",
    )
    AGREEMENT = (
        "An admin key; a partner key listing either program of the agreement; or, for the quote's member in "
        "the program points leave, that member's own key or a channel key listing that program.",
        "require_agreement(",
    )

    def __init__(self, who: str, check: str) -> None:
        self.who = who
        self.check = check


@dataclass(frozen=True)
class Operation:
    tag: Tag
    access: Access
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
    "too_many_lots",
    "idempotency_conflict",
    "contention",
)
# Capturing or releasing a hold the member (or a partner transfer) made.
SETTLE = ("unknown_entry", "account_closed", "already_settled", "contention")
REWARD = ("reward_unavailable", "out_of_stock", "limit_reached")

OPERATIONS: dict[Callable[..., object], Operation] = {
    service.health: Operation(Tag.SERVICE, Access.OPEN),
    members.balance: Operation(Tag.MEMBERS, Access.MEMBER, ACCOUNT),
    members.statement: Operation(Tag.MEMBERS, Access.MEMBER, ACCOUNT),
    members.tier: Operation(Tag.MEMBERS, Access.MEMBER, ACCOUNT),
    identities.link: Operation(
        Tag.IDENTITIES,
        Access.MEMBER,
        ("unknown_program", "invalid_identity", "cannot_merge_members", "too_many_lots", "contention"),
    ),
    redemptions.rewards: Operation(Tag.REDEMPTIONS, Access.PROGRAM, ("unknown_program",)),
    redemptions.redeem: Operation(Tag.REDEMPTIONS, Access.MEMBER, SPEND + REWARD),
    redemptions.donate: Operation(Tag.REDEMPTIONS, Access.MEMBER, SPEND + REWARD),
    holds.authorise: Operation(Tag.HOLDS, Access.MEMBER, SPEND),
    holds.capture: Operation(Tag.HOLDS, Access.STAFF, (*SETTLE, "capture_exceeds_hold")),
    holds.release: Operation(Tag.HOLDS, Access.MEMBER, SETTLE),
    gifts.gift: Operation(Tag.GIFTS, Access.MEMBER, (*SPEND, "limit_reached")),
    draws.create_draw: Operation(Tag.DRAWS, Access.ADMIN, ("unknown_program",)),
    draws.get_draw: Operation(Tag.DRAWS, Access.PROGRAM, ("unknown_draw",)),
    draws.enter_draw: Operation(Tag.DRAWS, Access.MEMBER, (*SPEND, "unknown_draw", "draw_closed", "limit_reached")),
    draws.reveal_draw: Operation(Tag.DRAWS, Access.ADMIN, ("unknown_draw", "draw_closed")),
    exchange.create_quote: Operation(
        Tag.EXCHANGE,
        Access.AGREEMENT,
        ("unknown_agreement", "redemption_closed", "earning_closed", "unknown_member"),
    ),
    exchange.execute_quote: Operation(
        Tag.EXCHANGE,
        Access.AGREEMENT,
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
            "too_many_lots",
            "contention",
        ),
    ),
    exchange.inbound: Operation(
        Tag.PARTNERS,
        Access.PARTNER,
        ("unknown_program", "earning_closed", "account_closed", "idempotency_conflict", "contention"),
    ),
    exchange.outbound: Operation(Tag.PARTNERS, Access.MEMBER, SPEND),
    exchange.confirm_outbound: Operation(Tag.PARTNERS, Access.PARTNER, SETTLE),
    exchange.reject_outbound: Operation(Tag.PARTNERS, Access.PARTNER, SETTLE),
    exchange.settlement: Operation(Tag.PARTNERS, Access.PARTNER, ("unknown_program",)),
    admin.publish_program: Operation(Tag.ADMIN, Access.ADMIN, ("invalid_config",)),
    admin.publish_catalogue: Operation(Tag.ADMIN, Access.ADMIN, ("unknown_program", "invalid_config")),
    admin.publish_agreement: Operation(Tag.ADMIN, Access.ADMIN, ("unknown_program", "invalid_config")),
    admin.dry_run: Operation(Tag.ADMIN, Access.ADMIN, ("invalid_config",)),
    admin.create_key: Operation(Tag.ADMIN, Access.ADMIN, ("secret_not_replayed",)),
    admin.announce_end: Operation(Tag.ADMIN, Access.ADMIN, ("unknown_program", "invalid_sunset", "invalid_config")),
    admin.live_program: Operation(Tag.ADMIN, Access.ADMIN, ("unknown_program",)),
    admin.program_versions: Operation(Tag.ADMIN, Access.ADMIN, ("unknown_program",)),
    admin.live_catalogue: Operation(Tag.ADMIN, Access.ADMIN, ("unknown_catalogue",)),
    admin.catalogue_versions: Operation(Tag.ADMIN, Access.ADMIN, ("unknown_catalogue",)),
    admin.live_agreement: Operation(Tag.ADMIN, Access.ADMIN, ("unknown_agreement",)),
    admin.agreement_versions: Operation(Tag.ADMIN, Access.ADMIN, ("unknown_agreement",)),
    flags.list_flags: Operation(Tag.FLAGS, Access.ADMIN, ("unknown_program",)),
    flags.decide: Operation(
        Tag.FLAGS, Access.ADMIN, ("unknown_program", "flag_not_found", "flag_already_decided", "contention")
    ),
    figures.figures: Operation(Tag.FIGURES, Access.ADMIN, ("unknown_program",)),
    figures.programs: Operation(Tag.FIGURES, Access.ADMIN),
}

# Channels and partners' files (issue 13).
CHANNEL_WRITE = ("invalid_channel", "unknown_channel", "channel_changed")
PARTNER_FILES = ("unknown_channel", "channel_disabled")
OPERATIONS |= {
    channels.list_channels: Operation(Tag.CHANNELS, Access.ADMIN),
    channels.create_channel: Operation(Tag.CHANNELS, Access.ADMIN, ("invalid_channel", "channel_exists")),
    channels.get_channel: Operation(Tag.CHANNELS, Access.ADMIN, ("unknown_channel",)),
    channels.change_channel: Operation(Tag.CHANNELS, Access.ADMIN, CHANNEL_WRITE),
    channels.disable_channel: Operation(Tag.CHANNELS, Access.ADMIN, CHANNEL_WRITE),
    channels.enable_channel: Operation(Tag.CHANNELS, Access.ADMIN, CHANNEL_WRITE),
    partner_files.upload_file: Operation(Tag.PARTNERS, Access.PARTNER, PARTNER_FILES),
    partner_files.list_files: Operation(Tag.PARTNERS, Access.PARTNER, PARTNER_FILES),
    partner_files.file_report: Operation(Tag.PARTNERS, Access.PARTNER, (*PARTNER_FILES, "unknown_file")),
}
