"""Availability, the hot read, on raw asyncpg: one prepared statement on a small pool of its
own, outside any unit of work.

Measured on 2 cores (a sku at 8 locations, 64 connections of wrk): through a unit of work the
read took a transaction (BEGIN, two statements, ROLLBACK: four round trips through SQLAlchemy's
adapter), and under load the shared pool opened and closed its overflow connections all the
time. One statement needs no transaction (a single statement sees one snapshot), and a pool of
its own keeps its connections under load.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from services.infrastructure.database import DRIVER_AWAY

# One row per sku (in the order asked for): `sku, name, levels, incoming`. The product's name;
# every level of the sku as `(location_id, name, type, lat, lon, on_hand, reserved,
# safety_stock)`; the supplies of it with units left to promise as `(supply_id, location_id,
# lat, lon, promisable, expected_at)`; levels and supplies at locations of one type when $2 is
# given. Levels and locations are read on every request, never remembered: an answer is as
# current as the database (holding locations in memory measured no faster: 100 us a round trip
# either way, as the check that they did not change reads the table too).
AVAILABILITY = """
SELECT k.sku, p.name,
    ARRAY(
        SELECT ROW(l.location_id, l.name, l.type, l.lat, l.lon, s.on_hand, s.reserved,
            s.safety_stock)
        FROM stock_levels s JOIN locations l ON l.location_id = s.location_id
        WHERE s.sku = k.sku AND ($2::varchar IS NULL OR l.type = $2::varchar)
    ) AS levels,
    ARRAY(
        SELECT ROW(s.supply_id, l.location_id, l.lat, l.lon,
            s.quantity - s.received - s.promised, s.expected_at)
        FROM supplies s JOIN locations l ON l.location_id = s.location_id
        WHERE s.sku = k.sku AND s.quantity - s.received - s.promised > 0
            AND ($2::varchar IS NULL OR l.type = $2::varchar)
    ) AS incoming
FROM unnest($1::varchar[]) WITH ORDINALITY AS k(sku, position)
LEFT JOIN products p ON p.sku = k.sku
ORDER BY k.position
"""


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset between reads: they change no session state, so a connection goes back
    to the pool without asyncpg's reset statement (a round trip on every release)."""


@contextlib.asynccontextmanager
async def open_read_pool(url: URL, size: int) -> AsyncIterator[asyncpg.Pool]:
    """A pool of up to `size` connections to the service's database (the engine's URL), for
    reads outside a unit of work; closed on leaving."""
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    # Connections open on first use (the service starts while its database is still away) and
    # then stay: asyncpg closes one only after 5 idle minutes.
    pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=size,
        reset=_keep_session,
        # PostgreSQL otherwise plans the statement anew on every execution (a custom plan
        # looks cheaper for `$2 IS NULL OR ...`): measured, 235 instead of 119 us a round trip.
        # The generic plan is made again whenever the tables' statistics change.
        server_settings={"plan_cache_mode": "force_generic_plan"},
    )
    try:
        yield pool
    finally:
        await pool.close()


async def availability(
    pool: asyncpg.Pool, skus: Sequence[str], location_type: str | None
) -> list[Any]:
    """Per sku (`skus` without repeats), its name, levels and promisable supplies."""
    try:
        # asyncpg prepares the statement once per connection and keeps it (its statement cache).
        async with pool.acquire() as connection:
            return await connection.fetch(AVAILABILITY, skus, location_type)
    except DRIVER_AWAY as exc:
        # Answered as every other route answers a database that is away (503, retry shortly):
        # the problem handlers know SQLAlchemy's errors and ConnectionError, not asyncpg's.
        raise ConnectionError(f"database: {exc}") from exc
