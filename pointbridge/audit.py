"""`pointbridge audit`: recompute chains, balances and zero sums from the table's entries, and name
every loss found (a take-back without its cause, a refund never applied, an order earned twice, ...).

Against the running sandbox (from .pointbridge/sandbox.json) by default, or against whatever the
standard AWS environment points at with --table (a deployed stack). Besides the table, the
dead-letter queues (the sandbox's, or each --dead-letter-queue URL): a message parked there with no
`reason` attribute is a loss of its own class, `dead_letter_without_reason` (nobody can tell
whether to redrive it or why it failed). And the file drops (the sandbox's FilesBucket, or
--files-bucket): a till or partner file with no report, well after it landed, is `file_unreported`
(the splitter gave up on it and nothing says which rows landed). And the statements bucket (the
sandbox's, or --statements-bucket): a day with settlement lines and no statement is
`settlement_unwritten`. A table, queue or bucket that cannot be read ends the audit with exit 2.

Evidence (docs/security.md): every entry's keyed hash is checked with the stack's chain key (the
sandbox's ChainHashKey secret, or --chain-key-secret), and the table is held against the digests
(the sandbox's DigestsBucket, or --digests-bucket): each account changed after the last digest
(an edited entry, a recomputed chain, a truncated or deleted one) is named. Without the key the
audit refuses to run (exit 2): a chain it could not check would read as sound.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pointbridge.cli import live_sandbox, register

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from datetime import date


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", help="table name (default: the running sandbox's points table)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--dead-letter-queue",
        action="append",
        default=[],
        metavar="URL",
        help="a dead-letter queue to check for messages without a reason (default: the sandbox's)",
    )
    parser.add_argument("--files-bucket", help="the file drops' bucket (default: the sandbox's)")
    parser.add_argument("--statements-bucket", help="the settlement statements' bucket (default: the sandbox's)")
    parser.add_argument(
        "--chain-key-secret", help="the chain key's Secrets Manager secret (default: the sandbox's ChainHashKey)"
    )
    parser.add_argument("--digests-bucket", help="the account-head digests' bucket (default: the sandbox's)")


def run_audit(
    table: str,
    client: Any = None,
    now: datetime | None = None,
    statements: tuple[Any, str] | None = None,
    chain_key: bytes | None = None,
    digests: tuple[Any, str] | None = None,
) -> dict[str, Any]:
    """The whole audit; what is overdue or ahead is judged by `now` (default: the wall clock). With
    `statements` (an S3 client and the statements bucket), each settlement day's statement too; with
    `chain_key`, each keyed entry hash; with `digests` (an S3 client and the digests bucket), each
    account against the last digest."""
    from functions.services import Services
    from shared.jobs.audit import audit_table
    from shared.jobs.store import DigestFiles

    written = _statement_exists(*statements) if statements is not None else None
    anchors = DigestFiles(digests[1], lambda: digests[0]).anchors() if digests is not None else None
    services = Services(table_name=table, client=client)
    report = audit_table(
        services.table,
        now=now or datetime.now(UTC),
        statement_written=written,
        chain_key=chain_key,
        anchors=anchors,
    )
    return {
        "ok": report.ok,
        "entries": report.entries,
        "accounts": report.accounts,
        "problems": report.problems,
        # Evidence: entries whose keyed hash went unchecked (no key), the digest held against, and
        # the accounts that changed after it or whose hashes fail.
        "unverified": report.unverified,
        "digest_at": report.digest_at,
        "accounts_changed": report.accounts_changed,
        # Each loss with its class (shared/ledger/losses.py): what was lost, not only what does not add up.
        "losses": [{"class": loss.kind, "program": loss.program, "detail": loss.detail} for loss in report.losses],
        "totals": report.totals,
    }


def _statement_exists(s3: Any, bucket: str) -> Callable[[str, date], bool]:
    from botocore.exceptions import ClientError

    from shared.jobs.settlement import statement_keys

    def written(program: str, day: date) -> bool:
        try:
            s3.head_object(Bucket=bucket, Key=statement_keys(program, day)[0])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    return written


# The splitter gets 15 minutes (its function's longest timeout); a file older than this has had its chance.
FILE_GRACE = timedelta(minutes=30)
DROPS = ("till/", "partners/")


def audit_file_drops(s3: Any, bucket: str, now: datetime) -> list[dict[str, str]]:
    """Each dropped file (till/, partners/) without its report (reports/<key>.json), as a loss."""
    keys: dict[str, datetime] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update({obj["Key"]: obj["LastModified"] for obj in page.get("Contents", [])})
    return [
        {
            "class": "file_unreported",
            "program": "-",
            "detail": f"{bucket}/{key} landed at {landed.isoformat()} and has no report (reports/{key}.json)",
        }
        for key, landed in sorted(keys.items())
        if key.startswith(DROPS) and f"reports/{key}.json" not in keys and landed + FILE_GRACE < now
    ]


# Long enough to walk a queue page by page without meeting a message twice; set back to 0 after.
_PEEK_SECONDS = 60
NO_REASON = "dead_letter_without_reason"


def audit_dead_letters(sqs: Any, queues: dict[str, str]) -> list[dict[str, str]]:
    """Each message of each dead-letter queue (name -> URL) that carries no `reason`, as a loss.

    Messages are only looked at: each is made visible again once read, so a redrive finds them all.
    """
    losses: list[dict[str, str]] = []
    for name, url in sorted(queues.items()):
        receipts: list[str] = []
        while True:
            page = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=_PEEK_SECONDS,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not page:
                break
            for message in page:
                receipts.append(message["ReceiptHandle"])
                reason = message.get("MessageAttributes", {}).get("reason", {}).get("StringValue", "")
                if not reason.strip():
                    detail = f"{name}: message {message['MessageId']} was dead-lettered with no reason"
                    losses.append({"class": NO_REASON, "program": _program_of(message["Body"]), "detail": detail})
        for start in range(0, len(receipts), 10):
            batch = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(receipts[start : start + 10])
            ]
            sqs.change_message_visibility_batch(QueueUrl=url, Entries=batch)
    return losses


def _program_of(body: str) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return "-"  # unreadable: most likely the very reason it failed
    program = parsed.get("program") if isinstance(parsed, dict) else None
    return program if isinstance(program, str) and program else "-"


def with_found(result: dict[str, Any], dead: list[dict[str, str]]) -> dict[str, Any]:
    """The table's audit with the losses found beside it (queues, buckets) added: any of them fails it."""
    return {
        **result,
        "ok": result["ok"] and not dead,
        "problems": [*result["problems"], *(f"{d['class']}: {d['program']}: {d['detail']}" for d in dead)],
        "losses": [*result["losses"], *dead],
    }


