"""Routing engine, pure: properties for the invariants, examples for each routing situation."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.orders.routing import (
    Point,
    RoutingError,
    RoutingRequest,
    RoutingResult,
    RoutingRules,
    Site,
    haversine_km,
    route_order,
)

AMSTERDAM = Point(52.3676, 4.9041)
UTRECHT = Point(52.0907, 5.1214)
ROTTERDAM = Point(51.9244, 4.4777)
EINDHOVEN = Point(51.4416, 5.4697)
GRONINGEN = Point(53.2194, 6.5665)
AMERSFOORT = Point(52.1561, 5.3878)
THE_HAGUE = Point(52.0705, 4.3007)

SKUS = ("KAYAK-2P", "PADDLE", "TEE-WHT-M", "VEST")
LOCATION_IDS = tuple(f"loc-{letter}" for letter in "abcdefghij")
TYPES = ("warehouse", "store", "dropship")
CAPABILITIES = ("ship", "pickup", "returns")


def site(
    location_id: str,
    at: Point,
    stock: Mapping[str, int],
    *,
    type: str = "warehouse",
    capabilities: Sequence[str] = ("ship",),
    priority: int = 0,
    capacity: int = 50,
) -> Site:
    return Site(
        location_id, type, at.lat, at.lon, frozenset(capabilities), priority, capacity, stock
    )


def store(location_id: str, at: Point, stock: Mapping[str, int], **options: Any) -> Site:
    options.setdefault("capabilities", ("ship", "pickup", "returns"))
    return site(location_id, at, stock, type="store", **options)


def deliver(lines: Mapping[str, int], to: Point = UTRECHT, **options: Any) -> RoutingRequest:
    return RoutingRequest("delivery", lines, destination=to, **options)


def collect(method: str, lines: Mapping[str, int], store_id: str, **options: Any) -> RoutingRequest:
    return RoutingRequest(method, lines, store_id=store_id, **options)


def planned(result: RoutingResult) -> list[tuple[str, dict[str, int]]]:
    return [(f.location_id, dict(f.lines)) for f in result.fulfillments]


def can_ship(s: Site, excluded: frozenset[str]) -> bool:
    """Delivery eligibility, apart from having something: written again, independently."""
    return "ship" in s.capabilities and s.ship_capacity_left > 0 and s.location_id not in excluded


def has_everything(s: Site, lines: Mapping[str, int]) -> bool:
    return all(s.available.get(sku, 0) >= n for sku, n in lines.items())


def expected_score(s: Site, destination: Point, rules: RoutingRules) -> float:
    """Rule 2 of the routing spec, written out again."""
    km = round(haversine_km(destination, Point(s.lat, s.lon)), 3)
    low = 1 - min(s.ship_capacity_left, rules.capacity_reference) / rules.capacity_reference
    penalty = {"store": rules.store_penalty, "dropship": rules.dropship_penalty}.get(s.type, 0.0)
    return round(km + s.priority + rules.low_capacity_weight * low + penalty, 3)


def covers_together(group: Sequence[Site], lines: Mapping[str, int]) -> bool:
    return all(sum(s.available.get(sku, 0) for s in group) >= n for sku, n in lines.items())


@dataclass(frozen=True)
class Scenario:
    sites: list[Site]
    request: RoutingRequest
    rules: RoutingRules


# Coordinates on a ~1 km grid inside the Netherlands: cheap to draw, and ties in distance happen.
latitudes = st.integers(5070, 5350).map(lambda hundredths: hundredths / 100)
longitudes = st.integers(330, 720).map(lambda hundredths: hundredths / 100)
# Every subset can occur, the useful ones more often and first (what hypothesis tries first and
# shrinks towards), so that most requests can be planned rather than rejected.
capability_sets = st.sampled_from(
    [frozenset({"ship", "pickup"}), frozenset({"ship"}), frozenset(CAPABILITIES)]
    + [frozenset(c) for n in range(4) for c in itertools.combinations(CAPABILITIES, n)]
)

# Hypothesis starts from, and shrinks towards, 0; counting down makes its simplest network a
# stocked one with capacity left, instead of one where every request is rejected.
zero_to_five = st.integers(0, 5).map(lambda n: 5 - n)


@st.composite
def networks(draw: st.DrawFn, catalogue: Sequence[str]) -> list[Site]:
    """2-8 locations in the Netherlands with random capabilities, capacity and stock; a sku a
    location has none of is left out of its `available`, as the orders service sends it."""
    # sampled_from draws the size evenly; st.integers would favour the smallest networks.
    count = draw(st.sampled_from(range(2, 9)))
    ids = draw(st.lists(st.sampled_from(LOCATION_IDS), min_size=count, max_size=count, unique=True))
    # Half the networks are scarce (0-2 units a sku), where orders have to be split.
    units = draw(st.sampled_from((zero_to_five, st.sampled_from((1, 0, 2)))))
    stock = st.fixed_dictionaries({sku: units for sku in catalogue})
    return [
        Site(
            location_id,
            draw(st.sampled_from(TYPES)),
            draw(latitudes),
            draw(longitudes),
            draw(capability_sets),
            draw(st.integers(0, 3)),
            draw(zero_to_five),
            {sku: units for sku, units in draw(stock).items() if units},
        )
        for location_id in ids
    ]


@st.composite
def scenarios(
    draw: st.DrawFn, methods: Sequence[str] = ("delivery", "pickup", "reserve")
) -> Scenario:
    catalogue = SKUS[: draw(st.sampled_from(range(1, len(SKUS) + 1)))]
    sites = draw(networks(catalogue))
    ids = [s.location_id for s in sites]
    method = draw(st.sampled_from(methods))
    # Evenly many skus and units: hypothesis would otherwise favour one unit of one sku.
    skus = draw(st.permutations(catalogue))[: draw(st.sampled_from(range(1, len(catalogue) + 1)))]
    lines = {sku: draw(st.sampled_from((2, 1, 3, 4))) for sku in skus}
    destination = Point(draw(latitudes), draw(longitudes))
    store_id = draw(st.sampled_from([*ids, "store-closed"]))
    request = RoutingRequest(
        method,
        lines,
        destination=destination if method == "delivery" else None,
        store_id=None if method == "delivery" else store_id,
        excluded=draw(st.frozensets(st.sampled_from(ids), max_size=2)),
    )
    rules = RoutingRules(
        max_locations=draw(st.sampled_from((1, 2, 3, 3, 4))),
        pickup_fallback=draw(st.sampled_from(("transfer", "reject"))),
        alternatives=draw(st.integers(0, 3)),
    )
    return Scenario(sites, request, rules)


@given(scenarios(), st.data())
def test_permuted_sites_and_lines_give_the_identical_result(
    scenario: Scenario, data: st.DataObject
) -> None:
    request = scenario.request
    lines = dict(data.draw(st.permutations(list(request.lines.items()))))
    permuted = RoutingRequest(
        request.method, lines, request.destination, request.store_id, request.excluded
    )
    sites = data.draw(st.permutations(scenario.sites))
    first = route_order(request, scenario.sites, scenario.rules)
    second = route_order(permuted, sites, scenario.rules)
    assert first == second
    assert repr(first) == repr(second)  # dict order too, so stored decisions compare as text


@given(scenarios())
def test_a_plan_never_exceeds_availability_nor_uses_an_excluded_location(
    scenario: Scenario,
) -> None:
    result = route_order(scenario.request, scenario.sites, scenario.rules)
    by_id = {s.location_id: s for s in scenario.sites}
    used = [f.location_id for f in result.fulfillments]
    assert len(used) == len(set(used))
    assert (result.rejected_reason is None) == bool(result.fulfillments)
    for fulfillment in result.fulfillments:
        assert fulfillment.location_id not in scenario.request.excluded
        assert fulfillment.lines, "a planned fulfillment always has lines"
        assert list(fulfillment.lines) == sorted(fulfillment.lines)
        for sku, units in fulfillment.lines.items():
            assert 1 <= units <= by_id[fulfillment.location_id].available.get(sku, 0)


@given(scenarios())
def test_every_site_is_a_candidate_exactly_once_in_the_documented_order(
    scenario: Scenario,
) -> None:
    result = route_order(scenario.request, scenario.sites, scenario.rules)
    ids = [c.location_id for c in result.candidates]
    assert sorted(ids) == sorted(s.location_id for s in scenario.sites)
    eligible = [c for c in result.candidates if c.eligible]
    assert result.candidates[: len(eligible)] == tuple(eligible)
    assert eligible == sorted(eligible, key=lambda c: (c.score, c.location_id))
    rest = ids[len(eligible) :]
    assert rest == sorted(rest)
    assert all((c.score is not None) == c.eligible and c.reasons for c in result.candidates)
    for fulfillment in result.fulfillments:
        assert fulfillment.location_id in {c.location_id for c in eligible}
        assert fulfillment.location_id in result.explanation


@given(scenarios(methods=("delivery",)))
def test_a_delivery_plan_covers_exactly_the_ordered_units(scenario: Scenario) -> None:
    result = route_order(scenario.request, scenario.sites, scenario.rules)
    by_id = {s.location_id: s for s in scenario.sites}
    if not result.fulfillments:
        return
    for fulfillment in result.fulfillments:
        assert fulfillment.method == "delivery"
        assert can_ship(by_id[fulfillment.location_id], scenario.request.excluded)
    for sku, wanted in scenario.request.lines.items():
        assert sum(f.lines.get(sku, 0) for f in result.fulfillments) == wanted
    assert set().union(*(f.lines for f in result.fulfillments)) == set(scenario.request.lines)


@settings(max_examples=200)  # the brute-force oracle is the strongest check: give it more cases
@given(scenarios(methods=("delivery",)))
def test_a_delivery_uses_the_fewest_locations_then_the_lowest_total_score(
    scenario: Scenario,
) -> None:
    request, rules = scenario.request, scenario.rules
    result = route_order(request, scenario.sites, rules)
    eligible = [s for s in scenario.sites if can_ship(s, request.excluded)]
    fewest = next(
        (
            size
            for size in range(1, len(eligible) + 1)
            if any(
                covers_together(g, request.lines) for g in itertools.combinations(eligible, size)
            )
        ),
        None,
    )
    if fewest is None or fewest > rules.max_locations:
        assert result.fulfillments == ()
        assert result.rejected_reason
        assert result.rejected_reason.startswith("not enough stock")
        return
    assert len(result.fulfillments) == fewest
    assert request.destination is not None
    score = {s.location_id: expected_score(s, request.destination, rules) for s in eligible}
    for candidate in result.candidates:
        if candidate.eligible:
            assert candidate.score == score[candidate.location_id]
    options = [
        (round(sum(score[s.location_id] for s in g), 3), sorted(s.location_id for s in g))
        for g in itertools.combinations(eligible, fewest)
        if covers_together(g, request.lines)
    ]
    chosen = [f.location_id for f in result.fulfillments]
    assert (round(sum(score[i] for i in chosen), 3), sorted(chosen)) == min(options)
    # The plan lists its locations best first.
    assert chosen == sorted(chosen, key=lambda i: (score[i], i))


@given(scenarios(methods=("pickup", "reserve")))
def test_a_collection_is_served_at_the_store_by_a_transfer_or_rejected_with_alternatives(
    scenario: Scenario,
) -> None:
    request, rules = scenario.request, scenario.rules
    result = route_order(request, scenario.sites, rules)
    chosen = next((s for s in scenario.sites if s.location_id == request.store_id), None)
    if chosen is None:
        assert result.rejected_reason
        assert result.rejected_reason.startswith("unknown store")
        assert result.alternatives == ()
        return
    collects = "pickup" in chosen.capabilities
    serves = collects and chosen.location_id not in request.excluded
    if serves and has_everything(chosen, request.lines):
        (only,) = result.fulfillments
        assert (only.location_id, only.method, only.pickup_store_id, only.transfer) == (
            chosen.location_id,
            request.method,
            chosen.location_id,
            False,
        )
        assert dict(only.lines) == dict(sorted(request.lines.items()))
        return
    here = Point(chosen.lat, chosen.lon)

    def km(s: Site) -> float:
        return round(haversine_km(here, Point(s.lat, s.lon)), 3)

    sources = sorted(
        (
            s
            for s in scenario.sites
            if s is not chosen
            and s.type == "warehouse"
            and can_ship(s, request.excluded)
            and has_everything(s, request.lines)
        ),
        key=lambda s: (km(s), s.priority, s.location_id),
    )
    if collects and request.method == "pickup" and rules.pickup_fallback == "transfer" and sources:
        (only,) = result.fulfillments
        assert (only.location_id, only.method, only.pickup_store_id, only.transfer) == (
            sources[0].location_id,
            "pickup",
            chosen.location_id,
            True,
        )
        assert only.ready_in_days == rules.transfer_days
        return
    assert result.fulfillments == ()
    assert result.rejected_reason
    expected = sorted(
        (
            s
            for s in scenario.sites
            if s is not chosen
            and "pickup" in s.capabilities
            and s.location_id not in request.excluded
            and has_everything(s, request.lines)
        ),
        key=lambda s: (km(s), s.location_id),
    )
    assert result.alternatives == tuple(s.location_id for s in expected[: rules.alternatives])


@given(
    st.sampled_from(TYPES),
    st.floats(50.7, 53.5),
    st.floats(3.3, 7.2),
    st.integers(0, 3),
    st.integers(1, 80),
    st.lists(st.sampled_from(LOCATION_IDS), min_size=2, max_size=2, unique=True),
)
def test_identical_sites_are_told_apart_by_location_id(
    kind: str, lat: float, lon: float, priority: int, capacity: int, ids: list[str]
) -> None:
    twins = [
        Site(i, kind, lat, lon, frozenset({"ship"}), priority, capacity, {"PADDLE": 2}) for i in ids
    ]
    result = route_order(deliver({"PADDLE": 2}), twins)
    assert planned(result) == [(min(ids), {"PADDLE": 2})]
    assert [c.location_id for c in result.candidates] == sorted(ids)


def test_a_store_ships_when_the_warehouse_lacks_stock() -> None:
    network = [
        site("wh-utrecht", UTRECHT, {"KAYAK-2P": 0, "PADDLE": 8}),
        store("store-amersfoort", AMERSFOORT, {"KAYAK-2P": 3, "PADDLE": 2}),
        store("store-groningen", GRONINGEN, {"KAYAK-2P": 5, "PADDLE": 5}),
    ]
    result = route_order(deliver({"KAYAK-2P": 1, "PADDLE": 2}), network)
    assert planned(result) == [("store-amersfoort", {"KAYAK-2P": 1, "PADDLE": 2})]
    assert result.rules_applied == ("store penalty 25", "single location preferred")
    assert "store-amersfoort" in result.explanation
    by_id = {c.location_id: c for c in result.candidates}
    assert by_id["wh-utrecht"].eligible
    assert by_id["wh-utrecht"].reasons == ("covers 2 of 3 units",)
    assert by_id["store-amersfoort"].reasons == ("covers everything",)


def test_a_split_across_two_warehouses_puts_each_sku_where_it_is() -> None:
    network = [
        site("wh-rotterdam", ROTTERDAM, {"KAYAK-2P": 2}),
        site("wh-eindhoven", EINDHOVEN, {"PADDLE": 4, "KAYAK-2P": 1}),
        site("wh-groningen", GRONINGEN, {"VEST": 9}),
    ]
    result = route_order(deliver({"KAYAK-2P": 2, "PADDLE": 2}), network)
    assert planned(result) == [("wh-rotterdam", {"KAYAK-2P": 2}), ("wh-eindhoven", {"PADDLE": 2})]
    assert result.rules_applied == ("split across 2 locations (max 3)",)
    assert "wh-rotterdam" in result.explanation
    assert "wh-eindhoven" in result.explanation
    assert [c.location_id for c in result.candidates] == [
        "wh-rotterdam",
        "wh-eindhoven",
        "wh-groningen",
    ]


def test_split_units_come_from_the_best_scored_location_first() -> None:
    network = [
        site("wh-utrecht", UTRECHT, {"KAYAK-2P": 2}),
        site("wh-amsterdam", AMSTERDAM, {"KAYAK-2P": 3, "PADDLE": 1}),
    ]
    result = route_order(deliver({"KAYAK-2P": 4, "PADDLE": 1}, to=UTRECHT), network)
    assert planned(result) == [
        ("wh-utrecht", {"KAYAK-2P": 2}),
        ("wh-amsterdam", {"KAYAK-2P": 2, "PADDLE": 1}),
    ]
    assert "wh-utrecht" in result.explanation
    assert "wh-amsterdam" in result.explanation


def test_a_dropship_partner_ships_only_what_the_own_network_lacks() -> None:
    network = [
        site("wh-utrecht", UTRECHT, {"KAYAK-2P": 4, "PADDLE": 4}),
        site("partner-kayaks", EINDHOVEN, {"KAYAK-2P": 10, "VEST": 10}, type="dropship"),
    ]
    result = route_order(deliver({"KAYAK-2P": 1, "PADDLE": 1, "VEST": 1}), network)
    assert planned(result) == [
        ("wh-utrecht", {"KAYAK-2P": 1, "PADDLE": 1}),
        ("partner-kayaks", {"VEST": 1}),
    ]
    assert "dropship penalty 250" in result.rules_applied
    assert [f.location_type for f in result.fulfillments] == ["warehouse", "dropship"]


def test_one_parcel_beats_a_cheaper_split_even_from_a_partner() -> None:
    network = [
        site("wh-utrecht", UTRECHT, {"KAYAK-2P": 1}),
        site("wh-amsterdam", AMSTERDAM, {"PADDLE": 1}),
        site("partner-kayaks", EINDHOVEN, {"KAYAK-2P": 5, "PADDLE": 5}, type="dropship"),
    ]
    result = route_order(deliver({"KAYAK-2P": 1, "PADDLE": 1}), network)
    assert planned(result) == [("partner-kayaks", {"KAYAK-2P": 1, "PADDLE": 1})]
    assert [c.location_id for c in result.candidates][:2] == ["wh-utrecht", "wh-amsterdam"]


def test_a_location_without_ship_capacity_left_gives_way_to_the_next() -> None:
    network = [
        site("wh-utrecht", UTRECHT, {"PADDLE": 5}, capacity=0),
        site("wh-amsterdam", AMSTERDAM, {"PADDLE": 5}, capacity=50),
    ]
    result = route_order(deliver({"PADDLE": 1}), network)
    assert planned(result) == [("wh-amsterdam", {"PADDLE": 1})]
    full = next(c for c in result.candidates if c.location_id == "wh-utrecht")
    assert (full.eligible, full.score, full.reasons) == (
        False,
        None,
        ("no ship capacity left today",),
    )


def test_running_low_on_capacity_costs_score_points() -> None:
    nearly_full = site("wh-utrecht", UTRECHT, {"PADDLE": 5}, capacity=10, priority=1)
    (candidate,) = route_order(deliver({"PADDLE": 1}, to=UTRECHT), [nearly_full]).candidates
    # 0 km + priority 1 + 100 * (1 - 10/50)
    assert candidate.distance_km == 0.0
    assert candidate.score == 81.0
    roomy = site("wh-amsterdam", AMSTERDAM, {"PADDLE": 5}, capacity=50)
    result = route_order(deliver({"PADDLE": 1}, to=UTRECHT), [nearly_full, roomy])
    assert planned(result) == [("wh-amsterdam", {"PADDLE": 1})]


def test_a_location_that_failed_the_order_is_not_planned_again() -> None:
    network = [
        store("store-utrecht", UTRECHT, {"TEE-WHT-M": 3}),
        site("wh-rotterdam", ROTTERDAM, {"TEE-WHT-M": 3}),
    ]
    first = route_order(deliver({"TEE-WHT-M": 1}), network)
    assert planned(first) == [("store-utrecht", {"TEE-WHT-M": 1})]
    again = route_order(deliver({"TEE-WHT-M": 1}, excluded=frozenset({"store-utrecht"})), network)
    assert planned(again) == [("wh-rotterdam", {"TEE-WHT-M": 1})]
    assert "excluded: store-utrecht" in again.rules_applied
    failed = next(c for c in again.candidates if c.location_id == "store-utrecht")
    assert failed.reasons == ("excluded after a failed attempt",)


def test_a_delivery_too_scattered_for_the_split_limit_is_rejected_with_the_shortfall() -> None:
    network = [
        site("wh-a", UTRECHT, {"KAYAK-2P": 1}),
        site("wh-b", AMSTERDAM, {"PADDLE": 1}),
        site("wh-c", ROTTERDAM, {"VEST": 1}),
    ]
    lines = {"KAYAK-2P": 1, "PADDLE": 1, "VEST": 1}
    assert len(route_order(deliver(lines), network).fulfillments) == 3
    result = route_order(deliver(lines), network, RoutingRules(max_locations=2))
    assert result.fulfillments == ()
    assert (
        result.rejected_reason == "not enough stock to ship: VEST short 1 of 1 within 2 locations"
    )
    short = route_order(deliver({"KAYAK-2P": 2}), network)
    assert short.rejected_reason == (
        "not enough stock to ship: KAYAK-2P short 1 of 2 within 3 locations"
    )


def test_sites_that_cannot_help_are_listed_with_the_reason() -> None:
    network = [
        store("store-pickup-only", UTRECHT, {"PADDLE": 5}, capabilities=("pickup",)),
        site("wh-empty", AMSTERDAM, {"VEST": 5}),
        site("wh-ok", ROTTERDAM, {"PADDLE": 5}),
    ]
    result = route_order(deliver({"PADDLE": 1}), network)
    reasons = {c.location_id: c.reasons for c in result.candidates}
    assert reasons == {
        "wh-ok": ("covers everything",),
        "store-pickup-only": ("cannot ship",),
        "wh-empty": ("has none of the items",),
    }


def test_too_many_candidates_fall_back_to_a_greedy_split() -> None:
    skus = ("KAYAK-2P", "PADDLE", "VEST")
    network = [
        site(f"wh-{i:02}", Point(52.0 + i / 100, 5.0), {skus[i % 3]: 1}, priority=10 * i)
        for i in range(30)
    ]
    result = route_order(deliver(dict.fromkeys(skus, 1)), network)
    assert planned(result) == [
        ("wh-00", {"KAYAK-2P": 1}),
        ("wh-01", {"PADDLE": 1}),
        ("wh-02", {"VEST": 1}),
    ]
    assert "greedy split: too many candidates for an exhaustive search" in result.rules_applied


def test_pickup_at_a_store_that_has_everything() -> None:
    network = [
        store("store-utrecht", UTRECHT, {"TEE-WHT-M": 2, "VEST": 1}),
        site("wh-utrecht", UTRECHT, {"TEE-WHT-M": 50, "VEST": 50}),
    ]
    result = route_order(collect("pickup", {"VEST": 1, "TEE-WHT-M": 2}, "store-utrecht"), network)
    (only,) = result.fulfillments
    assert (only.location_id, only.method, only.pickup_store_id) == (
        "store-utrecht",
        "pickup",
        "store-utrecht",
    )
    assert (only.transfer, only.ready_in_days) == (False, 0)
    assert list(only.lines.items()) == [("TEE-WHT-M", 2), ("VEST", 1)]
    other = next(c for c in result.candidates if c.location_id == "wh-utrecht")
    assert (other.eligible, other.reasons) == (False, ("not the chosen store",))


def test_pickup_without_stock_is_transferred_from_the_nearest_warehouse() -> None:
    network = [
        store("store-amersfoort", AMERSFOORT, {"KAYAK-2P": 0}),
        site("wh-utrecht", UTRECHT, {"KAYAK-2P": 1}),
        site("wh-groningen", GRONINGEN, {"KAYAK-2P": 9}),
        site("wh-utrecht-full", UTRECHT, {"KAYAK-2P": 9}, capacity=0),
        store("store-utrecht", UTRECHT, {"KAYAK-2P": 9}),
    ]
    result = route_order(collect("pickup", {"KAYAK-2P": 1}, "store-amersfoort"), network)
    (only,) = result.fulfillments
    assert (only.location_id, only.method, only.pickup_store_id) == (
        "wh-utrecht",
        "pickup",
        "store-amersfoort",
    )
    assert (only.transfer, only.ready_in_days) == (True, 2)
    assert "pickup fallback: transfer" in result.rules_applied
    assert [c.location_id for c in result.candidates if c.eligible] == [
        "wh-utrecht",
        "wh-groningen",
    ]
    far = route_order(
        collect("pickup", {"KAYAK-2P": 2}, "store-amersfoort"),
        network,
        RoutingRules(transfer_days=4),
    )
    assert [(f.location_id, f.ready_in_days) for f in far.fulfillments] == [("wh-groningen", 4)]


def test_a_reserve_never_transfers_and_suggests_the_nearest_stores_with_everything() -> None:
    network = [
        store("store-utrecht", UTRECHT, {"TEE-WHT-M": 0}),
        store("store-amersfoort", AMERSFOORT, {"TEE-WHT-M": 2}),
        store("store-amsterdam", AMSTERDAM, {"TEE-WHT-M": 5}),
        store("store-groningen", GRONINGEN, {"TEE-WHT-M": 5}),
        store("store-rotterdam", ROTTERDAM, {"TEE-WHT-M": 1}),
        store("store-eindhoven", EINDHOVEN, {"TEE-WHT-M": 5}, capabilities=("ship",)),
        site("wh-utrecht", UTRECHT, {"TEE-WHT-M": 100}),
    ]
    result = route_order(
        collect("reserve", {"TEE-WHT-M": 2}, "store-utrecht"), network, RoutingRules(alternatives=2)
    )
    assert result.fulfillments == ()
    assert result.rejected_reason == "store-utrecht has 0 of 2 TEE-WHT-M"
    assert result.alternatives == ("store-amersfoort", "store-amsterdam")
    assert "reserve holds stock in the store: no transfer" in result.rules_applied
    everything = route_order(collect("reserve", {"TEE-WHT-M": 2}, "store-utrecht"), network)
    assert everything.alternatives == ("store-amersfoort", "store-amsterdam", "store-groningen")


def test_pickup_with_the_reject_fallback_is_rejected_with_alternatives() -> None:
    network = [
        store("store-utrecht", UTRECHT, {"PADDLE": 1}),
        store("store-the-hague", THE_HAGUE, {"PADDLE": 3}),
        site("wh-utrecht", UTRECHT, {"PADDLE": 100}),
    ]
    request = collect("pickup", {"PADDLE": 2}, "store-utrecht")
    result = route_order(request, network, RoutingRules(pickup_fallback="reject"))
    assert result.fulfillments == ()
    assert result.rejected_reason == "store-utrecht has 1 of 2 PADDLE"
    assert result.alternatives == ("store-the-hague",)
    assert "pickup fallback: reject" in result.rules_applied
    assert route_order(request, network).fulfillments[0].transfer


def test_a_store_that_left_the_directory_rejects_without_raising() -> None:
    network = [store("store-utrecht", UTRECHT, {"PADDLE": 1})]
    result = route_order(collect("pickup", {"PADDLE": 1}, "store-closed"), network)
    assert result.fulfillments == ()
    assert result.rejected_reason
    assert result.rejected_reason.startswith("unknown store store-closed")
    assert [(c.location_id, c.distance_km) for c in result.candidates] == [("store-utrecht", None)]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (RoutingRequest("delivery", {"PADDLE": 1}), "needs a destination"),
        (RoutingRequest("pickup", {"PADDLE": 1}), "needs a store_id"),
        (RoutingRequest("reserve", {"PADDLE": 1}, destination=UTRECHT), "needs a store_id"),
        (RoutingRequest("delivery", {}, destination=UTRECHT), "at least one line"),
        (RoutingRequest("delivery", {"PADDLE": 0}, destination=UTRECHT), "PADDLE must be at"),
        (RoutingRequest("teleport", {"PADDLE": 1}, destination=UTRECHT), "unknown method"),
        (RoutingRequest("delivery", {"PADDLE": 1}, destination=Point(91, 0)), "outside the globe"),
    ],
)
def test_a_malformed_request_is_refused(request_: RoutingRequest, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        route_order(request_, [site("wh-utrecht", UTRECHT, {"PADDLE": 5})])


def test_a_location_listed_twice_is_refused() -> None:
    twice = [site("wh-utrecht", UTRECHT, {"PADDLE": 5}), site("wh-utrecht", AMSTERDAM, {})]
    with pytest.raises(RoutingError, match="wh-utrecht is listed more than once"):
        route_order(deliver({"PADDLE": 1}), twice)


@pytest.mark.parametrize(
    "options",
    [
        {"max_locations": 0},
        {"capacity_reference": 0},
        {"pickup_fallback": "wait"},
        {"alternatives": -1},
    ],
)
def test_impossible_rules_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(RoutingError):
        RoutingRules(**options)


def test_haversine_matches_known_distances() -> None:
    assert haversine_km(AMSTERDAM, AMSTERDAM) == 0.0
    assert haversine_km(AMSTERDAM, UTRECHT) == pytest.approx(34.4, abs=0.5)
    assert haversine_km(AMSTERDAM, GRONINGEN) == haversine_km(GRONINGEN, AMSTERDAM)
    assert haversine_km(Point(0, 0), Point(0, 180)) == pytest.approx(20015.1, abs=0.1)
