"""`pointbridge audit`: recompute chains, balances and zero sums from the table's entries.

Against the running sandbox (from .pointbridge/sandbox.json) by default, or against whatever the
standard AWS environment points at with --table (a deployed stack).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pointbridge.cli import register, table_target

if TYPE_CHECKING:
    import argparse


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", help="table name (default: the running sandbox's points table)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run_audit(table: str, client: Any = None) -> dict[str, Any]:
    from functions.services import Services
    from shared.ledger.audit import audit

    report = audit(*Services(table_name=table, client=client).ledger_store.audit_records())
    return {
        "ok": report.ok,
        "entries": report.entries,
        "accounts": report.accounts,
        "problems": report.problems,
        "totals": report.totals,
    }


def _run(args: argparse.Namespace) -> int:
    target = table_target(args.table)
    if target is None:
        print("no running sandbox (start one with `pointbridge sandbox`), and no --table given")
        return 2
    table, client = target
    result = run_audit(table, client)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"audit of {table}: {result['entries']} entries, {result['accounts']} member accounts")
        for program, totals in sorted(result["totals"].items()):
            print(f"  {program}: " + ", ".join(f"{k} {v:+,}" for k, v in sorted(totals.items())) + "  (sum 0)")
        for problem in result["problems"]:
            print(f"  PROBLEM {problem}")
        print("  OK: every chain, balance, lot and zero sum checks out" if result["ok"] else "  FAILED")
    return 0 if result["ok"] else 1


register("audit", "verify the ledger: hash chains, balances = entries, programs sum to zero", _configure, _run)
