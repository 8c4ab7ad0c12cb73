"""Every `pointbridge` command answers a bad argument with one line and a non-zero status, never a
traceback; and a sandbox a command starts is announced for the others while it runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from pointbridge import cli
from pointbridge.plumbing import timestamp
from pointbridge.sandbox.core import Sandbox

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from _pytest.capture import CaptureFixture

# (argv, what the one line says): argument errors, refused by the parser or by the command itself.
BAD = [
    (["nope"], "invalid choice: 'nope'"),
    (["run", "ExpiryFunction", "--now", "yesterday"], "not an ISO 8601 time: 'yesterday'"),
    (["run", "ExpiryFunction", "--now", "2026-13-45"], "not an ISO 8601 time"),
    (["run"], "the following arguments are required: function"),
    (["run", "ExpiryFunction", "--pool-size", "many"], "invalid int value: 'many'"),
    (["sandbox", "--port-api", "eighty"], "invalid int value: 'eighty'"),
    (["demo", "--bogus"], "unrecognized arguments: --bogus"),
    (["audit", "--bogus"], "unrecognized arguments: --bogus"),
    (["keys", "explode"], "invalid choice: 'explode'"),
    (["keys", "create", "--role", "king"], "invalid choice: 'king'"),
    (["dlq", "list", "nowhere"], "invalid choice: 'nowhere'"),
    (["dlq", "purge", "ingest"], "invalid choice: 'purge'"),
    (["channels", "show", "fax", "x"], "invalid choice: 'fax'"),
    (["import", "feed.csv"], "one of the arguments --partner --till is required"),
    (["import", "feed.csv", "--partner", "a", "--till", "b"], "not allowed with argument"),
    (["import", "feed.csv", "--partner", "a", "--timeout", "soon"], "invalid float value: 'soon'"),
    (["members", "delete", "demo", "m1"], "invalid choice: 'delete'"),
    (["adjust", "demo", "m1", "ten", "--reason", "goodwill"], "invalid int value: 'ten'"),
    (["reverse", "demo", "m1"], "the following arguments are required: entry_id, --reason"),
    (["export"], "the following arguments are required: program"),
    (["cards", "burn"], "invalid choice: 'burn'"),
    (["draw", "rig", "draw.json"], "invalid choice: 'rig'"),
    # Refused by the command, before it looks for a stack
    (["import", "missing.csv", "--partner", "skyair"], "no file missing.csv"),
    (["import", "notes.txt", "--partner", "skyair"], "ending .csv, .jsonl or .ndjson"),
    (["import", "empty.csv", "--till", "default"], "empty.csv is empty"),
    (["import", "feed.jsonl", "--till", "default"], "till files are CSV"),
    (["import", "feed.csv", "--partner", "bad/id"], "'bad/id' is not a channel id"),
    (["import", "feed.csv", "more.csv", "--partner", "skyair"], "one feed file at a time"),
    (["subscriber", "--lang", "fr"], "invalid choice: 'fr'"),
    (["import", "members"], "give one file: pointbridge import members FILE.csv --program PROGRAM"),
    (["import", "members", "members.csv"], "--program is required to import members"),
    (["import", "members", "missing.csv", "--program", "demo"], "no file missing.csv"),
    (["import", "members", "feed.csv", "--program", "demo"], "unknown columns 'partner_member_id'"),
    (["import", "members", "names.csv", "--program", "demo"], "the header names no email, phone or card column"),
    (["import", "members", "header.csv", "--program", "demo"], "header.csv has a header and no rows"),
    (["import", "members", "latin1.csv", "--program", "demo"], "latin1.csv is not UTF-8 text"),
    # No sandbox is running here, and no stack named
    (["import", "feed.csv", "--partner", "skyair"], "no running sandbox found"),
    (["import", "members", "members.csv", "--program", "demo"], "no API: pass --api-url"),
    (["run", "ExpiryFunction", "--template", "nowhere.yaml"], "no template nowhere.yaml"),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POINTBRIDGE_STACK", raising=False)
    monkeypatch.delenv("POINTBRIDGE_API_URL", raising=False)
    (tmp_path / "members.csv").write_text("email,name\nann@example.com,Ann\n", encoding="utf-8")
    (tmp_path / "names.csv").write_text("name,language\nAnn,en\n", encoding="utf-8")
    (tmp_path / "header.csv").write_text("email,name\n", encoding="utf-8")
    (tmp_path / "latin1.csv").write_bytes("email,name\nzoe@example.com,Zo\xeb\n".encode("latin-1"))
    (tmp_path / "notes.txt").write_text("x\n", encoding="utf-8")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    (tmp_path / "feed.csv").write_text("partner_member_id,external_id,occurred_at,points,reason\n", encoding="utf-8")
    (tmp_path / "feed.jsonl").write_text("{}\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("argv", "said"), BAD, ids=[" ".join(argv) for argv, _ in BAD])
def test_a_bad_argument_is_one_clear_line_and_a_non_zero_exit(
    argv: list[str], said: str, workdir: Path, capsys: CaptureFixture[str]
) -> None:
    try:
        status = cli.main(argv)
    except SystemExit as stop:  # the parser's refusal: what the console script exits with
        status = int(stop.code or 0)
    out, err = capsys.readouterr()
    assert status != 0
    assert said in err and "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1, err
    assert out == ""


def test_every_command_is_tried_with_a_bad_argument() -> None:
    cli.build_parser()  # loads every command module, each registering its commands
    commands = set(cli._COMMANDS)
    tried = {argv[0] for argv, _ in BAD}
    assert commands - tried == set(), "add a bad-argument case for each new command"


def test_an_unexpected_failure_is_one_line_without_a_traceback(
    workdir: Path, capsys: CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("the disk is full\nand more")

    monkeypatch.setitem(cli._COMMANDS, "broken", cli.Command("broken", "fails", lambda parser: None, broken))
    assert cli.main(["broken"]) == 1
    err = capsys.readouterr().err
    assert (
        err == "pointbridge broken: RuntimeError: the disk is full (run with POINTBRIDGE_DEBUG=1 for the traceback)\n"
    )


def test_times_are_read_as_iso_8601_and_a_time_without_offset_is_utc() -> None:
    assert timestamp("2026-12-07T09:00:00Z") == datetime(2026, 12, 7, 9, tzinfo=UTC)
    assert timestamp("2026-12-07") == datetime(2026, 12, 7, tzinfo=UTC)
    assert timestamp("2026-12-07T10:00:00+01:00") == datetime(2026, 12, 7, 9, tzinfo=UTC)


def test_a_sandbox_a_command_starts_is_announced_while_the_command_runs(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path | None] = []

    def starts_a_sandbox(args: argparse.Namespace) -> int:  # as `demo` and `sandbox` do
        seen.append(Sandbox.announce_to)
        return 0

    monkeypatch.setitem(cli._COMMANDS, "probe", cli.Command("probe", "", lambda parser: None, starts_a_sandbox))
    assert cli.main(["probe"]) == 0
    assert seen == [cli.RUNTIME_FILE] and Sandbox.announce_to is None
