"""`pointbridge members | adjust | reverse | export`: support's desk from the command line, through the admin API.

    pointbridge members search demo --email ann@example.com      # or --phone, --card, --member
    pointbridge members show demo ann [--lang zh-CN] [--json]     # balance and the whole statement
    pointbridge adjust demo ann 50 --reason "late parcel"         # or -20: a deduction
    pointbridge reverse demo ann redemption:r-1 --reason "mug arrived broken"
    pointbridge export demo --member ann --member bob [--out entries.csv]

Everything goes through the API (support's routes), so the CLI refuses exactly what the API
refuses, in one line with its problem code. The API is the running sandbox's unless `--api-url`
(or POINTBRIDGE_API_URL) names another; the admin key comes from POINTBRIDGE_API_KEY or
`--key-file`. E-mails and phone numbers go in a POST body, never in a URL.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointbridge.channels import AdminApi, ApiError
from pointbridge.cli import live_sandbox, register

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

PAGE = 100  # the statement's largest page
# Spreadsheets run a cell starting with these as a formula (CSV injection): such cells get a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    "program",
    "member",
    "seq",
    "event_time",
    "recorded_at",
    "entry_id",
    "kind",
    "points",
    "available_change",
    "balance_after",
    "pending_after",
    "held_after",
    "rule_version",
    "source",
    "title",
    "detail",
    "reason",
)
NUMBERS = frozenset(
    {"seq", "points", "available_change", "balance_after", "pending_after", "held_after", "rule_version"}
)


class CliError(Exception):
    """One line for the user: what went wrong and what to do."""


def safe_cell(value: str) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a leading quote."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_row(program: str, member: str, entry: dict[str, Any]) -> list[str]:
    row: list[str] = []
    for column in COLUMNS:
        value = {"program": program, "member": member}.get(column, entry.get(column))
        if column in NUMBERS:
            # Numbers stay numbers (a deduction's "-20" sums); anything else here would be a bug upstream.
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise CliError(f"{column} of {entry.get('entry_id')} is not a whole number: {value!r}")
            row.append("" if value is None else str(value))
        else:
            row.append(safe_cell("" if value is None else str(value)))
    return row


def _api(args: argparse.Namespace) -> AdminApi:
    url = args.api_url or os.environ.get("POINTBRIDGE_API_URL")
    if not url:
        live = live_sandbox()
        if live is None:
            raise CliError("no API: pass --api-url (or set POINTBRIDGE_API_URL), or start `pointbridge sandbox`")
        url = live["api_url"]
    if args.key_file:
        try:
            key = Path(args.key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"cannot read --key-file {args.key_file}: {exc.strerror}") from None
    else:
        key = os.environ.get("POINTBRIDGE_API_KEY", "")
    if not key:
        raise CliError("no admin key: set POINTBRIDGE_API_KEY or pass --key-file")
    return AdminApi(str(url), key)


def _quoted(*parts: str) -> str:
    return "/".join(urllib.parse.quote(part, safe="") for part in parts)


def statement(api: AdminApi, program: str, member: str, lang: str = "en") -> Iterator[dict[str, Any]]:
    """Every entry of the member's statement, oldest first, page by page."""
    after = 0
    while True:
        query = {"after": str(after), "limit": str(PAGE), "lang": lang}
        page = api.call("GET", f"/programs/{_quoted(program, 'members', member)}/statement", query=query)
        yield from page["entries"]
        if page["next"] is None:
            return
        after = int(page["next"])


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-url", help="the API's base URL (default: POINTBRIDGE_API_URL, else the sandbox's)")
    parser.add_argument("--key-file", help="a file holding the admin key (default: POINTBRIDGE_API_KEY)")


