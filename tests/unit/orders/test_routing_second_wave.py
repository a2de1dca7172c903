"""Routing for the second wave, pure: a pre-order against incoming stock (the soonest complete
cover wins, never beyond what can still be promised, deterministic), and consolidation (a
delivery joins the buyer's earlier parcel when that location can ship it all)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.orders.routing import (
    Point,
    RoutingRequest,
    ShipWith,
    Site,
    Supply,
    plan_backorder,
    route_order,
)

MONDAY = datetime(2026, 12, 7, 9, tzinfo=UTC)
HOME = Point(52.37, 4.89)


def site(location_id: str, lat: float, lon: float, kind: str = "warehouse") -> Site:
    capabilities = frozenset({"ship"} if kind == "warehouse" else {"ship", "pickup"})
    return Site(location_id, kind, lat, lon, capabilities, 10, 100, {}, location_id)


SITES = [
    site("wh-north", 53.2, 6.5),
    site("wh-south", 51.4, 5.4),
    site("store-ams", 52.37, 4.9, "store"),
]


def supply(supply_id: str, location_id: str, sku: str, units: int, days: int) -> Supply:
    return Supply(supply_id, location_id, sku, units, MONDAY + timedelta(days=days))


def delivery(**lines: int) -> RoutingRequest:
    return RoutingRequest(method="delivery", lines=lines, destination=HOME)


def test_the_location_whose_supply_covers_everything_soonest_is_promised() -> None:
    supplies = [
        supply("po-1", "wh-north", "KAYAK", 5, 3),
        supply("po-2", "wh-south", "KAYAK", 5, 6),
        supply("po-3", "wh-south", "PADDLE", 5, 1),
        supply("po-4", "wh-north", "PADDLE", 5, 2),
    ]
    plan = plan_backorder(delivery(KAYAK=2, PADDLE=2), SITES, supplies)
    assert plan is not None
    assert plan.fulfillment.location_id == "wh-north"
    assert plan.promised_at == MONDAY + timedelta(days=3)  # the later of its two supplies
    assert dict(plan.fulfillment.lines) == {"KAYAK": 2, "PADDLE": 2}


def test_several_supplies_of_one_sku_add_up_and_the_last_one_needed_sets_the_date() -> None:
    supplies = [
        supply("po-1", "wh-south", "KAYAK", 2, 1),
        supply("po-2", "wh-south", "KAYAK", 3, 9),
    ]
    plan = plan_backorder(delivery(KAYAK=4), SITES, supplies)
    assert plan is not None
    assert plan.promised_at == MONDAY + timedelta(days=9)
    assert plan_backorder(delivery(KAYAK=6), SITES, supplies) is None


def test_a_collection_waits_only_at_its_own_store() -> None:
    supplies = [supply("po-1", "wh-south", "TEE", 9, 1), supply("tr-1", "store-ams", "TEE", 1, 4)]
    collect = RoutingRequest(method="pickup", lines={"TEE": 1}, store_id="store-ams")
    plan = plan_backorder(collect, SITES, supplies)
    assert plan is not None
    assert (plan.fulfillment.location_id, plan.fulfillment.pickup_store_id) == (
        "store-ams",
        "store-ams",
    )
    two = RoutingRequest(method="pickup", lines={"TEE": 2}, store_id="store-ams")
    assert plan_backorder(two, SITES, supplies) is None


def test_a_location_that_failed_the_order_is_never_promised_again() -> None:
    supplies = [
        supply("po-1", "wh-south", "KAYAK", 5, 1),
        supply("po-2", "wh-north", "KAYAK", 5, 5),
    ]
    request = RoutingRequest(
        method="delivery", lines={"KAYAK": 1}, destination=HOME, excluded=frozenset({"wh-south"})
    )
    plan = plan_backorder(request, SITES, supplies)
    assert plan is not None
    assert plan.fulfillment.location_id == "wh-north"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["wh-north", "wh-south", "store-ams"]),
            st.sampled_from(["KAYAK", "PADDLE"]),
            st.integers(0, 6),
            st.integers(0, 30),
        ),
        max_size=8,
    ),
    st.integers(1, 8),
    st.integers(1, 8),
)
def test_never_more_than_can_be_promised_and_the_same_answer_in_any_order(
    rows: list[tuple[str, str, int, int]], kayaks: int, paddles: int
) -> None:
    supplies = [
        supply(f"s{n}", loc, sku, units, days) for n, (loc, sku, units, days) in enumerate(rows)
    ]
    request = delivery(KAYAK=kayaks, PADDLE=paddles)
    plan = plan_backorder(request, SITES, supplies)
    assert plan == plan_backorder(request, list(reversed(SITES)), list(reversed(supplies)))
    if plan is not None:
        at = plan.fulfillment.location_id
        for sku, units in plan.fulfillment.lines.items():
            incoming = [s for s in supplies if s.location_id == at and s.sku == sku]
            assert sum(s.promisable for s in incoming) >= units
        assert plan.promised_at in {s.expected_at for s in supplies if s.location_id == at}


def stocked(location_id: str, lat: float, lon: float, **available: int) -> Site:
    return Site(
        location_id, "warehouse", lat, lon, frozenset({"ship"}), 10, 100, available, location_id
    )


def test_a_delivery_joins_the_earlier_parcel_when_that_location_has_everything() -> None:
    sites = [stocked("wh-near", 52.36, 4.88, CAP=5), stocked("wh-far", 51.4, 5.4, CAP=5)]
    parcel = ShipWith("ord_earlier", "wh-far", "shp-1")
    result = route_order(
        RoutingRequest(method="delivery", lines={"CAP": 1}, destination=HOME, ship_with=(parcel,)),
        sites,
    )
    (planned,) = result.fulfillments
    assert (planned.location_id, planned.ships_with) == ("wh-far", parcel)
    assert "consolidation" in result.rules_applied
    assert "ord_earlier" in result.explanation


def test_a_parcel_whose_location_cannot_serve_the_new_order_is_not_joined() -> None:
    sites = [stocked("wh-near", 52.36, 4.88, CAP=5), stocked("wh-far", 51.4, 5.4, CAP=0)]
    parcel = ShipWith("ord_earlier", "wh-far", "shp-1")
    result = route_order(
        RoutingRequest(method="delivery", lines={"CAP": 1}, destination=HOME, ship_with=(parcel,)),
        sites,
    )
    (planned,) = result.fulfillments
    assert (planned.location_id, planned.ships_with) == ("wh-near", None)
    assert "consolidation" not in result.rules_applied
