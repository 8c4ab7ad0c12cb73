"""`pointbridge import members FILE.csv` against a sandbox: good rows land once, each bad row is refused
with its line and reason without stopping the others, a re-run changes nothing, and neither the raw
card numbers nor the raw e-mails and phones of the list are anywhere in the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pointbridge.cli import main
from pointbridge.sandbox import Sandbox
from shared.access.keys import PrincipalKind
from shared.events.identity import hash_card, hash_email, hash_phone
from shared.events.model import Identity, IdentityKind
from shared.program.config import load_program
from tests.support.channels import identity_key
from tests.support.http_api import HttpApi

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
PROGRAM = "demo"
RAW = ("6001 2345 0001", "600123450001", "6001-2345-0003", "600123450003", "ann@example.com", "+14155550102")
LIST = """member,email,phone,card,name,language,tier
,Ann@Example.com,,6001 2345 0001,Ann Lee,en,gold
,bo@example.com,+1 415 555 0102,,Bo Chen,zh-CN,
,not-an-email,,,Bad Email,en,
,,,,No Identity,en,
,cy@example.com,,,Cy,fr,
,dee@example.com,,,Dee,en,platinum
brand-0042,eve@example.com,,6001-2345-0003,Eve,en,silver
,bo@example.com,,6001 2345 0001,Mixed,en,
,fay@example.com,,,"Fay, with a comma",en,,extra
"""
# line: why it is refused
REFUSED = {
    4: "(invalid_identity): not an e-mail address",
    5: "(invalid_identity): a member needs an e-mail, a phone or a card",
    6: "(invalid_input): language is one of en, zh-CN, not 'fr'",
    7: "(unknown_tier): no tier 'platinum'",
    9: "(identity_taken): its identities belong to different members",
    10: "(invalid_input): 8 cells where the header has 7",
}


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApi]:
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        http = HttpApi(sb)
        http.services.programs.publish(load_program(ROOT / "seeds" / "demo-program.json"))
        yield http


def _import(api: HttpApi, path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("POINTBRIDGE_API_URL", api.sandbox.api_url)
    monkeypatch.setenv("POINTBRIDGE_API_KEY", api.key(PrincipalKind.ADMIN, "importer"))
    capsys.readouterr()
    assert main(["import", "members", str(path), "--program", PROGRAM]) == 1  # some rows were refused
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.strip() == f"pointbridge import: {len(REFUSED)} of 9 rows refused (listed above)"
    return out


def _member(api: HttpApi, kind: IdentityKind, hashed: str) -> str | None:
    return api.services.members.member_for(Identity(kind=kind, value=hashed).key)


def test_a_member_list_lands_once_row_by_row(
    api: HttpApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "members.csv"
    path.write_text(LIST, encoding="utf-8")
    # When the list is imported: every bad row is named with its line and reason, and the good ones land
    out = _import(api, path, monkeypatch, capsys)
    for line, said in REFUSED.items():
        assert f"row {line}: refused {said}" in out, out
    assert out.splitlines()[-1] == "members.csv: 9 rows: 3 created, 0 updated, 0 unchanged, 6 refused"
    key = identity_key(api.sandbox).encode()
    ann = _member(api, IdentityKind.EMAIL, hash_email(key, "ann@example.com"))
    bo = _member(api, IdentityKind.PHONE, hash_phone(key, "+14155550102"))
    assert ann and bo and ann != bo
    # The card is Ann's, found by its keyed hash as every till's card is; the brand's own id is kept
    assert _member(api, IdentityKind.CARD, hash_card(key, "600123450001")) == ann
    assert _member(api, IdentityKind.EMAIL, hash_email(key, "eve@example.com")) == "brand-0042"
    assert _member(api, IdentityKind.EMAIL, hash_email(key, "dee@example.com")) is None  # its row was refused
    members = api.services.members
    profiles = {m: members.profile(m) for m in (ann, bo, "brand-0042")}
    assert {m: (p.name, p.language) for m, p in profiles.items() if p} == {
        ann: ("Ann Lee", "en"),
        bo: ("Bo Chen", "zh-CN"),
        "brand-0042": ("Eve", "en"),
    }
    # New members start at the list's tier, with the change on record
    tiers = {m: members.get_tier(PROGRAM, m) for m in (ann, bo, "brand-0042")}
    assert {m: t.tier for m, t in tiers.items() if t} == {ann: "gold", "brand-0042": "silver"}
    assert [change.to_tier for change in members.tier_changes(PROGRAM, ann)] == ["gold"]

    # When the same list is imported again: nothing changes, and the same rows are refused the same way
    api.sandbox.wait_for_idle(timeout=60)  # the watcher has published the tier moves
    before = sorted(json.dumps(item, sort_keys=True, default=str) for item in api.services.table.scan())
    again = _import(api, path, monkeypatch, capsys)
    assert again.splitlines()[-1] == "members.csv: 9 rows: 0 created, 0 updated, 3 unchanged, 6 refused"
    api.sandbox.wait_for_idle(timeout=60)
    after = sorted(json.dumps(item, sort_keys=True, default=str) for item in api.services.table.scan())
    assert set(after) ^ set(before) == set()

    # And no raw card number, e-mail or phone of the list is anywhere in the table
    for item in after:
        assert not [raw for raw in RAW if raw.lower() in item.lower()], item
