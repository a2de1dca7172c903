"""Inventory rules, pure: examples for the named cases, properties for the invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contracts.inventory import AdjustmentReason, StockCorrection
from services.inventory import domain
from services.inventory.domain import Level, Movement, StockRuleViolation
from services.retail.geo import distance_km

levels = st.builds(
    lambda on_hand, reserved_share, safety: Level(on_hand, min(reserved_share, on_hand), safety),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.integers(0, 50),
)


@given(levels)
def test_available_is_never_negative_and_never_more_than_unreserved(level: Level) -> None:
    assert 0 <= level.available <= level.on_hand - level.reserved


@given(levels, st.integers(-2000, 2000), st.sampled_from(list(AdjustmentReason)))
def test_an_adjustment_either_keeps_every_invariant_or_is_refused(
    level: Level, delta: int, reason: AdjustmentReason
) -> None:
    try:
        adjusted = domain.adjust(level, delta, reason)
    except StockRuleViolation:
        return
    adjusted.check()
    assert adjusted.on_hand == level.on_hand + delta
    assert adjusted.reserved == level.reserved


@pytest.mark.parametrize(
    ("reason", "delta", "message"),
    [
        (AdjustmentReason.RECEIPT, -1, "must be positive"),
        (AdjustmentReason.POS_SALE, 1, "must be negative"),
        (AdjustmentReason.DAMAGE, 2, "must be negative"),
        (AdjustmentReason.COUNT_CORRECTION, 0, "must not be 0"),
    ],
)
def test_the_reason_fixes_the_sign(reason: AdjustmentReason, delta: int, message: str) -> None:
    with pytest.raises(StockRuleViolation, match=message):
        domain.adjust(Level(10, 0), delta, reason)


def test_a_count_cannot_drop_below_what_is_promised() -> None:
    with pytest.raises(StockRuleViolation, match="3 units are reserved"):
        domain.set_on_hand(Level(5, 3), 2)
    assert domain.set_on_hand(Level(5, 3), 3, safety_stock=1) == Level(3, 3, 1)


@given(levels, st.integers(0, 2000))
def test_a_partner_feed_never_breaks_a_reservation(level: Level, reported: int) -> None:
    outcome = domain.apply_feed(level, reported)
    outcome.level.check()
    assert outcome.level.reserved == level.reserved
    assert outcome.level.on_hand == max(reported, level.reserved)
    assert outcome.shortfall == max(level.reserved - reported, 0)


def test_only_a_newer_feed_counts() -> None:
    assert domain.feed_is_newer(1, None)
    assert domain.feed_is_newer(8, 7)
    assert not domain.feed_is_newer(7, 7)
    assert not domain.feed_is_newer(6, 7)


def test_shortages_name_each_missing_line_in_sku_order() -> None:
    found = domain.shortages(
        {"B": 3, "A": 1, "C": 2}, {"A": Level(5, 0), "B": Level(4, 1, 1), "C": Level(1, 0)}
    )
    assert found == [domain.Shortfall("B", 3, 2), domain.Shortfall("C", 2, 1)]
    assert domain.shortages({"X": 1}, {}) == [domain.Shortfall("X", 1, 0)]


@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50)), max_size=60))
def test_the_ledger_replays_to_the_sum_of_its_movements(deltas: list[tuple[int, int]]) -> None:
    movements = [Movement(on_hand, reserved) for on_hand, reserved in deltas]
    replayed = domain.replay(movements)
    assert replayed.on_hand == sum(d[0] for d in deltas)
    assert replayed.reserved == sum(d[1] for d in deltas)
    assert domain.replay(list(reversed(movements))) == replayed


def test_hold_times_must_be_future_bounded_and_zoned() -> None:
    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    assert domain.hold_is_valid(None, now) is None
    assert domain.hold_is_valid(now + timedelta(hours=2), now) is None
    assert "not in the future" in (domain.hold_is_valid(now, now) or "")
    assert "at most 7 days" in (domain.hold_is_valid(now + timedelta(days=8), now) or "")
    assert "time zone" in (domain.hold_is_valid(datetime(2026, 11, 22), now) or "")


def test_distances_are_great_circle_kilometres() -> None:
    amsterdam, utrecht = (52.3738, 4.8910), (52.0894, 5.1100)
    assert distance_km(*amsterdam, *amsterdam) == 0
    assert 34 < distance_km(*amsterdam, *utrecht) < 36


coordinates = st.tuples(st.floats(-89, 89), st.floats(-179, 179))
places = st.lists(
    st.tuples(st.text("abcdef", min_size=1, max_size=4), st.floats(-89, 89), st.floats(-179, 179)),
    max_size=12,
    unique_by=lambda p: p[0],
)


@given(places, coordinates, st.one_of(st.none(), st.floats(1, 20_000)))
def test_nearest_first_is_sorted_filtered_and_deterministic(
    found: list[tuple[str, float, float]], near: tuple[float, float], radius: float | None
) -> None:
    reach = domain.within_reach(found, near, radius)
    assert reach == domain.within_reach(reversed(found), near, radius)
    for location_id, lat, lon in found:
        distance = round(distance_km(*near, lat, lon), 3)
        assert reach.get(location_id) == (
            distance if radius is None or distance <= radius else None
        )
    ranked = domain.nearest_first([p[0] for p in found], reach)
    keys = [(reach[location_id], location_id) for location_id in ranked]
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert set(ranked) == set(reach)
    assert ranked == domain.nearest_first([p[0] for p in reversed(found)], reach)


@given(places)
def test_without_a_point_every_place_counts_by_location_id(
    found: list[tuple[str, float, float]],
) -> None:
    reach = domain.within_reach(found, None, None)
    assert reach == dict.fromkeys((p[0] for p in found), None)
    assert domain.nearest_first(reversed([p[0] for p in found]), reach) == sorted(reach)


@pytest.mark.parametrize("text", ["north", "52.3", "52.3,4.9,1", "91,0", "0,181", "nan,4"])
def test_a_point_must_be_lat_comma_lon_on_the_globe(text: str) -> None:
    with pytest.raises(ValueError, match="near"):
        domain.parse_point(text)


# Incoming stock

MONDAY = datetime(2026, 11, 23, 9, tzinfo=UTC)


def incoming(supply_id: str, promisable: int, days: int) -> domain.Incoming:
    return domain.Incoming(supply_id, promisable, MONDAY + timedelta(days=days))


def test_a_promise_draws_on_the_soonest_supplies_first_and_on_several_if_needed() -> None:
    supplies = [incoming("po-late", 10, 5), incoming("po-b", 2, 1), incoming("po-a", 2, 1)]
    draws = domain.draw_on_supplies(5, supplies)
    assert draws is not None
    assert [(d.supply_id, d.quantity) for d in draws] == [("po-a", 2), ("po-b", 2), ("po-late", 1)]
    assert domain.promised_at(draws) == MONDAY + timedelta(days=5)
    assert [(d.supply_id, d.quantity) for d in domain.draw_on_supplies(2, supplies) or []] == [
        ("po-a", 2)
    ]
    assert domain.draw_on_supplies(15, supplies) is None
    assert domain.draw_on_supplies(1, [incoming("po-empty", 0, 0)]) is None


@given(
    st.integers(1, 60),
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 30)), max_size=6),
)
def test_a_promise_never_draws_beyond_what_a_supply_can_promise(
    wanted: int, shapes: list[tuple[int, int]]
) -> None:
    supplies = [incoming(f"po-{n}", units, days) for n, (units, days) in enumerate(shapes)]
    draws = domain.draw_on_supplies(wanted, supplies)
    if draws is None:
        assert sum(s.promisable for s in supplies) < wanted
        return
    assert sum(d.quantity for d in draws) == wanted
    by_id = {s.supply_id: s for s in supplies}
    assert all(0 < d.quantity <= by_id[d.supply_id].promisable for d in draws)
    # Soonest first: a supply is only drawn on once every sooner one is used up.
    used = {d.supply_id for d in draws}
    last = max(by_id[d.supply_id].expected_at for d in draws)
    for supply in supplies:
        if supply.expected_at < last and supply.promisable and supply.supply_id in used:
            drawn = next(d.quantity for d in draws if d.supply_id == supply.supply_id)
            assert drawn == supply.promisable


def test_arrivals_go_to_the_promises_in_the_order_they_were_made() -> None:
    waiting = [domain.Waiting("p1", 3), domain.Waiting("p2", 4), domain.Waiting("p3", 2)]
    assert domain.assign_arrivals(5, waiting) == [("p1", 3), ("p2", 2)]
    assert domain.assign_arrivals(20, waiting) == [("p1", 3), ("p2", 4), ("p3", 2)]
    assert domain.assign_arrivals(0, waiting) == []


@given(st.integers(0, 50), st.lists(st.integers(1, 10), max_size=8))
def test_arrivals_never_exceed_the_units_or_what_a_promise_waits_for(
    units: int, outstanding: list[int]
) -> None:
    waiting = [domain.Waiting(f"p{n}", q) for n, q in enumerate(outstanding)]
    assigned = domain.assign_arrivals(units, waiting)
    assert sum(n for _, n in assigned) == min(units, sum(outstanding))
    # First come, first served: only the last promise given anything may be short.
    for promise_id, n in assigned[:-1]:
        assert n == next(w.outstanding for w in waiting if w.promise_id == promise_id)


def test_a_supply_counts_what_it_can_still_promise() -> None:
    supply = domain.SupplyState("wh", "TENT", quantity=10, received=4, promised=3)
    assert (supply.incoming, supply.promisable, supply.status.value) == (6, 3, "incoming")
    received = domain.SupplyState("wh", "TENT", quantity=10, received=10)
    assert (received.incoming, received.promisable, received.status.value) == (0, 0, "received")


def test_a_supply_change_may_not_strand_what_was_received_or_promised() -> None:
    untouched = domain.SupplyState("wh", "TENT", 10)
    domain.check_supply_change(None, untouched)
    domain.check_supply_change(untouched, domain.SupplyState("store", "CAP", 1))
    busy = domain.SupplyState("wh", "TENT", 10, received=4, promised=3)
    domain.check_supply_change(busy, domain.SupplyState("wh", "TENT", 7))
    with pytest.raises(StockRuleViolation, match="below the 4 units received plus the 3"):
        domain.check_supply_change(busy, domain.SupplyState("wh", "TENT", 6))
    with pytest.raises(StockRuleViolation, match="cannot change"):
        domain.check_supply_change(busy, domain.SupplyState("store", "TENT", 10))
    promised_only = domain.SupplyState("wh", "TENT", 10, promised=1)
    with pytest.raises(StockRuleViolation, match="cannot change"):
        domain.check_supply_change(promised_only, domain.SupplyState("wh", "CAP", 10))


def test_a_receipt_takes_in_at_most_what_is_still_incoming() -> None:
    supply = domain.SupplyState("wh", "TENT", 10, received=4)
    assert domain.units_to_receive(None, supply) == 6
    assert domain.units_to_receive(2, supply) == 2
    with pytest.raises(StockRuleViolation, match="only 6 of 10"):
        domain.units_to_receive(7, supply)
    with pytest.raises(StockRuleViolation, match="received already"):
        domain.units_to_receive(None, domain.SupplyState("wh", "TENT", 10, received=10))


def test_a_reject_code_corrects_on_hand_after_the_release() -> None:
    # After releasing 3: 10 on hand, 2 held by another reservation, 1 safety stock.
    after_release = Level(10, 2, 1)
    not_there = domain.correction_delta(after_release, StockCorrection.NOT_IN_STOCK, 3)
    assert not_there == -8
    assert Level(10 + not_there, 2, 1).available == 0
    assert domain.correction_delta(after_release, StockCorrection.DAMAGED, 3) == -3
