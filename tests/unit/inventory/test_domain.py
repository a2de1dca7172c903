"""Inventory rules, pure: examples for the named cases, properties for the invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contracts.inventory import AdjustmentReason
from services.inventory import domain
from services.inventory.domain import Candidate, Level, Movement, StockRuleViolation
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
candidates = st.lists(
    st.builds(
        Candidate,
        st.text("abcdef", min_size=1, max_size=4),
        st.floats(-89, 89),
        st.floats(-179, 179),
    ),
    max_size=12,
    unique_by=lambda c: c.location_id,
)


@given(candidates, coordinates, st.one_of(st.none(), st.floats(1, 20_000)))
def test_nearest_first_is_sorted_filtered_and_deterministic(
    found: list[Candidate], near: tuple[float, float], radius: float | None
) -> None:
    ranked = domain.nearest_first(found, near, radius)
    distances = [d for _, d in ranked]
    assert all(d is not None for d in distances)
    keys = [(d, c.location_id) for c, d in ranked]
    assert keys == sorted(keys)  # type: ignore[type-var]
    if radius is not None:
        assert all(d is not None and d <= radius for d in distances)
    assert ranked == domain.nearest_first(list(reversed(found)), near, radius)


@pytest.mark.parametrize("text", ["north", "52.3", "52.3,4.9,1", "91,0", "0,181", "nan,4"])
def test_a_point_must_be_lat_comma_lon_on_the_globe(text: str) -> None:
    with pytest.raises(ValueError, match="near"):
        domain.parse_point(text)
