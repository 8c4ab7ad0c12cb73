"""`pointbridge ...`: the local sandbox and the tools around it.

Subcommands register themselves with `register(...)`. Modules named in COMMAND_MODULES are
imported at start-up so that they can register theirs (e.g. `demo`, `audit`); a module that does not
exist yet is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pointbridge.sandbox import Sandbox

# Add modules that register subcommands here; each calls `register(...)` at import.
COMMAND_MODULES: tuple[str, ...] = (
    "pointbridge.demo",
    "pointbridge.audit",
    "pointbridge.keys",
    "pointbridge.deadletters",
    "pointbridge.channels",
    "pointbridge.cards",
)

HOME = Path(".pointbridge")
RUNTIME_FILE = HOME / "sandbox.json"
DEFAULT_STATE = HOME / "state"
LOG_DIR = HOME / "logs"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_COMMANDS: dict[str, Command] = {}


def register(
    name: str,
    help: str,  # noqa: A002 - argparse's word
    configure: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
) -> None:
    _COMMANDS[name] = Command(name, help, configure, run)


# -- sandbox ----------------------------------------------------------------------------------
def _sandbox_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--stage", default="local")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="snapshot directory")
    parser.add_argument("--pool-size", type=int, default=4, help="workers per function")


def _configure_sandbox(parser: argparse.ArgumentParser) -> None:
    _sandbox_options(parser)
    parser.add_argument("--port-api", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("--fresh", action="store_true", help="discard the saved snapshot first")
    parser.add_argument("--no-schedules", action="store_true", help="do not run schedules on their clock")


def _run_sandbox(args: argparse.Namespace) -> int:
    from pointbridge.sandbox import Sandbox
    from pointbridge.sandbox.state import SNAPSHOT

    if args.fresh:
        (args.state / SNAPSHOT).unlink(missing_ok=True)
    sandbox = Sandbox(
        template=args.template,
        stage=args.stage,
        state_dir=args.state,
        pool_size=args.pool_size,
        schedules=not args.no_schedules,
        api_port=args.port_api,
        log_dir=LOG_DIR,
    )
    stop = threading.Event()
    # Explicit handlers: a shell may start a background job with SIGINT ignored.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with sandbox:
        info = {
            "endpoint_url": sandbox.endpoint_url,
            "api_url": sandbox.api_url,
            "stage": args.stage,
            "state_dir": str(args.state.resolve()),
            "resources": {k: r.as_json() for k, r in sandbox.resources.items()},
        }
        RUNTIME_FILE.parent.mkdir(parents=True, exist_ok=True)
        RUNTIME_FILE.write_text(json.dumps(info, indent=2), encoding="utf-8")
        print(f"emulator (AWS_ENDPOINT_URL): {sandbox.endpoint_url}")
        print(f"API:                         {sandbox.api_url}")
        print(f"state:                       {args.state} (saved on stop)")
        print(f"function logs:               {LOG_DIR}/<Function>.log")
        print("Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        finally:
            RUNTIME_FILE.unlink(missing_ok=True)
            print("stopping; saving state...", flush=True)
    return 0


# -- run ------------------------------------------------------------------------------------
def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("function", help="logical id, e.g. ExpiryFunction")
    parser.add_argument("--now", help="scheduled time, ISO 8601 (default: now)")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="say that --now moves time on purpose: jobs refuse a time ahead of the clock without it "
        "(what a simulated run does, e.g. expire points, is as real as any run's, and later runs at the "
        "real time are refused as stale)",
    )
    _sandbox_options(parser)


def live_sandbox() -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads(RUNTIME_FILE.read_text(encoding="utf-8"))
        with urllib.request.urlopen(f"{info['api_url']}/_sandbox/health", timeout=2):
            return info
    except (OSError, ValueError, KeyError):
        return None


def table_target(table: str | None) -> tuple[str, Any] | None:
    """The points table to work on, and a DynamoDB client for it (None: the environment's default).

    `--table NAME` is a deployed stack's table, reached with the standard AWS environment; without it,
    the running sandbox's table (from .pointbridge/sandbox.json). None when neither is there.
    """
    live = live_sandbox()
    if table is None:
        if live is None:
            return None
        table = str(live["resources"]["PointsTable"]["physical_id"])
    if live is None or os.environ.get("AWS_ENDPOINT_URL") or table != live["resources"]["PointsTable"]["physical_id"]:
        return table, None
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=live["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    return table, client


def _run_function(args: argparse.Namespace) -> int:
    now = datetime.fromisoformat(args.now) if args.now else None
    live = live_sandbox()
    if live is not None:
        params = {"now": now.isoformat()} if now else {}
        if args.simulate:
            params["simulate"] = "true"
        query = urllib.parse.urlencode(params)
        url = f"{live['api_url']}/_sandbox/functions/{args.function}/invoke?{query}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=900) as response:
                result = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            result = json.loads(exc.read() or b"{}")
        print(json.dumps(result, indent=2, default=str))
        return 0 if result.get("ok") else 1
    return _run_in_own_sandbox(args, now)


def _run_in_own_sandbox(args: argparse.Namespace, now: datetime | None) -> int:
    from pointbridge.sandbox import InvocationError, Sandbox

    sandbox: Sandbox = Sandbox(template=args.template, stage=args.stage, state_dir=args.state, pool_size=args.pool_size)
    with sandbox:
        try:
            reply = sandbox.run_function(args.function, now=now, simulate=args.simulate)
        except InvocationError as exc:
            print(json.dumps({"ok": False, "errorType": exc.error_type, "errorMessage": exc.message}, indent=2))
            return 1
        except KeyError as exc:
            print(f"error: {exc.args[0]}", file=sys.stderr)
            return 2
        # Let stream and queue consumers see the run's writes before the snapshot is taken.
        try:
            sandbox.wait_for_idle(timeout=60)
        except TimeoutError:
            print("warning: event sources still busy at stop", file=sys.stderr)
    print(json.dumps({"ok": True, "reply": reply}, indent=2, default=str))
    return 0


register("sandbox", "run the local stack until Ctrl-C", _configure_sandbox, _run_sandbox)
register("run", "run a scheduled function once", _configure_run, _run_function)


def _load_command_modules() -> None:
    for module in COMMAND_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
    parser = argparse.ArgumentParser(prog="pointbridge", description="Pointbridge loyalty platform")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in _COMMANDS.values():
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
