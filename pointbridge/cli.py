"""`pointbridge ...`: the local sandbox and the tools around it.

Subcommands register themselves with `register(...)`. Modules named in COMMAND_MODULES are
imported at start-up so that they can register theirs (e.g. `demo`, `audit`); a module that does not
exist yet is skipped.
"""

from __future__ import annotations

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
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

    from pointbridge.sandbox import Sandbox

# Add modules that register subcommands here; each calls `register(...)` at import.
COMMAND_MODULES: tuple[str, ...] = (
    "pointbridge.demo",
    "pointbridge.audit",
    "pointbridge.keys",
    "pointbridge.deadletters",
    "pointbridge.draws",
    "pointbridge.channels",
    "pointbridge.members",
    "pointbridge.importer",
    "pointbridge.cards",
    "pointbridge.subscriber",
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
    with sandbox:  # it announces itself in RUNTIME_FILE while it is up (main sets where)
        print(f"emulator (AWS_ENDPOINT_URL): {sandbox.endpoint_url}")
        print(f"API:                         {sandbox.api_url}")
        print(f"state:                       {args.state} (saved on stop)")
        print(f"function logs:               {LOG_DIR}/<Function>.log")
        print("Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        finally:
            print("stopping; saving state...", flush=True)
    return 0


# -- run ------------------------------------------------------------------------------------
def _configure_run(parser: argparse.ArgumentParser) -> None:
    from pointbridge.plumbing import add_stack_option, timestamp

    parser.add_argument("function", help="logical id, e.g. ExpiryFunction")
    parser.add_argument("--now", type=timestamp, help="scheduled time, ISO 8601 (default: now; no offset: UTC)")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="say that --now moves time on purpose: jobs refuse a time ahead of the clock without it "
        "(what a simulated run does, e.g. expire points, is as real as any run's, and later runs at the "
        "real time are refused as stale)",
    )
    add_stack_option(parser)
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
    """On the running sandbox (the demo's too), a deployed stack (--stack), or else a sandbox of its own."""
    from pointbridge.plumbing import find_target

    if args.stack:
        return _run_on_stack(args, find_target(args.stack))
    if live_sandbox() is not None:
        return _run_on_sandbox(args, find_target(None))
    return _run_in_own_sandbox(args, args.now)


def _run_on_sandbox(args: argparse.Namespace, target: Any) -> int:
    from pointbridge.plumbing import CliError, WorkFailed, control

    params = {"now": args.now.isoformat()} if args.now else {}
    if args.simulate:
        params["simulate"] = "true"
    query = urllib.parse.urlencode(params)
    status, reply = control(target, "POST", f"functions/{urllib.parse.quote(args.function)}/invoke?{query}")
    if status == 404:
        raise CliError(f"the sandbox at {target.api_url} has no function {args.function} (e.g. ExpiryFunction)")
    if not isinstance(reply, dict) or not reply.get("ok"):
        said = reply if not isinstance(reply, dict) else f"{reply.get('errorType')}: {reply.get('errorMessage')}"
        raise WorkFailed(f"{args.function} failed: {said}")
    print(json.dumps(reply, indent=2, default=str))
    return 0


def _run_on_stack(args: argparse.Namespace, target: Any) -> int:
    """The scheduled function invoked synchronously with the input its schedule sends (template.yaml)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pointbridge.plumbing import WorkFailed

    now = args.now or datetime.now(UTC)
    event: dict[str, Any] = {"scheduled_time": now.isoformat().replace("+00:00", "Z")}
    if args.simulate:
        event["simulate"] = True
    try:
        reply = target.client("lambda").invoke(
            FunctionName=target.resource(args.function), Payload=json.dumps(event).encode()
        )
    except (ClientError, BotoCoreError) as error:
        raise WorkFailed(f"{args.function} on {target.name}: {error}") from None
    body = json.loads(reply["Payload"].read() or b"null")
    if reply.get("FunctionError"):
        said = f"{body.get('errorType')}: {body.get('errorMessage')}" if isinstance(body, dict) else body
        raise WorkFailed(f"{args.function} failed on {target.name}: {said}")
    print(json.dumps({"ok": True, "reply": body}, indent=2, default=str))
    return 0


def _run_in_own_sandbox(args: argparse.Namespace, now: datetime | None) -> int:
    from pointbridge.plumbing import CliError, WorkFailed
    from pointbridge.sandbox import InvocationError, Sandbox

    if not Path(args.template).is_file():
        raise CliError(f"no template {args.template} (run from the repository, or give --template)")
    sandbox: Sandbox = Sandbox(template=args.template, stage=args.stage, state_dir=args.state, pool_size=args.pool_size)
    with sandbox:
        if args.function not in sandbox.functions:
            raise CliError(
                f"the template has no function {args.function} (e.g. {', '.join(sorted(sandbox.functions)[:3])})"
            )
        try:
            reply = sandbox.run_function(args.function, now=now, simulate=args.simulate)
        except InvocationError as exc:
            raise WorkFailed(f"{args.function} failed: {exc.error_type}: {exc.message}") from None
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
    from pointbridge.plumbing import Parser

    _load_command_modules()
    parser = Parser(prog="pointbridge", description="Pointbridge loyalty platform")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in _COMMANDS.values():
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pointbridge.plumbing import guarded
    from pointbridge.sandbox.core import Sandbox

    args = build_parser().parse_args(argv)
    # A sandbox a command starts (`sandbox`, `demo`) is found by the others while it is up.
    before, Sandbox.announce_to = Sandbox.announce_to, RUNTIME_FILE
    try:
        return guarded(args.run, args)
    finally:
        Sandbox.announce_to = before


if __name__ == "__main__":
    # `python -m pointbridge.cli` runs this file as __main__, but the command modules register with
    # `pointbridge.cli`: run that module's main, which has them all.
    from pointbridge.cli import main as registered_main

    sys.exit(registered_main())