# -- members search | show ----------------------------------------------------------------------
def _configure_members(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    actions = parser.add_subparsers(dest="action", required=True)
    search = actions.add_parser("search", help="find a member by e-mail, phone, card or id")
    search.add_argument("program")
    clue = search.add_mutually_exclusive_group(required=True)
    for name in ("email", "phone", "card", "member"):
        clue.add_argument(f"--{name}")
    search.add_argument("--region", help="a phone number's country without a country code (e.g. GB)")
    show = actions.add_parser("show", help="a member's balance and whole statement")
    show.add_argument("program")
    show.add_argument("member")
    show.add_argument("--lang", choices=("en", "zh-CN"), default="en")
    show.add_argument("--json", action="store_true", help="the statement's entries as the API gives them")


def _run_members(args: argparse.Namespace) -> int:
    api = _api(args)
    if args.action == "search":
        body = {name: getattr(args, name) for name in ("email", "phone", "card", "member") if getattr(args, name)}
        if args.region:
            body["region"] = args.region
        found = api.call("POST", f"/admin/programs/{_quoted(args.program)}/members/search", body)["members"]
        if not found:
            print(f"no member of {args.program} matches")
            return 1
        for member in found:
            merged = f", merged into {member['merged_into']}" if member.get("merged_into") else ""
            print(f"{member['member']}: {member['available']} points, tier {member['tier']}{merged}")
        return 0
    view = api.call(
        "GET", f"/admin/programs/{_quoted(args.program, 'members', args.member)}", query={"lang": args.lang}
    )
    entries = list(statement(api, args.program, args.member, args.lang))
    if args.json:
        print(json.dumps({"balance": view["balance"], "entries": entries}, indent=2, ensure_ascii=False))
        return 0
    balance = view["balance"]
    print(f"member {args.member} in {args.program}: tier {balance['tier']}")
    print(f"  available {balance['available']}, spendable {balance['spendable']}, pending {balance['pending']}, "
          f"held {balance['held']}, owed {view['debt']}")  # fmt: skip
    for soon in balance["expiring"]:
        print(f"  {soon['points']} points expire on {soon['date']}")
    print(f"{'date':<10}  {'points':>8}  {'balance':>8}  what happened")
    for entry in entries:
        after = "" if entry.get("balance_after") is None else str(entry["balance_after"])
        print(f"{entry['event_time'][:10]:<10}  {entry['points']:>+8}  {after:>8}  {entry['explanation']}")
    return 0


# -- adjust, reverse ---------------------------------------------------------------------------
def _configure_adjust(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("program")
    parser.add_argument("member")
    parser.add_argument("points", type=int, help="points to add (e.g. 50) or deduct (e.g. -20)")
    parser.add_argument("--reason", required=True, help="why (kept on the entry, shown on the statement)")
    parser.add_argument("--reference", help="your own id for it (a ticket): a retry finds the same entry")


def _configure_reverse(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("program")
    parser.add_argument("member")
    parser.add_argument("entry_id", help="the entry to reverse (its entry_id in `members show --json`)")
    parser.add_argument("--reason", required=True, help="why (kept on the reversal, shown on the statement)")


def _reason(text: str) -> str:
    if not text.strip():
        raise CliError("--reason is empty: every support action records why")
    return text.strip()


def _done(reply: dict[str, Any]) -> int:
    entry = reply["entry"]
    print(f"{entry['points']:+} points: {entry['explanation']}; available now {reply['available']}")
    return 0


def _run_adjust(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"points": args.points, "reason": _reason(args.reason)}
    if args.reference:
        body["reference"] = args.reference
    path = f"/admin/programs/{_quoted(args.program, 'members', args.member)}/adjustments"
    return _done(_api(args).call("POST", path, body))


def _run_reverse(args: argparse.Namespace) -> int:
    body = {"entry_id": args.entry_id, "reason": _reason(args.reason)}
    path = f"/admin/programs/{_quoted(args.program, 'members', args.member)}/reversals"
    return _done(_api(args).call("POST", path, body))


# -- export ------------------------------------------------------------------------------------
def _configure_export(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("program")
    parser.add_argument("--member", action="append", default=[], help="a member to export (repeat for more)")
    parser.add_argument("--members-file", help="a file with one member id a line")
    parser.add_argument("--lang", choices=("en", "zh-CN"), default="en", help="the language of title and detail")
    parser.add_argument("--out", help="write the CSV here (default: standard output)")


def export_csv(api: AdminApi, program: str, members: list[str], lang: str = "en") -> str:
    """The members' entries as CSV (UTF-8, a header row): each member's `points` sum to its balance."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for member in members:
        for entry in statement(api, program, member, lang):
            writer.writerow(csv_row(program, member, entry))
    return buffer.getvalue()


def _run_export(args: argparse.Namespace) -> int:
    members = list(args.member)
    if args.members_file:
        try:
            text = Path(args.members_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read --members-file {args.members_file}: {exc.strerror}") from None
        members += [line.strip() for line in text.splitlines() if line.strip()]
    if not members:
        raise CliError("name the members to export: --member ID (repeatable) or --members-file FILE")
    text = export_csv(_api(args), args.program, list(dict.fromkeys(members)), args.lang)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8", newline="")
        print(f"wrote {text.count(chr(10)) - 1} entries of {len(members)} member(s) to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _one_line(run: Any) -> Any:
    """Run a command; a refusal or a bad argument is one line on stderr (exit 1), never a traceback."""

    def guarded(args: argparse.Namespace) -> int:
        try:
            code: int = run(args)
        except CliError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except ApiError as error:
            body = error.body if isinstance(error.body, dict) else {"detail": str(error.body)}
            detail = body.get("detail") or body.get("message") or "refused"
            print(f"error: {detail} ({error.status} {body.get('code', '')})".rstrip(), file=sys.stderr)
            return 1
        except OSError as error:
            print(f"error: the API could not be reached: {error}", file=sys.stderr)
            return 1
        return code

    return guarded


HELP = {
    "members": "find a member, or show one's balance and statement (support)",
    "adjust": "add or deduct a member's points, with a reason (support)",
    "reverse": "reverse a redemption, credit or gift, with a reason (support)",
    "export": "members' entries as CSV for accounting, safe to open in a spreadsheet",
}
register("members", HELP["members"], _configure_members, _one_line(_run_members))
register("adjust", HELP["adjust"], _configure_adjust, _one_line(_run_adjust))
register("reverse", HELP["reverse"], _configure_reverse, _one_line(_run_reverse))
register("export", HELP["export"], _configure_export, _one_line(_run_export))
