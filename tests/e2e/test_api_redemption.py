"""Rewards, redemption, donations, checkout holds and gifts over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pointbridge.sandbox import Sandbox
from shared.access.keys import PrincipalKind
from shared.events.model import Channel, Identity, IdentityKind, PointsEvent
from shared.ledger.audit import audit
from tests.support.http_api import HttpApi, problem

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
SHOP = {
    "program": "shop",
    "version": 1,
    "name": "Shop",
    "currency": "EUR",
    "tier_qualification": {"basis": "points"},
    "tiers": [{"name": "member", "rank": 0}, {"name": "gold", "rank": 1, "threshold": "3000"}],
}
NEXT_MONTH = (datetime.now(UTC) + timedelta(days=30)).isoformat()
CATALOGUE = {
    "program": "shop",
    "version": 1,
    "gifts": {"daily_limit": 500},
    "rewards": [
        {"id": "mug", "name": "Mug", "kind": "physical", "points": 100, "stock": 2},
        {"id": "film", "name": "Film", "kind": "digital", "points": 300, "cash_price": "9.99", "per_member_limit": 2},
        {"id": "lounge", "name": "Lounge", "kind": "service", "points": 500, "tiers": ["gold"]},
        {"id": "spa", "name": "Spa day", "kind": "service", "points": 200, "min_balance": 5000},
        {"id": "early", "name": "Preview", "kind": "digital", "points": 50, "available_from": NEXT_MONTH},
        {"id": "coffee", "name": "Coffee", "kind": "digital", "points": 20, "per_period_limit": 1, "period_days": 7},
        {"id": "trees", "name": "Plant trees", "kind": "donation", "points": 10, "cause": "Forests"},
    ],
}


def member_path(member: str, tail: str) -> str:
    return f"/programs/shop/members/{member}/{tail}"


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApi]:
    """The shop program and its catalogue published over HTTP; ann holds 2,000 points, gil 4,000 (gold)."""
    with Sandbox(template=TEMPLATE, schedules=False, pool_size=2) as sb:
        api = HttpApi(sb)
        admin = api.key(PrincipalKind.ADMIN, "ops")
        api.mutate("PUT", "/admin/programs/shop", admin, SHOP, other={**SHOP, "name": "Other"})
        api.mutate("PUT", "/admin/programs/shop/catalogue", admin, CATALOGUE, other={**CATALOGUE, "version": 2})
        # Earned through the ingest path (as the ingest function wires it), so gil's 4,000 points are
        # qualifying activity and move gil up to gold on the earn, as the API's tier reads it.
        ingest = api.services.ingest
        for member, points in (("ann", 2000), ("gil", 4000)):
            ingest.handle(
                PointsEvent(
                    program="shop",
                    channel=Channel.ONLINE,
                    source="shop",
                    external_id=f"seed-{member}",
                    identity=Identity(kind=IdentityKind.MEMBER, value=member),
                    occurred_at=datetime.now(UTC),
                    points=points,
                    reason="welcome",
                )
            )
        yield api


def key(api: HttpApi, member: str) -> str:
    return api.key(PrincipalKind.MEMBER, member, ("shop",))


def available(api: HttpApi, member: str) -> Any:
    return api.ok("GET", member_path(member, "balance"), key(api, member))["available"]


def test_catalogue_lists_the_live_rewards(api: HttpApi) -> None:
    live = api.ok("GET", "/programs/shop/rewards", key(api, "ann"))
    assert live["version"] == 1
    assert [r["id"] for r in live["rewards"]] == ["mug", "film", "lounge", "spa", "early", "coffee", "trees"]
    problem(api.call("GET", "/programs/other/rewards", key(api, "ann")), 403, "forbidden")


def test_redeem_points_and_more_than_the_balance(api: HttpApi) -> None:
    # Given ann, when she redeems 100 points
    body = {"points": 100, "reference": "plain-1"}
    done = api.mutate("POST", member_path("ann", "redemptions"), key(api, "ann"), body, other={**body, "points": 99})
    assert done["entry"]["available_change"] == -100
    # When she then asks for more than she has
    before = api.table_items()
    refused = api.call(
        "POST", member_path("ann", "redemptions"), key(api, "ann"), {"points": 10**6, "reference": "big"}
    )
    # Then a typed problem, and not one item written
    problem(refused, 422, "insufficient_points")
    assert api.table_items() == before


def test_points_plus_cash_reports_the_split_and_the_member_limit_holds(api: HttpApi) -> None:
    path, gil = member_path("gil", "redemptions"), key(api, "gil")
    body = {"reward_id": "film", "points": 150, "reference": "film-1"}
    half = api.mutate("POST", path, gil, body, other={**body, "points": 151})
    # 150 of 300 points leaves half of 9.99 to pay, rounded up to the cent
    assert half["split"] == {"points": 150, "cash": "5.00", "currency": "EUR"}
    assert half["entry"]["available_change"] == -150
    full = api.ok("POST", path, gil, {"reward_id": "film", "reference": "film-2"}, status=201)
    assert full["split"] == {"points": 300, "cash": "0", "currency": "EUR"}
    before = api.table_items()
    problem(api.call("POST", path, gil, {"reward_id": "film", "reference": "film-3"}), 422, "limit_reached")
    problem(api.call("POST", path, gil, {"reward_id": "mug", "points": 50, "reference": "m"}), 400, "invalid_input")
    assert api.table_items() == before


def test_tier_only_minimum_balance_window_and_period_limits(api: HttpApi) -> None:
    ann_path, gil_path = member_path("ann", "redemptions"), member_path("gil", "redemptions")
    key(api, "ann"), key(api, "gil")  # minted before counting: minting writes an item
    before = api.table_items()
    # A gold-only reward is refused to ann (member tier) and given to gil (gold)
    lounge = problem(
        api.call("POST", ann_path, key(api, "ann"), {"reward_id": "lounge", "reference": "l"}),
        422,
        "reward_unavailable",
    )
    assert "gold" in lounge["detail"]
    # A reward that needs 5,000 spendable points, and one not yet available
    problem(
        api.call("POST", gil_path, key(api, "gil"), {"reward_id": "spa", "reference": "s"}), 422, "reward_unavailable"
    )
    problem(
        api.call("POST", gil_path, key(api, "gil"), {"reward_id": "early", "reference": "e"}), 422, "reward_unavailable"
    )
    problem(
        api.call("POST", gil_path, key(api, "gil"), {"reward_id": "nope", "reference": "n"}), 422, "reward_unavailable"
    )
    assert api.table_items() == before
    assert (
        api.ok("POST", gil_path, key(api, "gil"), {"reward_id": "lounge", "reference": "l"}, status=201)["reward_id"]
        == "lounge"
    )
    # One coffee per member per seven days
    api.ok("POST", gil_path, key(api, "gil"), {"reward_id": "coffee", "reference": "c-1"}, status=201)
    problem(
        api.call("POST", gil_path, key(api, "gil"), {"reward_id": "coffee", "reference": "c-2"}), 422, "limit_reached"
    )


def test_last_items_of_stock(api: HttpApi) -> None:
    path = member_path("ann", "redemptions")
    for n in range(2):
        api.ok("POST", path, key(api, "ann"), {"reward_id": "mug", "reference": f"mug-{n}"}, status=201)
    before = api.table_items()
    problem(api.call("POST", path, key(api, "ann"), {"reward_id": "mug", "reference": "mug-3"}), 409, "out_of_stock")
    assert api.table_items() == before


def test_donation_to_a_cause(api: HttpApi) -> None:
    path, ann = member_path("ann", "donations"), key(api, "ann")
    body = {"reward_id": "trees", "points": 50, "reference": "d-1"}
    given = api.mutate("POST", path, ann, body, other={**body, "points": 60})
    assert (given["entry"]["details"]["cause"], given["entry"]["available_change"]) == ("Forests", -50)
    assert given["entry"]["explanation"] == "Points donated: Forests"
    problem(api.call("POST", path, ann, {"reward_id": "mug", "points": 100, "reference": "d-2"}), 400, "invalid_input")
    problem(api.call("POST", path, ann, {"reward_id": "trees", "points": 5, "reference": "d-3"}), 400, "invalid_input")


def test_checkout_hold_partial_capture_release_and_over_capture(api: HttpApi) -> None:
    gil, till = key(api, "gil"), api.key(PrincipalKind.CHANNEL, "till-7", ("shop",))
    start = available(api, "gil")
    holds = member_path("gil", "holds")
    body = {"points": 300, "reference": "basket-1"}
    api.mutate("POST", holds, till, body, other={**body, "points": 301})
    # Capturing more than the hold is refused; the member cannot settle the till's hold (it is not its own)
    problem(api.call("POST", f"{holds}/basket-1/capture", till, {"points": 301}), 422, "capture_exceeds_hold")
    problem(api.call("POST", f"{holds}/basket-1/capture", gil, {"points": 100}), 404, "unknown_entry")
    problem(api.call("POST", f"{holds}/basket-1/release", gil), 404, "unknown_entry")
    # A partial capture posts 200 and gives the other 100 back
    captured = api.mutate("POST", f"{holds}/basket-1/capture", till, {"points": 200}, other={"points": 199})
    assert captured["kind"] == "capture"
    assert available(api, "gil") == start - 200
    # A second hold released by the member, once
    api.ok("POST", holds, gil, {"points": 50, "reference": "basket-2"}, status=201)
    assert api.ok("GET", member_path("gil", "balance"), gil)["held"] == 50
    released = api.mutate("POST", f"{holds}/basket-2/release", gil)
    assert released["kind"] == "release"
    # Releasing again replays the release; capturing what was released is refused
    assert api.ok("POST", f"{holds}/basket-2/release", gil, status=201)["entry_id"] == released["entry_id"]
    problem(api.call("POST", f"{holds}/basket-2/capture", gil, {}), 409, "already_settled")
    balance = api.ok("GET", member_path("gil", "balance"), gil)
    assert (balance["available"], balance["held"]) == (start - 200, 0)


def test_gift_moves_points_with_their_expiry_and_a_daily_limit(api: HttpApi) -> None:
    path, ann = member_path("ann", "gifts"), key(api, "ann")
    before_ann = available(api, "ann")
    body = {"to_member": "bo", "points": 300, "reference": "g-1", "message": "happy birthday"}
    gift = api.mutate("POST", path, ann, body, other={**body, "points": 301})
    assert (gift["sent"]["available_change"], gift["received"]["available_change"]) == (-300, 300)
    assert available(api, "ann") == before_ann - 300
    assert available(api, "bo") == 300
    lots = {
        lot.member: lot.expires_at for lot in api.services.ledger_store.ledger_records()[2] if lot.program == "shop"
    }
    assert lots["bo"] == lots["ann"]  # the gifted lot kept ann's expiry date
    problem(api.call("POST", path, ann, {"to_member": "bo", "points": 201, "reference": "g-2"}), 422, "limit_reached")
    problem(api.call("POST", path, ann, {"to_member": "ann", "points": 1, "reference": "g-3"}), 400, "invalid_input")
    assert audit(*api.services.ledger_store.ledger_records()).ok
