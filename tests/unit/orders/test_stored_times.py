"""An order's fulfillments load as JSON, whose timestamps are in the database session's time
zone: they come back in UTC, as asyncpg gives every other timestamp."""

from __future__ import annotations

from datetime import UTC, datetime

from services.orders.repository import _Stored


def test_a_time_in_another_zone_comes_back_in_utc() -> None:
    stored = _Stored({"ready_at": "2026-11-28T18:00:00.123456+09:00", "hold_until": None})
    ready_at = stored.moment("ready_at")
    assert ready_at == datetime(2026, 11, 28, 9, 0, 0, 123456, tzinfo=UTC)
    assert ready_at is not None
    assert ready_at.tzinfo is UTC  # not +09:00, which compares equal but prints otherwise
    assert stored.moment("hold_until") is None
