"""Orders' figures for the command center (DESIGN.md §8.3): orders per minute, the orders and
fulfillments that wait too long, and each store's work. Read-only, each a few aggregate
statements over indexes (migration 0003); the gateway puts them together with the other
services' figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.contracts.operations import (
    ExceptionItem,
    ExceptionKind,
    LocationsWork,
    LocationWork,
    OperationsExceptions,
    OrderCounts,
    OrdersInMinute,
)
from services.contracts.orders import FulfillmentStatus
from services.infrastructure.service import UnitOfWorkDep

router = APIRouter(prefix="/operations", tags=["operations"])

Minutes = Annotated[int, Query(ge=5, le=1440, description="The window: the last N minutes.")]
PendingSeconds = Annotated[
    int, Query(ge=1, le=86_400, description="An order pending longer than this is listed.")
]

EXCEPTIONS_PER_KIND = 200
"""At most this many of each kind, the longest waiting first."""


@router.get("/orders")
async def order_counts(uow: UnitOfWorkDep, minutes: Minutes = 60) -> OrderCounts:
    """Orders created in the last `minutes`, per minute of creation, channel and current status."""
    async with uow:
        return OrderCounts(
            window_minutes=minutes,
            orders_per_minute=await orders_per_minute(uow.connection, minutes),
        )


@router.get("/exceptions")
async def exceptions(
    request: Request, uow: UnitOfWorkDep, pending_seconds: PendingSeconds = 30
) -> OperationsExceptions:
    """Orders pending too long, pickups past their deadline, and partner fulfillments not
    accepted in time (from half the accept window on), the longest waiting first."""
    accept_window: timedelta = request.app.state.policy.partner_accept_window
    async with uow:
        conn = uow.connection
        now = await _now(conn)
        items = [
            *await pending_too_long(conn, now, timedelta(seconds=pending_seconds)),
            *await partners_not_accepted(conn, now, accept_window),
            *await pickups_overdue(conn, now),
        ]
    return OperationsExceptions(generated_at=now, items=tuple(items))


@router.get("/stores")
async def store_work(uow: UnitOfWorkDep, minutes: Minutes = 60) -> LocationsWork:
    """Each store's fulfillments created, rejected and made ready in the last `minutes`; stores
    without any are left out (the gateway lists every store)."""
    async with uow:
        return LocationsWork(window_minutes=minutes, items=await stores(uow.connection, minutes))


# Queries


async def _now(conn: AsyncConnection) -> datetime:
    # The database's clock: the one created_at and updated_at are written with.
    moment: datetime = (await conn.execute(text("SELECT now()"))).scalar_one()
    return moment


async def orders_per_minute(conn: AsyncConnection, minutes: int) -> tuple[OrdersInMinute, ...]:
    rows = await conn.execute(
        text(
            "SELECT date_trunc('minute', created_at, 'UTC') AS minute, channel,"
            " status, count(*) AS orders FROM orders"
            " WHERE created_at >= now() - make_interval(mins => :minutes)"
            " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ),
        {"minutes": minutes},
    )
    return tuple(
        OrdersInMinute(
            minute=row.minute.astimezone(UTC),
            channel=row.channel,
            status=row.status,
            orders=row.orders,
        )
        for row in rows
    )


async def pending_too_long(
    conn: AsyncConnection, now: datetime, longer_than: timedelta
) -> list[ExceptionItem]:
    rows = await conn.execute(
        text(
            "SELECT order_id, channel, method, created_at FROM orders"
            " WHERE status = 'pending' AND created_at <= :before"
            " ORDER BY created_at LIMIT :limit"
        ),
        {"before": now - longer_than, "limit": EXCEPTIONS_PER_KIND},
    )
    return [
        ExceptionItem(
            kind=ExceptionKind.PENDING_TOO_LONG,
            subject=row.order_id,
            service="orders",
            detail=f"{row.method} order on {row.channel} pending for {_span(now - row.created_at)}"
            ": routing or its reservation has not finished",
            since=row.created_at,
        )
        for row in rows
    ]


async def partners_not_accepted(
    conn: AsyncConnection, now: datetime, window: timedelta
) -> list[ExceptionItem]:
    """Dropship fulfillments reserved (a reserved one's `updated_at` is when its reservation
    held, see db.unaccepted_partner_fulfillments) for half the accept window or longer: at
    risk, and past the window once the sweep is behind."""
    rows = await conn.execute(
        text(
            "SELECT f.fulfillment_id, f.order_id, f.location_id, f.updated_at FROM fulfillments f"
            " WHERE f.location_id IN (SELECT location_id FROM locations WHERE type = 'dropship')"
            " AND f.location_type = 'dropship' AND f.status = 'reserved'"
            " AND f.updated_at <= :before"
            " ORDER BY f.updated_at, f.fulfillment_id LIMIT :limit"
        ),
        {"before": now - window / 2, "limit": EXCEPTIONS_PER_KIND},
    )
    items = []
    for row in rows:
        deadline = row.updated_at + window
        waiting = f"not accepted by {row.location_id} in {_span(now - row.updated_at)}"
        if deadline <= now:
            detail = (
                f"{waiting}, past the {_span(window)} accept window: withdrawn at the next sweep"
            )
        else:
            detail = (
                f"{waiting}: at risk, withdrawn and routed elsewhere in {_span(deadline - now)}"
            )
        items.append(
            ExceptionItem(
                kind=ExceptionKind.PARTNER_NOT_ACCEPTED,
                subject=row.fulfillment_id,
                service="orders",
                detail=f"{detail} (order {row.order_id})",
                since=row.updated_at,
            )
        )
    return items


async def pickups_overdue(conn: AsyncConnection, now: datetime) -> list[ExceptionItem]:
    """Ready for pickup past the deadline: the expiry sweep has not caught them yet."""
    rows = await conn.execute(
        text(
            "SELECT fulfillment_id, order_id, location_id, pickup_deadline FROM fulfillments"
            " WHERE status = 'ready_for_pickup' AND pickup_deadline <= :now"
            " ORDER BY pickup_deadline LIMIT :limit"
        ),
        {"now": now, "limit": EXCEPTIONS_PER_KIND},
    )
    return [
        ExceptionItem(
            kind=ExceptionKind.PICKUP_OVERDUE,
            subject=row.fulfillment_id,
            service="orders",
            detail=f"not collected at {row.location_id}, {_span(now - row.pickup_deadline)} past "
            f"its pickup deadline (order {row.order_id}); the expiry sweep has not caught it",
            since=row.pickup_deadline,
        )
        for row in rows
    ]


# A store as orders' projection knows it: the (location_id, ...) indexes are then walked once per
# store, never across every location's rows.
_STORES = "location_id IN (SELECT location_id FROM locations WHERE type = 'store')"


async def stores(conn: AsyncConnection, minutes: int) -> tuple[LocationWork, ...]:
    window = {"minutes": minutes}
    since = "now() - make_interval(mins => :minutes)"
    created = await conn.execute(
        text(
            "SELECT location_id, status, count(*) AS n FROM fulfillments"
            f" WHERE {_STORES} AND created_at >= {since} GROUP BY 1, 2"
        ),
        window,
    )
    rejected = await conn.execute(
        text(
            "SELECT location_id, count(*) AS n FROM fulfillments"
            f" WHERE {_STORES} AND status = 'rejected' AND updated_at >= {since} GROUP BY 1"
        ),
        window,
    )
    # Clamped at 0: `ready_at` is the application's clock, `created_at` the database's.
    ready = await conn.execute(
        text(
            "SELECT location_id, percentile_cont(0.5) WITHIN GROUP"
            " (ORDER BY greatest(extract(epoch FROM ready_at - created_at), 0) / 60) AS median"
            f" FROM fulfillments WHERE {_STORES} AND ready_at >= {since} GROUP BY 1"
        ),
        window,
    )
    by_status: dict[str, dict[FulfillmentStatus, int]] = {}
    for row in created:
        by_status.setdefault(row.location_id, {})[FulfillmentStatus(row.status)] = row.n
    rejects = {row.location_id: row.n for row in rejected}
    medians = {row.location_id: round(row.median, 2) for row in ready}
    return tuple(
        LocationWork(
            location_id=location_id,
            fulfillments=sum(by_status.get(location_id, {}).values()),
            by_status=by_status.get(location_id, {}),
            rejects=rejects.get(location_id, 0),
            median_minutes_to_ready=medians.get(location_id),
        )
        for location_id in sorted(set(by_status) | set(rejects) | set(medians))
    )


def _span(span: timedelta) -> str:
    """`42 s`, `17 min`, `3.5 h`."""
    seconds = max(span.total_seconds(), 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