def run_command(args: argparse.Namespace) -> int:
    import boto3

    client = sqs = s3 = secrets = None
    table, bucket, drops = args.table, args.statements_bucket, args.files_bucket
    key_secret, digests = args.chain_key_secret, args.digests_bucket
    queues = {url.rsplit("/", 1)[-1]: url for url in args.dead_letter_queue}
    live = live_sandbox()
    if table is None:
        if live is None:
            print("no running sandbox (start one with `pointbridge sandbox`), and no --table given")
            return 2
        table = live["resources"]["PointsTable"]["physical_id"]
        bucket = bucket or live["resources"].get("StatementsBucket", {}).get("physical_id")
        drops = drops or live["resources"].get("FilesBucket", {}).get("physical_id")
        key_secret = key_secret or live["resources"].get("ChainHashKey", {}).get("physical_id")
        digests = digests or live["resources"].get("DigestsBucket", {}).get("physical_id")
        if not queues:
            queues = {
                name: str(resource["physical_id"])
                for name, resource in live["resources"].items()
                if resource.get("type") == "AWS::SQS::Queue" and "DeadLetter" in name
            }
    if live is not None and not os.environ.get("AWS_ENDPOINT_URL"):
        sandbox = {
            "endpoint_url": live["endpoint_url"],
            "region_name": "us-east-1",
            "aws_access_key_id": "sandbox",
            "aws_secret_access_key": "sandbox",
        }
        client, sqs = boto3.client("dynamodb", **sandbox), boto3.client("sqs", **sandbox)
        s3, secrets = boto3.client("s3", **sandbox), boto3.client("secretsmanager", **sandbox)
    from botocore.exceptions import ClientError

    if not key_secret:
        print(
            "no chain key: give --chain-key-secret (the stack's ChainHashKeyArn output); no chain is checked without it"
        )
        return 2
    try:
        chain_key = str(
            (secrets or boto3.client("secretsmanager")).get_secret_value(SecretId=key_secret)["SecretString"]
        )
        result = run_audit(
            table,
            client,
            statements=(s3 or boto3.client("s3"), bucket) if bucket else None,
            chain_key=chain_key.encode(),
            digests=(s3 or boto3.client("s3"), digests) if digests else None,
        )
        found: list[dict[str, str]] = []
        if queues:
            found += audit_dead_letters(sqs or boto3.client("sqs"), queues)
        if drops:
            found += audit_file_drops(s3 or boto3.client("s3"), drops, datetime.now(UTC))
    except ClientError as exc:  # a table, queue or bucket that is not there, or not ours to read
        error = exc.response.get("Error", {})
        print(f"cannot audit: {exc.operation_name} failed: {error.get('Code')}: {error.get('Message')}")
        return 2
    result = with_found(result, found)
    print(json.dumps(result, indent=2) if args.json else "\n".join(report_lines(table, result)))
    return 0 if result["ok"] else 1


def report_lines(table: str, result: dict[str, Any]) -> list[str]:
    """The audit as an operator reads it: totals, arithmetic problems, each loss under its class."""
    lines = [f"audit of {table}: {result['entries']} entries, {result['accounts']} member accounts"]
    for program, totals in sorted(result["totals"].items()):
        lines.append(f"  {program}: " + ", ".join(f"{k} {v:+,}" for k, v in sorted(totals.items())) + "  (sum 0)")
    losses = {f"{loss['class']}: {loss['program']}: {loss['detail']}" for loss in result["losses"]}
    lines.extend(f"  PROBLEM {problem}" for problem in result["problems"] if problem not in losses)
    lines.extend(f"  LOSS {loss['class']} ({loss['program']}): {loss['detail']}" for loss in result["losses"])
    if result.get("accounts_changed"):
        since = f" (digest of {result['digest_at']})" if result.get("digest_at") else ""
        lines.append(f"  ACCOUNTS CHANGED{since}: " + ", ".join(result["accounts_changed"]))
    if result.get("unverified"):
        lines.append(f"  {result['unverified']} keyed entry hashes not checked: no chain key")
    if result.get("digest_at") is None:
        lines.append("  no digest of the account heads yet: nothing anchors the chains outside the table")
    by_class = Counter(str(loss["class"]) for loss in result["losses"])
    if by_class:
        lines.append("  losses by class: " + ", ".join(f"{kind} {n}" for kind, n in sorted(by_class.items())))
    ok = "  OK: every chain, balance, lot and zero sum checks out, and no class of loss was found"
    lines.append(ok if result["ok"] else "  FAILED")
    return lines


register(
    "audit",
    "verify the ledger: hash chains, balances = entries, programs sum to zero, and name every loss found",
    _configure,
    run_command,
)
