"""Inventory's internal HTTP API (the gateway fronts it): thin routes over the handlers."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Header, Query, Request, Response

from services.contracts.base import Identifier, Sku
from services.contracts.inventory import (
    AvailabilityResponse,
    Location,
    LocationIn,
    LocationType,
    NearQuery,
    Product,
    ProductIn,
    ProductPage,
    ProductPageSize,
    ProductSearch,
    ReceiveIn,
    Reconciliation,
    Reservation,
    ReservationStatus,
    StockAdjustmentIn,
    StockFeedIn,
    StockFeedResult,
    StockLevel,
    StockLevelIn,
    StockLine,
    StockPromise,
    Supply,
    SupplyIn,
    SupplyStatus,
)
from services.infrastructure.errors import PROBLEM_RESPONSES, InvalidRequest, NotFound
from services.infrastructure.service import UnitOfWorkDep
from services.inventory import db, domain, handlers, views

router = APIRouter(responses=PROBLEM_RESPONSES)


UoW = UnitOfWorkDep


def _location(row: db.LocationRow) -> Location:
    return Location.model_validate(row.model_dump(exclude={"feed_sequence"}))


@router.post("/locations", tags=["locations"])
async def put_location(body: LocationIn, uow: UoW) -> Location:
    """Create or update a location (warehouse, store or dropship partner)."""
    async with uow:
        return _location(await handlers.upsert_location(body, uow))


@router.get("/locations", tags=["locations"])
async def list_locations(uow: UoW, type: LocationType | None = None) -> list[Location]:
    """Every location, optionally of one type."""
    async with uow:
        rows = await db.list_locations(uow.connection, type.value if type else None)
        return [_location(row) for row in rows]


@router.get("/locations/{location_id}", tags=["locations"])
async def get_location(location_id: Identifier, uow: UoW) -> Location:
    """One location."""
    async with uow:
        row = await db.get_location(uow.connection, location_id)
        if row is None:
            raise NotFound(f"location {location_id!r} does not exist")
        return _location(row)


@router.post("/stock-levels", tags=["stock"])
async def set_stock_level(body: StockLevelIn, uow: UoW) -> StockLevel:
    """Set an absolute stock level (creates it if needed); never below what is reserved."""
    async with uow:
        return await handlers.set_stock_level(body, uow)


@router.get("/stock-levels", tags=["stock"])
async def list_stock_levels(
    uow: UoW,
    location_id: Identifier | None = None,
    sku: Annotated[list[Sku] | None, Query(max_length=100)] = None,
) -> list[StockLevel]:
    """Stock levels, filtered by location and/or skus (orders asks for the current levels of an
    order's skus here when its own projection cannot place the order)."""
    async with uow:
        rows = await db.list_levels(uow.connection, location_id, sku)
        return [handlers.stock_level_view(row) for row in rows]


@router.post("/locations/{location_id}/stock-adjustments", tags=["stock"])
async def adjust_stock(
    location_id: Identifier,
    body: StockAdjustmentIn,
    uow: UoW,
    idempotency_key: IdempotencyKey = None,
) -> StockLevel:
    """A receipt, POS sale, count correction or damage; recorded in the movement ledger."""
    async with uow:
        return await handlers.adjust_stock(location_id, body, uow, idempotency_key)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=100,
        description="Repeat a request safely (the movement ledger keeps the key).",
    ),
]


@router.put("/locations/{location_id}/stock-feed", tags=["stock"])
async def put_stock_feed(location_id: Identifier, body: StockFeedIn, uow: UoW) -> StockFeedResult:
    """A dropship partner's absolute stock feed; older sequences are ignored."""
    async with uow:
        return await handlers.apply_stock_feed(location_id, body, uow)


async def read_pool(request: Request) -> asyncpg.Pool:
    """FastAPI dependency: the pool of connections for reads outside a unit of work (async, as
    FastAPI runs a plain function in a worker thread: measured, 6% of a read's CPU)."""
    pool: asyncpg.Pool = request.app.state.read_pool
    return pool


ReadPool = Annotated[asyncpg.Pool, Depends(read_pool)]


