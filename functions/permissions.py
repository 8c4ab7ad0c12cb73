"""The permission table: for every route, which role may call it and on what. Written once.

The API checks it twice: before a route runs (`functions.api.context.admit_role`: a role the row
does not grant is refused before the body is looked at) and in the route (`context.authorize`,
with the program, member, partner or agreement the request names). The webhook receiver checks its
app-events row the same way. The OpenAPI document says "Who may call" from these rows, and
docs/api.md prints the table (`python -m functions.permissions`); unit tests keep both in step,
and the e2e authorization matrix calls every route with every kind of key and compares what it
observes with what this table says.

Roles: member, channel, partner (by kind), and the admin roles operator, support and auditor.
Scopes: `shared.access.permissions.Scope`.
"""

from __future__ import annotations

import sys
from types import MappingProxyType

from shared.access.permissions import ADMIN_ROLES, OPEN, Role, Rule, Scope

M, C, P = Role.MEMBER, Role.CHANNEL, Role.PARTNER
OPERATOR, SUPPORT, AUDITOR = Role.OPERATOR, Role.SUPPORT, Role.AUDITOR


def rule(**grants: Scope) -> Rule:
    return Rule(MappingProxyType({Role(name): scope for name, scope in grants.items()}))


def _admins(*roles: Role) -> dict[str, Scope]:
    return {role.value: Scope.ANY for role in roles}


READERS = _admins(*ADMIN_ROLES)  # operators, support and auditors read
# Reading a member: the member, a channel acting for members of its programs, and admins.
MEMBER_READ = rule(member=Scope.SELF, channel=Scope.PROGRAM, **READERS)
# Spending a member's points at a shop or till: the member, or a channel of the program (own references).
MEMBER_SPEND = rule(member=Scope.SELF, channel=Scope.PROGRAM)
# Points leaving the member to someone else: the member, or a channel that authenticates its members.
MEMBER_CONSENT = rule(member=Scope.SELF, channel=Scope.MEMBER_AUTH)
PROGRAM_READ = rule(member=Scope.PROGRAM, channel=Scope.PROGRAM, **READERS)
CONFIGURE = rule(**_admins(OPERATOR))
CONFIG_READ = rule(**READERS)

