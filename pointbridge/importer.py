"""`pointbridge import`: a partner's file or a till's CSV into the sandbox or a deployed stack, through
the file drop path every feed uses (docs/channels.md, "Partner feeds" and "Till files").

The file goes to the files bucket under its feed's folder (`partners/<partner>/` or `till/<till>/`);
the bucket's notification starts the file splitter, which reads it as it reads any dropped file and
writes its report (`reports/<key>.json`). With `--wait` (the default) the command waits for the
report and prints it: rows accepted, rows refused with line and reason. Each row posts once,
whatever the retries; importing the same file again reads it again, and its rows post nothing
twice (their external ids are the ledger's references).

`pointbridge import members FILE.csv --program P` imports a brand's member list instead, through
the admin API (`pointbridge.member_import`).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointbridge.cli import register
from pointbridge.plumbing import CliError, WorkFailed, add_stack_option, find_target, progress, read_file

if TYPE_CHECKING:
    import argparse

    from pointbridge.plumbing import Target

# The names the file splitter reads (shared.channels.files.FILE_NAME): CSV or JSON lines.
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(csv|jsonl|ndjson)$")
FEED_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
PART_SIZE = 1024 * 1024


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="a feed file: CSV, or JSON lines (.jsonl, .ndjson) for partners; or `members FILE.csv`, a member list",
    )
    feed = parser.add_mutually_exclusive_group()
    feed.add_argument("--partner", help="a partner's feed (its channel id): partners/<partner>/")
    feed.add_argument("--till", help="a till feed (its channel id, e.g. default): till/<till>/")
    parser.add_argument("--no-wait", dest="wait", action="store_false", help="drop the file and return")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the report (default 300)")
    add_stack_option(parser)
    members = parser.add_argument_group("members FILE.csv (through the admin API)")
    members.add_argument("--program", help="the program the members join")
    members.add_argument("--region", help="the country national phone numbers are read in (e.g. US, CN)")
    members.add_argument("--api-url", help="the API's base URL (default: POINTBRIDGE_API_URL, else the sandbox's)")
    members.add_argument("--key-file", help="a file holding an operator's key (default: POINTBRIDGE_API_KEY)")


def drop_key(args: argparse.Namespace, now: datetime) -> str:
    name = args.file[0].name
    if not FILE_NAME.fullmatch(name):
        raise CliError(
            f"{name!r}: a feed file is named with letters, digits, '.', '_' or '-', ending .csv, .jsonl or .ndjson"
        )
    feed = args.partner or args.till
    if not FEED_ID.fullmatch(feed):
        raise CliError(f"{feed!r} is not a channel id")
    if args.till and not name.endswith(".csv"):
        raise CliError("till files are CSV (.csv)")
    # A time prefix keeps each import its own object (a file of the same name imported again is read again).
    stamped = f"{now:%Y%m%dT%H%M%SZ}-{name}"
    return f"partners/{feed}/{stamped}" if args.partner else f"till/{feed}/{stamped}"


def upload(target: Target, bucket: str, key: str, body: bytes) -> None:
    s3 = target.client("s3")
    with progress(f"uploading {key}", len(body)) as advance:
        if len(body) <= PART_SIZE:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            advance(len(body))
            return
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        parts = []
        try:
            for number, start in enumerate(range(0, len(body), 5 * PART_SIZE), start=1):
                chunk = body[start : start + 5 * PART_SIZE]
                etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk)["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
                advance(len(chunk))
            s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise


def wait_for_report(target: Target, bucket: str, key: str, timeout: float) -> dict[str, Any]:
    s3 = target.client("s3")
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + timeout
    with progress(f"waiting for the report of {key}", None):
        while True:
            try:
                body = s3.get_object(Bucket=bucket, Key=f"reports/{key}.json")["Body"].read()
            except ClientError as error:
                if error.response["Error"].get("Code") not in ("NoSuchKey", "404"):
                    raise
            else:
                report: dict[str, Any] = json.loads(body)
                if report.get("status") != "incomplete":
                    return report
            if time.monotonic() > deadline:
                raise WorkFailed(f"no report for {key} after {timeout:.0f} s: the file splitter's log says why")
            time.sleep(0.5)


def _run(args: argparse.Namespace) -> int:
    if str(args.file[0]) == "members":
        from pointbridge import member_import

        return member_import.run(args)
    if len(args.file) != 1:
        raise CliError("one feed file at a time (a member list: pointbridge import members FILE.csv)")
    if not (args.partner or args.till):
        raise CliError("one of the arguments --partner --till is required")
    body = read_file(args.file[0])
    if not body.strip():
        raise CliError(f"{args.file[0]} is empty")
    key = drop_key(args, datetime.now(UTC))
    target = find_target(args.stack)
    bucket = target.resource("FilesBucket")
    upload(target, bucket, key, body)
    if not args.wait:
        print(json.dumps({"bucket": bucket, "key": key, "report": f"reports/{key}.json"}, indent=2))
        return 0
    report = wait_for_report(target, bucket, key, args.timeout)
    print(json.dumps({"bucket": bucket, "key": key, **report}, indent=2, default=str))
    if report.get("status") != "complete":
        raise WorkFailed(
            f"{key}: {report.get('status')}: {report.get('reason') or report.get('error') or 'see the report'}"
        )
    return 0


register(
    "import",
    "import a partner's file or a till's CSV through the file drop path, or a member list (import members FILE.csv)",
    _configure,
    _run,
)
