"""What every `pointbridge` command shares: finding the stack to act on, reading arguments, answering
errors in one line, and showing progress.

- **Which stack.** `--stack NAME` is a deployed CloudFormation stack, reached with the standard AWS
  credentials and region (its resources by logical id from CloudFormation). Without it, the running
  local sandbox: whoever started it (`pointbridge sandbox`, `pointbridge demo`, `make demo`) announced
  it in `.pointbridge/sandbox.json` while it is up, so `pointbridge run` during the demo acts on the
  demo's data, never on a second, empty sandbox. `POINTBRIDGE_STACK` stands for `--stack`.
- **Errors.** A bad argument, an unknown function or a missing stack is one line on stderr and exit
  status 2; a failure of the work itself is one line and status 1. No traceback unless
  `POINTBRIDGE_DEBUG=1`.
- **Progress.** Long work (uploading a file, waiting for its report) shows a progress bar on a
  terminal, by [rich](https://github.com/Textualize/rich) (pinned in pyproject.toml); nothing when
  the output is piped, so scripts read clean JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path

STACK_ENV = "POINTBRIDGE_STACK"
DEBUG_ENV = "POINTBRIDGE_DEBUG"


class CliError(Exception):
    """Something the person at the terminal can fix: said in one line, exit status 2."""

    status = 2


class WorkFailed(CliError):
    """The work ran and failed (a job's error, a refused file): one line, exit status 1."""

    status = 1


class Parser(argparse.ArgumentParser):
    """argparse, with a refused argument answered in one line (the usage is a `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def timestamp(text: str) -> datetime:
    """An ISO 8601 time for `--now`; a time without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-12-07T09:00:00+00:00 or 2026-12-07)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; what goes wrong is one line on stderr and an exit status, never a traceback."""
    try:
        return run(args)
    except CliError as error:
        print(f"pointbridge {args.command}: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print(f"pointbridge {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get(DEBUG_ENV):
            raise
        said = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"pointbridge {args.command}: {type(error).__name__}{': ' + said if said else ''} "
            f"(run with {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


# --- which stack -------------------------------------------------------------------------------


@dataclass
class Target:
    """The stack a command acts on: the local sandbox or a deployed stack."""

    kind: str  # "sandbox" or "stack"
    name: str  # the sandbox's API URL, or the stack's name
    resources: dict[str, str]  # logical id -> physical id
    api_url: str | None = None
    endpoint_url: str | None = None  # the sandbox's emulator
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def resource(self, logical_id: str) -> str:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise CliError(f"the {self.kind} {self.name} has no {logical_id}") from None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3

            kwargs: dict[str, Any] = {}
            if self.kind == "sandbox" and self.endpoint_url and not os.environ.get("AWS_ENDPOINT_URL"):
                kwargs = {
                    "endpoint_url": self.endpoint_url,
                    "region_name": "us-east-1",
                    "aws_access_key_id": "sandbox",
                    "aws_secret_access_key": "sandbox",
                }
            make: Callable[..., Any] = boto3.client  # by a service name known only at run time
            self._clients[service] = make(service, **kwargs)
        return self._clients[service]


def add_stack_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack",
        default=os.environ.get(STACK_ENV),
        help=f"a deployed stack's name (AWS credentials from the environment); default: the running sandbox "
        f"(or ${STACK_ENV})",
    )


def find_target(stack: str | None) -> Target:
    """The deployed stack named, or the running sandbox; a clear error when neither is there."""
    if stack:
        return _deployed(stack)
    from pointbridge.cli import live_sandbox

    live = live_sandbox()
    if live is None:
        raise CliError(
            "no running sandbox found (start one with `pointbridge sandbox` or `make demo`), and no --stack given"
        )
    resources = {k: str(v["physical_id"]) for k, v in live.get("resources", {}).items()}
    return Target("sandbox", str(live["api_url"]), resources, str(live["api_url"]), live.get("endpoint_url"))


def _deployed(stack: str) -> Target:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    cloudformation = boto3.client("cloudformation")
    try:
        pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack)
        resources = {
            r["LogicalResourceId"]: r["PhysicalResourceId"] for page in pages for r in page["StackResourceSummaries"]
        }
        outputs = cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    except ClientError as error:
        raise CliError(f"stack {stack}: {error.response['Error'].get('Message', error)}") from None
    except BotoCoreError as error:  # no credentials, no region, no network
        raise CliError(f"stack {stack}: {error}") from None
    api = next((o["OutputValue"] for o in outputs if o["OutputKey"] == "ApiUrl"), None)
    return Target("stack", stack, resources, api)


# --- the sandbox's control endpoints -----------------------------------------------------------


def control(target: Target, method: str, path: str, timeout: float = 900) -> tuple[int, Any]:
    """Call the running sandbox's control endpoint (`/_sandbox/...`): its status and JSON reply."""
    request = urllib.request.Request(f"{target.api_url}/_sandbox/{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"null")
        except ValueError:
            return error.code, None
    except (urllib.error.URLError, TimeoutError) as error:
        raise CliError(f"the sandbox at {target.api_url} did not answer: {error}") from None


# --- progress ----------------------------------------------------------------------------------


def progress(description: str, total: int | None, unit: str = "bytes") -> AbstractContextManager[Callable[[int], None]]:
    """A progress bar on a terminal (rich), nothing when piped: yields `advance(n)` (n bytes, or n of `unit`)."""
    from contextlib import contextmanager

    @contextmanager
    def bar() -> Iterator[Callable[[int], None]]:
        if not sys.stderr.isatty():
            yield lambda _: None
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        done = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), done, TimeElapsedColumn()]
        with Progress(*columns, transient=True) as shown:
            task = shown.add_task(description, total=total)
            yield lambda n: shown.advance(task, n)

    return bar()


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"no file {path}") from None
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