PERMISSIONS: MappingProxyType[tuple[str, str], Rule] = MappingProxyType(
    {
        ("GET", "/health"): OPEN,
        # Pages, not operations: the document and Swagger UI, the console (it asks for an admin key)
        ("GET", "/console"): OPEN,
        ("GET", "/console/assets/{asset}"): OPEN,
        ("GET", "/console/members"): OPEN,
        ("GET", "/console/operations"): OPEN,
        # Members
        ("GET", "/programs/{program}/members/{member}/balance"): MEMBER_READ,
        ("GET", "/programs/{program}/members/{member}/statement"): MEMBER_READ,
        ("GET", "/programs/{program}/members/{member}/tier"): MEMBER_READ,
        # Identities: linked only with proof (the channel saw the card, the partner its id, the member a code)
        ("POST", "/programs/{program}/members/{member}/identities"): rule(channel=Scope.PROGRAM, partner=Scope.PROGRAM),
        ("POST", "/programs/{program}/members/{member}/identities/verifications"): rule(
            member=Scope.SELF, channel=Scope.PROGRAM
        ),
        (
            "POST",
            "/programs/{program}/members/{member}/identities/verifications/{verification_id}/confirm",
        ): MEMBER_CONSENT,
        ("POST", "/admin/programs/{program}/members/{member}/merges"): rule(**_admins(SUPPORT)),
        # Support's desk: admins find and read members; support acts, each time with a reason
        # (Search is a POST, so the e-mail or phone is never in a URL; auditors only GET, so they open members by id.)
        ("POST", "/admin/programs/{program}/members/search"): rule(**_admins(OPERATOR, SUPPORT)),
        ("GET", "/admin/programs/{program}/members/{member}"): CONFIG_READ,
        ("POST", "/admin/programs/{program}/members/{member}/adjustments"): rule(**_admins(SUPPORT)),
        ("POST", "/admin/programs/{program}/members/{member}/reversals"): rule(**_admins(SUPPORT)),
        ("POST", "/admin/programs/{program}/members/{member}/tier"): rule(**_admins(SUPPORT)),
        # The brand's member list, imported by operators (raw identities in the body, hashed by the API)
        ("POST", "/admin/programs/{program}/members/imports"): CONFIGURE,
        # Redemption
        ("GET", "/programs/{program}/rewards"): PROGRAM_READ,
        ("POST", "/programs/{program}/members/{member}/redemptions"): MEMBER_SPEND,
        ("POST", "/programs/{program}/members/{member}/donations"): MEMBER_SPEND,
        # Holds: settled by whoever placed them (its own references), or by support with a reason
        ("POST", "/programs/{program}/members/{member}/holds"): MEMBER_SPEND,
        ("POST", "/programs/{program}/members/{member}/holds/{reference}/capture"): MEMBER_SPEND,
        ("POST", "/programs/{program}/members/{member}/holds/{reference}/release"): MEMBER_SPEND,
        ("POST", "/admin/programs/{program}/members/{member}/holds/settle"): rule(**_admins(SUPPORT)),
        # Gifts
        ("POST", "/programs/{program}/members/{member}/gifts"): MEMBER_CONSENT,
        # Draws
        ("POST", "/admin/programs/{program}/draws"): CONFIGURE,
        ("GET", "/programs/{program}/draws/{draw_id}"): PROGRAM_READ,
        ("POST", "/programs/{program}/members/{member}/draws/{draw_id}/entries"): MEMBER_SPEND,
        ("POST", "/admin/programs/{program}/draws/{draw_id}/reveal"): CONFIGURE,
        # Exchange: the member (in the program points leave) asks
        ("POST", "/agreements/{agreement_id}/quotes"): MEMBER_CONSENT,
        ("POST", "/quotes/{quote_id}/execute"): MEMBER_CONSENT,
        # Partners
        ("POST", "/partners/{partner}/programs/{program}/members/{member}/transfers-in"): rule(partner=Scope.LINKED),
        ("POST", "/programs/{program}/members/{member}/transfers-out"): MEMBER_CONSENT,
        (
            "POST",
            "/partners/{partner}/programs/{program}/members/{member}/transfers-out/{transfer_id}/confirm",
        ): rule(partner=Scope.NAMED),
        (
            "POST",
            "/partners/{partner}/programs/{program}/members/{member}/transfers-out/{transfer_id}/reject",
        ): rule(partner=Scope.NAMED),
        ("GET", "/partners/{partner}/programs/{program}/settlement"): rule(
            partner=Scope.NAMED, **_admins(OPERATOR, AUDITOR)
        ),
        # A partner's own files: an upload URL, the list, each file's report (operators and auditors read them too)
        ("POST", "/partners/{partner}/programs/{program}/files"): rule(partner=Scope.NAMED),
        ("GET", "/partners/{partner}/programs/{program}/files"): rule(
            partner=Scope.NAMED, **_admins(OPERATOR, AUDITOR)
        ),
        ("GET", "/partners/{partner}/programs/{program}/files/{file_id}"): rule(
            partner=Scope.NAMED, **_admins(OPERATOR, AUDITOR)
        ),
        # Channels (shops, sellers, tills, partners, the app) and their secrets, by operators
        ("GET", "/admin/channels"): CONFIG_READ,
        ("POST", "/admin/channels"): CONFIGURE,
        ("GET", "/admin/channels/{kind}/{channel}"): CONFIG_READ,
        ("PUT", "/admin/channels/{kind}/{channel}"): CONFIGURE,
        ("POST", "/admin/channels/{kind}/{channel}/disable"): CONFIGURE,
        ("POST", "/admin/channels/{kind}/{channel}/enable"): CONFIGURE,
        # Configuration, by operators
        ("PUT", "/admin/programs/{program}"): CONFIGURE,
        ("PUT", "/admin/programs/{program}/catalogue"): CONFIGURE,
        ("PUT", "/admin/agreements/{agreement_id}"): CONFIGURE,
        ("POST", "/admin/programs/{program}/dry-run"): CONFIGURE,
        ("POST", "/admin/programs/{program}/sunset"): CONFIGURE,
        ("GET", "/admin/programs/{program}"): CONFIG_READ,
        ("GET", "/admin/programs/{program}/versions"): CONFIG_READ,
        ("GET", "/admin/programs/{program}/catalogue"): CONFIG_READ,
        ("GET", "/admin/programs/{program}/catalogue/versions"): CONFIG_READ,
        ("GET", "/admin/agreements/{agreement_id}"): rule(partner=Scope.PARTY, **READERS),
        ("GET", "/admin/agreements/{agreement_id}/versions"): rule(partner=Scope.PARTY, **READERS),
        # API keys
        ("POST", "/admin/keys"): CONFIGURE,
        ("GET", "/admin/keys"): rule(**_admins(OPERATOR, AUDITOR)),
        ("POST", "/admin/keys/{key_id}/revoke"): CONFIGURE,
        ("POST", "/admin/keys/{key_id}/rotate"): CONFIGURE,
        # Flags and figures
        ("GET", "/admin/programs/{program}/flags"): CONFIG_READ,
        ("POST", "/admin/programs/{program}/flags/{member}/decision"): rule(**_admins(OPERATOR, SUPPORT)),
        ("GET", "/admin/programs/{program}/figures"): CONFIG_READ,
        ("GET", "/admin/programs"): CONFIG_READ,
        # Operations (issue 14): dead letters and every partner's and till's files; operators act, auditors read
        ("GET", "/admin/dead-letters"): rule(**_admins(OPERATOR, AUDITOR)),
        ("POST", "/admin/dead-letters/{queue}/{message_id}/redrive"): CONFIGURE,
        ("GET", "/admin/channels/{kind}/{channel}/files"): rule(**_admins(OPERATOR, AUDITOR)),
        ("GET", "/admin/channels/{kind}/{channel}/files/{file_id}"): rule(**_admins(OPERATOR, AUDITOR)),
        # The webhook receiver: the brand's app backend reports what its logged-in members did
        ("POST", "/app-events"): rule(channel=Scope.MEMBER_AUTH),
    }
)

