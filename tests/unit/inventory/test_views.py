"""The availability answer, built as plain JSON without the pydantic models: it must be exactly
what `AvailabilityResponse` would write, and keep the rules of the answer (nearest first within
the radius, soonest supply first, totals)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contracts.inventory import AvailabilityResponse, LocationType
from services.inventory import domain, views
from services.inventory.views import availability_json

location_ids = st.text("abcdef", min_size=1, max_size=3)
# Any text a database column holds: no NUL, no lone surrogates; quotes, controls and emoji.
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@st.composite
def rows(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Rows as `db.availability.availability` reads them: per sku its name, levels with their
    locations, and supplies with units left to promise."""
    places = draw(
        st.dictionaries(
            location_ids,
            st.tuples(
                texts,
                st.sampled_from([t.value for t in LocationType]),
                st.floats(-89, 89),
                st.floats(-179, 179),
            ),
            max_size=8,
        )
    )
    skus = draw(st.lists(st.from_regex(r"\A[A-Z0-9][A-Z0-9-]{0,8}\Z"), max_size=4, unique=True))
    found = []
    for sku in skus:
        levels = [
            (location_id, name, kind, lat, lon, on_hand, reserved, safety_stock)
            for location_id, (name, kind, lat, lon) in places.items()
            if draw(st.booleans())
            for on_hand in [draw(st.integers(0, 1000))]
            for reserved in [draw(st.integers(0, on_hand))]
            for safety_stock in [draw(st.integers(0, 50))]
        ]
        supplies = (
            draw(
                st.lists(
                    st.tuples(
                        st.text("0123456789", min_size=1, max_size=4),
                        st.sampled_from(sorted(places)),
                        st.integers(1, 500),
                        moments,
                    ),
                    max_size=5,
                    unique_by=lambda s: s[0],
                )
            )
            if places
            else []
        )
        incoming = [
            (supply_id, location_id, places[location_id][2], places[location_id][3], n, at)
            for supply_id, location_id, n, at in supplies
        ]
        found.append((sku, draw(st.none() | texts), levels, incoming))
    return found


near_points = st.none() | st.tuples(st.floats(-89, 89), st.floats(-179, 179))


@given(rows(), near_points, st.none() | st.floats(1, 20_000))
def test_the_answer_is_what_the_contract_model_writes(
    found: list[tuple[Any, ...]], near: tuple[float, float] | None, radius: float | None
) -> None:
    body = availability_json(found, near, None if near is None else radius)
    assert AvailabilityResponse.model_validate_json(body).model_dump_json().encode() == body


@given(rows(), near_points, st.none() | st.floats(1, 20_000))
def test_nearest_first_within_the_radius_soonest_supply_first(
    found: list[tuple[Any, ...]], near: tuple[float, float] | None, radius: float | None
) -> None:
    radius = None if near is None else radius
    answer = AvailabilityResponse.model_validate_json(availability_json(found, near, radius))
    assert [item.sku for item in answer.items] == [row[0] for row in found]
    for item, (_, name, levels, supplies) in zip(answer.items, found, strict=True):
        assert item.name == name
        places = [(lv[0], lv[3], lv[4]) for lv in levels] + [(s[1], s[2], s[3]) for s in supplies]
        reach = domain.within_reach(places, near, radius)
        assert [loc.location_id for loc in item.locations] == domain.nearest_first(
            (lv[0] for lv in levels), reach
        )
        assert all(loc.distance_km == reach[loc.location_id] for loc in item.locations)
        assert item.total_available == sum(loc.available for loc in item.locations)
        by_location = {lv[0]: lv for lv in levels}
        for loc in item.locations:
            level = by_location[loc.location_id]
            assert (loc.on_hand, loc.reserved) == (level[5], level[6])
            assert loc.available == domain.Level(level[5], level[6], level[7]).available
        assert len(item.incoming) == sum(1 for s in supplies if s[1] in reach)
        keys = [(s.expected_at, reach[s.location_id] or 0.0) for s in item.incoming]
        assert keys == sorted(keys)
        assert item.next_available_at == (item.incoming[0].expected_at if item.incoming else None)


def test_a_time_is_written_as_pydantic_writes_it() -> None:
    whole_second = datetime(2026, 12, 5, 10, tzinfo=UTC)
    found = [
        (
            "TEE",
            None,
            [],
            [
                ("1", "a", 52.0, 4.0, 3, whole_second),
                ("2", "a", 52.0, 4.0, 4, whole_second + timedelta(microseconds=1)),
            ],
        )
    ]
    body = availability_json(found, None, None)
    assert b'"expected_at":"2026-12-05T10:00:00Z"' in body
    assert b'"expected_at":"2026-12-05T10:00:00.000001Z"' in body
    assert AvailabilityResponse.model_validate_json(body).model_dump_json().encode() == body


class AwayPool:
    """A pool whose database is away: acquiring a connection fails as asyncpg fails."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        raise self.error
        yield


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        FileNotFoundError(2, "No such file or directory"),  # a Unix socket that is not there
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
    ],
)
async def test_a_database_that_is_away_is_a_connection_error(error: Exception) -> None:
    """The problem handlers answer a ConnectionError with 503 and a retry, as for SQLAlchemy's
    errors on every other route."""
    with pytest.raises(ConnectionError, match="database"):
        await views.availability(AwayPool(error), ["TEE"], None, None, None)  # type: ignore[arg-type]
