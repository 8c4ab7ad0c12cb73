"""`pointbridge import members FILE.csv --program P`: a brand's member list, through the admin API.

The file is CSV with a header naming some of: member, email, phone, card, name, language, tier
(one of email, phone or card at least). Rows go to `POST /admin/programs/{program}/members/imports`
in batches of 100, raw: the API hashes e-mails, phones and card numbers with the stack's identity
key before anything stores them, as every channel's are. Each row is `created`, `updated`,
`unchanged` (imported before: a re-run changes nothing) or refused with its line and reason; a
refused row never stops the others. The exit status is 1 when any row was refused.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pointbridge.plumbing import CliError, WorkFailed, progress, read_file

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator

COLUMNS = ("member", "email", "phone", "card", "name", "language", "tier")
IDENTITIES = ("email", "phone", "card")
BATCH = 100  # the route's most rows a request


@dataclass(frozen=True)
class Result:
    row: int
    outcome: str
    member: str = ""
    code: str = ""
    reason: str = ""


def read_rows(name: str, body: bytes) -> tuple[list[dict[str, Any]], list[Result]]:
    """The file's rows as the API takes them (with their line), and the rows refused here already."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CliError(f"{name} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip().lower() for cell in next(reader, [])]
    unknown = [column for column in header if column not in COLUMNS]
    if unknown:
        raise CliError(f"{name}: unknown columns {', '.join(map(repr, unknown))} (known: {', '.join(COLUMNS)})")
    if not set(header) & set(IDENTITIES):
        raise CliError(f"{name}: the header names no email, phone or card column")
    if len(set(header)) != len(header):
        raise CliError(f"{name}: a column is named twice in the header")
    rows: list[dict[str, Any]] = []
    refused: list[Result] = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            if len(cells) != len(header):
                said = f"{len(cells)} cells where the header has {len(header)}"
                refused.append(Result(line, "refused", code="invalid_input", reason=said))
                continue
            rows.append({"row": line, **{column: cell.strip() for column, cell in zip(header, cells, strict=True)}})
    except csv.Error as error:
        raise CliError(f"{name}, line {reader.line_num}: not CSV: {error}") from None
    return rows, refused


def batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


def send(
    call: Callable[[list[dict[str, Any]]], dict[str, Any]], rows: list[dict[str, Any]], label: str
) -> list[Result]:
    results: list[Result] = []
    with progress(label, len(rows), unit="rows") as advance:
        for batch in batches(rows):
            for told in call(batch)["results"]:
                results.append(Result(told["row"], told["outcome"], told["member"], told["code"], told["reason"]))
            advance(len(batch))
    return results


def report(name: str, results: list[Result], out: Callable[[str], None] = print) -> Counter[str]:
    """One line per refused row (and per note), then the counts."""
    counts: Counter[str] = Counter(result.outcome for result in results)
    for result in sorted(results, key=lambda r: r.row):
        if result.outcome == "refused":
            out(f"row {result.row}: refused ({result.code}): {result.reason}")
        elif result.reason:
            out(f"row {result.row}: {result.outcome} {result.member}: {result.reason}")
    told = ", ".join(f"{counts[outcome]} {outcome}" for outcome in ("created", "updated", "unchanged", "refused"))
    out(f"{name}: {len(results)} rows: {told}")
    return counts


def run(args: argparse.Namespace) -> int:
    from pointbridge.channels import ApiError
    from pointbridge.members import _api, _quoted

    if len(args.file) != 2:
        raise CliError("give one file: pointbridge import members FILE.csv --program PROGRAM")
    if not args.program:
        raise CliError("--program is required to import members")
    path = args.file[1]
    body = read_file(path)
    rows, refused = read_rows(path.name, body)
    if not rows and not refused:
        raise CliError(f"{path} has a header and no rows")
    api = _api(args)
    route = f"/admin/programs/{_quoted(args.program)}/members/imports"
    extra = {"phone_region": args.region} if args.region else {}
    try:
        results = send(lambda batch: api.call("POST", route, {"rows": batch, **extra}), rows, f"importing {path.name}")
    except ApiError as error:
        told = error.body if isinstance(error.body, dict) else {"detail": str(error.body)}
        raise WorkFailed(f"{told.get('detail') or 'refused'} ({error.status} {told.get('code', '')})") from None
    except OSError as error:
        raise WorkFailed(f"the API could not be reached: {error}") from None
    counts = report(path.name, results + refused)
    if counts["refused"]:
        raise WorkFailed(f"{counts['refused']} of {sum(counts.values())} rows refused (listed above)")
    return 0