# Not operations of the OpenAPI document: the webhook receiver's route, and the API's pages.
WEBHOOK_ROUTES = frozenset({("POST", "/app-events")})
# (The documentation, /docs and /openapi.json, is served by API Gateway from the docs bucket: no function.)
PAGES = frozenset(
    {
        ("GET", "/console"),
        ("GET", "/console/assets/{asset}"),
        ("GET", "/console/members"),
        ("GET", "/console/operations"),
    }
)
COLUMNS = (M, C, P, OPERATOR, SUPPORT, AUDITOR)


def who(rule_: Rule) -> str:
    """The rule in a sentence, for the OpenAPI document's "Who may call"."""
    if rule_.open:
        return "Anyone: no key."
    parts = [f"{role} ({scope.label})" if scope is not Scope.ANY else str(role) for role, scope in _ordered(rule_)]
    return "With a key of: " + ", ".join(parts) + ". Any other key is `403` `forbidden`."


def _ordered(rule_: Rule) -> list[tuple[Role, Scope]]:
    return [(role, rule_.grants[role]) for role in COLUMNS if role in rule_.grants]


def table() -> str:
    """The permission table as docs/api.md prints it (Markdown)."""
    header = "| method and path | " + " | ".join(str(role) for role in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for (method, path), rule_ in PERMISSIONS.items():
        if rule_.open:
            cells = ["no key"] * len(COLUMNS)
        else:
            cells = [rule_.grants[role].label if role in rule_.grants else "-" for role in COLUMNS]
        lines.append(f"| {method} `{path}` | " + " | ".join(cells) + " |")
    scopes = "\n".join(f"- **{scope.label}**: {scope.meaning}." for scope in Scope)
    return "\n".join(lines) + "\n\nScopes:\n\n" + scopes + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
