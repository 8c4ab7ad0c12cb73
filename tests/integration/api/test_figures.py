"""GET /admin/programs/{p}/figures, GET /admin/programs and the /console page, in-process."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from functions.api import openapi
from functions.api.app import app
from shared.access.keys import PrincipalKind
from shared.infra.counters import SHARDS
from shared.ledger.commands import Spend
from shared.rewards.catalogue import Catalogue, Reward, RewardKind, publish_catalogue
from tests.conftest import T0
from tests.support.stream import deliver, entry_records

if TYPE_CHECKING:
    import pytest

    from functions.services import Services
    from shared.ledger.ledger import Ledger
    from shared.program.store import ProgramRepository
    from tests.integration.api.conftest import Client

FIGURES = "/admin/programs/demo/figures"


def project(services: Services) -> None:
    """Deliver every entry written so far to the stream watcher (which gets these services: installed)."""
    deliver(entry_records(services.table))


def test_an_admin_reads_the_period_per_day_and_to_date(
    api: Client, admin_key: str, funded: Ledger, programs: ProgramRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a point value of 0.5 cents, a catalogue with a mug, and 1,000 points earned by m1 of which 250
    # spent on two mugs, projected from the stream
    live = programs.get("demo")
    programs.publish(live.model_copy(update={"version": live.version + 1, "point_value": Decimal("0.005")}))
    mug = Reward(id="mug", name="Tea mug", kind=RewardKind.PHYSICAL, points=125)
    publish_catalogue(api.services.documents, Catalogue(program="demo", version=1, rewards=(mug,)))
    spend = Spend(program="demo", member="m1", points=250, source="web", external_id="s1", reason="reward",
                  details={"reward": "mug", "quantity": "2"})  # fmt: skip
    funded.spend(spend, at=T0 + timedelta(hours=1))
    project(api.services)
    day = T0.date().isoformat()
    # When an admin asks for the day before, the day and the day after
    before = (T0.date() - timedelta(days=1)).isoformat()
    after = (T0.date() + timedelta(days=1)).isoformat()
    reply = api.call("GET", FIGURES, key=admin_key, query={"start": before, "end": after})
    # Then the figures are the ledger's, per day and in total, with their shares
    assert reply.status == 200, reply.body
    body = reply.body
    assert (body["program"], body["timezone"], body["start"], body["end"]) == ("demo", "UTC", before, after)
    assert (body["days"], body["interval"], body["currency"], body["point_value"]) == (3, "day", "USD", "0.005")
    assert [(d["start"], d["end"]) for d in body["series"]] == [(before, before), (day, day), (after, after)]
    assert [d["issued"] for d in body["series"]] == [0, 1000, 0]
    assert [d["liability_at_end"] for d in body["series"]] == [0, 750, 750]
    assert [d["liability_value_at_end"] for d in body["series"]] == ["0.00", "3.75", "3.75"]
    period, to_date = body["period"], body["to_date"]
    assert (period["issued"], period["redeemed"], period["liability"], period["unexplained"]) == (1000, 250, 750, 0)
    assert (to_date["liability"], to_date["available"], to_date["redemption_rate"]) == (750, 750, "0.2500")
    assert (period["breakage_rate"], body["opening_liability"], body["closing_liability"]) == ("0.0000", 0, 750)
    assert body["closing_liability_value"] == "3.75"
    assert to_date["value"] == {"issued": "5.00", "partner_funded": "0.00", "redeemed": "1.25", "expired": "0.00",
                                "liability": "3.75"}  # fmt: skip
    assert period["channels"] == [{"name": "api", "count": 1000, "share": "1.0000"}]
    assert period["rewards"] == [{"reward": "mug", "name": "Tea mug", "points": 250, "count": 2, "share": "1.0000"}]
    assert body["members"] == 1 and body["tiers"] == [{"name": "member", "count": 1, "share": "1.0000"}]
    # And the previous period (the three days before) is there, empty, for comparison
    assert (body["previous_start"], body["previous_end"]) == (
        (T0.date() - timedelta(days=4)).isoformat(),
        (T0.date() - timedelta(days=2)).isoformat(),
    )
    assert (body["previous"]["issued"], body["previous"]["redemption_rate"]) == (0, None)
    assert body["requests"] == -(-8 * SHARDS // 100)  # (3 days + 3 previous days + 2) x SHARDS keys, 100 a request


def test_a_year_is_one_reply_by_month_and_a_program_without_a_point_value_has_no_money(
    api: Client, admin_key: str, funded: Ledger
) -> None:
    # Given 1,000 points earned at T0, projected
    project(api.services)
    # When an admin asks for the year up to T0's month end
    end = (T0.date().replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    start = end.replace(year=end.year - 1) + timedelta(days=1)
    reply = api.call("GET", FIGURES, key=admin_key, query={"start": start.isoformat(), "end": end.isoformat()})
    # Then the series has a step per month, the last holding the earn, and no money values
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["interval"] == "month" and len(body["series"]) == 12 and body["series"][-1]["issued"] == 1000
    assert body["point_value"] is None and body["to_date"]["value"] is None and body["closing_liability_value"] is None


def test_only_admins_read_figures_and_bad_periods_are_problems(api: Client, admin_key: str) -> None:
    # Given a member's key and an admin's
    member_key = api.key_for(PrincipalKind.MEMBER, "m1")
    # Then a member is refused, and so is a missing or unknown key
    assert api.call("GET", FIGURES, key=member_key).code == "forbidden"
    assert api.call("GET", "/admin/programs", key=member_key).code == "forbidden"
    assert api.call("GET", FIGURES, key="pb_" + "x" * 43).status == 401
    # And a period that ends first, a period too long, a bad date and an unknown program are typed problems
    backwards = api.call("GET", FIGURES, key=admin_key, query={"start": "2026-03-02", "end": "2026-03-01"})
    assert (backwards.status, backwards.code) == (400, "invalid_input")
    too_long = api.call("GET", FIGURES, key=admin_key, query={"start": "2010-01-01", "end": "2026-06-01"})
    assert (too_long.status, too_long.code) == (400, "invalid_input") and "ten years" in too_long.body["detail"]
    assert api.call("GET", FIGURES, key=admin_key, query={"start": "yesterday"}).code == "invalid_input"
    assert api.call("GET", "/admin/programs/nope/figures", key=admin_key).code == "unknown_program"
    # And with no period the last 30 local days are shown
    default = api.call("GET", FIGURES, key=admin_key)
    assert default.status == 200 and len(default.body["series"]) == 30 == default.body["days"]
    assert api.call("GET", "/admin/programs", key=admin_key).body == {"programs": ["demo"]}


def test_the_console_page_is_open_self_contained_and_locked_down(api: Client) -> None:
    # When the console page is asked for without a key
    reply = api.call("GET", "/console")
    # Then it is HTML that loads nothing from anywhere else, and only its own script may run
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    page = reply.body
    assert "<script>" in page and "sessionStorage" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    policy = reply.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    # And the vendored chart library may run from the same origin, served as the manifest lists it
    assert "script-src 'self' 'sha256-" in policy
    library = api.call("GET", "/console/assets/chart.umd.min.js")
    assert library.status == 200 and library.headers["content-type"].startswith("text/javascript")
    assert library.body.startswith("/*!\n * Chart.js v4.6.2")
    licence = api.call("GET", "/console/assets/chart.js.LICENSE.md")
    assert licence.status == 200 and "MIT License" in licence.body
    # And nothing else is: not the manifest, not a path outside the folder
    assert api.call("GET", "/console/assets/manifest.json").code == "not_found"
    assert api.call("GET", "/console/assets/..%2Fconsole.html").status == 404
    # And it is not part of the API's OpenAPI document
    paths = openapi.document(app)["paths"]
    assert "/console" not in paths and "/admin/programs/{program}/figures" in paths
