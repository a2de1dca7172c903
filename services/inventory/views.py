"""Reads of availability, incoming stock, promises and the catalog: rows to the contract's
shapes, and the look-ups routes answer with. Views never change anything and never import
handlers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.contracts.inventory import (
    Product,
    ProductPage,
    PromiseDraw,
    PromiseStatus,
    StockLine,
    StockPromise,
    Supply,
    SupplyStatus,
)
from services.infrastructure.errors import NotFound
from services.inventory import db, domain
from services.inventory.db.availability import availability as read_availability


def supply_state(row: Any) -> domain.SupplyState:
    return domain.SupplyState(row.location_id, row.sku, row.quantity, row.received, row.promised)


def supply_view(row: Any) -> Supply:
    state = supply_state(row)
    return Supply(
        supply_id=row.supply_id,
        location_id=row.location_id,
        sku=row.sku,
        quantity=row.quantity,
        received=row.received,
        promised=row.promised,
        promisable=state.promisable,
        expected_at=row.expected_at,
        status=state.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def promise_view(row: Any, lines: dict[str, int], draws: Sequence[Any]) -> StockPromise:
    return StockPromise(
        promise_id=row.promise_id,
        order_id=row.order_id,
        fulfillment_id=row.fulfillment_id,
        location_id=row.location_id,
        status=PromiseStatus(row.status),
        lines=tuple(StockLine(sku=sku, quantity=q) for sku, q in sorted(lines.items())),
        draws=tuple(
            PromiseDraw(supply_id=d.supply_id, sku=d.sku, quantity=d.quantity, arrived=d.arrived)
            for d in draws
        ),
        promised_at=row.promised_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def supply(conn: AsyncConnection, supply_id: str) -> Supply:
    row = await db.get_supply(conn, supply_id)
    if row is None:
        raise NotFound(f"supply {supply_id!r} does not exist")
    return supply_view(row)


async def supplies(
    conn: AsyncConnection,
    skus: Sequence[str] | None,
    location_id: str | None,
    status: SupplyStatus | None,
) -> list[Supply]:
    rows = await db.list_supplies(conn, skus, location_id, status.value if status else None)
    return [supply_view(row) for row in rows]


async def promise(conn: AsyncConnection, promise_id: str) -> StockPromise:
    row = await db.get_promise(conn, promise_id)
    if row is None:
        raise NotFound(f"promise {promise_id!r} does not exist")
    lines = await db.promise_lines(conn, promise_id)
    return promise_view(row, lines, await db.promise_draws(conn, promise_id))


async def products(conn: AsyncConnection, typed: str, limit: int) -> ProductPage:
    """Products whose sku starts with `typed`, or whose name has a word that does, by sku."""
    search = domain.SearchPatterns.of(typed)
    if search is None:
        return ProductPage(items=())
    rows = await db.search_products(conn, search.sku_prefix, search.word_start, limit)
    return ProductPage(
        items=tuple(Product(sku=r.sku, name=r.name, updated_at=r.updated_at) for r in rows)
    )


async def availability(
    pool: asyncpg.Pool,
    skus: Sequence[str],
    near: tuple[float, float] | None,
    radius_km: float | None,
    location_type: str | None,
) -> bytes:
    """Per sku: its name, total available and every location holding it, nearest first within
    a radius; and the stock on its way there that can still be promised, soonest first. As the
    JSON of `AvailabilityResponse`."""
    rows = await read_availability(pool, list(dict.fromkeys(skus)), location_type)
    return availability_json(rows, near, radius_km)


# The answer is built as plain dicts and encoded once, not validated again: what this service
# read itself needs no validation. Measured for a sku at 7 locations with 4 supplies: 31 us,
# against 82 us to build the contract's models, have FastAPI validate them again and dump them.
# A test holds it equal, byte for byte, to what `AvailabilityResponse` writes.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def availability_json(
    rows: Sequence[Any], near: tuple[float, float] | None, radius_km: float | None
) -> bytes:
    """`rows` as `db.availability.availability` reads them, as the JSON of the answer."""
    places = {}
    for _, _, levels, supplies in rows:
        for location_id, _, _, lat, lon, *_ in levels:
            places[location_id] = (location_id, lat, lon)
        for _, location_id, lat, lon, *_ in supplies:
            places[location_id] = (location_id, lat, lon)
    reach = domain.within_reach(places.values(), near, radius_km)
    items = []
    for sku, name, levels, supplies in rows:
        by_location = {level[0]: level for level in levels}
        locations = []
        total = 0
        for location_id in domain.nearest_first(by_location, reach):
            _, location_name, location_type, _, _, on_hand, reserved, safety_stock = by_location[
                location_id
            ]
            available = domain.available(on_hand, reserved, safety_stock)
            total += available
            locations.append(
                {
                    "location_id": location_id,
                    "name": location_name,
                    "type": location_type,
                    "available": available,
                    "on_hand": on_hand,
                    "reserved": reserved,
                    "distance_km": reach[location_id],
                }
            )
        # Soonest first, then nearest (as locations are ordered), then by supply id.
        on_the_way = sorted(
            (
                (expected_at, reach[location_id] or 0.0, location_id, supply_id, promisable)
                for supply_id, location_id, _, _, promisable, expected_at in supplies
                if location_id in reach
            ),
        )
        incoming = [
            {
                "location_id": location_id,
                "quantity": promisable,
                "expected_at": _instant(expected_at),
            }
            for expected_at, _, location_id, _, promisable in on_the_way
        ]
        items.append(
            {
                "sku": sku,
                "name": name,
                "total_available": total,
                "locations": locations,
                "incoming": incoming,
                "next_available_at": incoming[0]["expected_at"] if incoming else None,
            }
        )
    return _encode({"items": items}).encode()


def _instant(moment: datetime) -> str:
    """A time as pydantic writes it: ISO 8601, UTC as `Z` (asyncpg reads timestamptz in UTC)."""
    return moment.isoformat().replace("+00:00", "Z")
