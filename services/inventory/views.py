"""Reads of incoming stock, promises and the catalog: rows to the contract's shapes, and the
look-ups routes answer with. Views never change anything and never import handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