@router.get(
    "/availability",
    tags=["stock"],
    response_model=AvailabilityResponse,
    openapi_extra={"parameters": [NearQuery.openapi_parameter()]},
)
async def availability(
    pool: ReadPool,
    sku: Annotated[list[Sku], Query(min_length=1, max_length=100)],
    nearby: Annotated[NearQuery, Query(include_in_schema=False)],
    location_type: LocationType | None = None,
) -> Response:
    """Available units per sku and location, nearest first when `near` is given."""
    try:
        point = domain.parse_point(nearby.near) if nearby.near else None
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    # The view answers with the response's JSON itself (see views.availability_json).
    body = await views.availability(
        pool, sku, point, nearby.radius_km, location_type.value if location_type else None
    )
    return Response(body, media_type="application/json")


@router.post("/incoming-stock", tags=["incoming stock"])
async def put_supply(body: SupplyIn, uow: UoW) -> Supply:
    """Create or update a supply on its way (a purchase order or transfer) by its own id; its
    quantity never below what was received plus what is promised to backorders."""
    async with uow:
        return await handlers.upsert_supply(body, uow)


@router.get("/incoming-stock", tags=["incoming stock"])
async def list_supplies(
    uow: UoW,
    sku: Annotated[list[Sku] | None, Query(max_length=100)] = None,
    location_id: Identifier | None = None,
    status: SupplyStatus | None = None,
) -> list[Supply]:
    """Supplies, soonest first, filtered by skus, location and status; with what each can still
    promise (orders plans backorders with it). At most 1000 when no sku narrows the list."""
    async with uow:
        return await views.supplies(uow.connection, sku, location_id, status)


@router.get("/incoming-stock/{supply_id}", tags=["incoming stock"])
async def get_supply(supply_id: Identifier, uow: UoW) -> Supply:
    """One supply."""
    async with uow:
        return await views.supply(uow.connection, supply_id)


@router.post("/incoming-stock/{supply_id}/receive", tags=["incoming stock"])
async def receive_supply(
    supply_id: Identifier,
    uow: UoW,
    body: ReceiveIn | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Supply:
    """Units of a supply arrive (all still incoming, without `quantity`): a receipt in the
    ledger; backorders promised on it are reserved in the order they were promised."""
    async with uow:
        return await handlers.receive_supply(supply_id, body, uow, idempotency_key)


@router.get("/promises/{promise_id}", tags=["incoming stock"])
async def get_promise(promise_id: Identifier, uow: UoW) -> StockPromise:
    """One promise of incoming stock, with the supplies it draws on and what of them arrived."""
    async with uow:
        return await views.promise(uow.connection, promise_id)


@router.post("/products", tags=["products"])
async def put_product(body: ProductIn, uow: UoW) -> Product:
    """Name a product by its sku (create or rename it)."""
    async with uow:
        return await handlers.upsert_product(body, uow)


@router.get("/products", tags=["products"])
async def find_products(
    uow: UoW,
    q: Annotated[ProductSearch, Query()],
    limit: Annotated[ProductPageSize, Query()] = 20,
) -> ProductPage:
    """Products whose sku starts with `q`, or whose name has a word that does (in any case),
    by sku."""
    async with uow:
        return await views.products(uow.connection, q, limit)


@router.get("/reservations/{reservation_id}", tags=["reservations"])
async def get_reservation(reservation_id: Identifier, uow: UoW) -> Reservation:
    """One reservation with its lines."""
    async with uow:
        row = await db.get_reservation(uow.connection, reservation_id)
        if row is None:
            raise NotFound(f"reservation {reservation_id!r} does not exist")
        lines = await db.reservation_lines(uow.connection, reservation_id)
        return Reservation(
            reservation_id=row.reservation_id,
            order_id=row.order_id,
            fulfillment_id=row.fulfillment_id,
            location_id=row.location_id,
            status=ReservationStatus(row.status),
            lines=tuple(StockLine(sku=s, quantity=q) for s, q in lines.items()),
            hold_until=row.hold_until,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@router.get("/reconciliation", tags=["stock"])
async def reconciliation(uow: UoW) -> Reconciliation:
    """Check that the movement ledger adds up to every stock level."""
    async with uow:
        checked, mismatches = await db.mismatched_levels(uow.connection)
        return Reconciliation(levels_checked=checked, mismatches=tuple(mismatches))
