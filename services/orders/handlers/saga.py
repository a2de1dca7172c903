"""The saga's reactions to inventory, the projections routing reads, and expiry."""

from __future__ import annotations

from typing import Any

from services.contracts.inventory import (
    AvailabilityChanged,
    LocationChanged,
    ReservationExpired,
    StockCommitRejected,
    StockReservationRejected,
    StockReserved,
)
from services.contracts.orders import (
    FulfillmentRejected,
    OrderExpired,
    OrderStatus,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.metrics import ORDERS_UNROUTABLE
from services.orders import db, domain
from services.orders.handlers.common import (
    F,
    Policy,
    locked_order,
    log,
    now,
    order_for_event,
)
from services.orders.handlers.planning import (
    location_values,
    reject_order,
    release,
    reroute,
    route,
    settle,
)

# Saga: inventory's answers


async def on_stock_reserved(event: StockReserved, uow: UnitOfWork) -> None:
    order = await order_for_event(uow, event.order_id, event)
    if order is None:
        return
    f = await db.get_fulfillment(uow.connection, event.reservation_id)
    if f is None or F(f.status) is not F.PENDING:
        # Cancelled while the reservation was in flight: its ReleaseStock is already queued
        # behind the ReserveStock on the same partition, so inventory gives the stock back.
        return
    await db.update_fulfillment(uow.connection, f.fulfillment_id, status=F.RESERVED.value)
    await settle(uow, order)


async def on_reservation_rejected(
    event: StockReservationRejected, uow: UnitOfWork, policy: Policy
) -> None:
    order = await order_for_event(uow, event.order_id, event)
    if order is None:
        return
    f = await db.get_fulfillment(uow.connection, event.reservation_id)
    if f is None or F(f.status) is not F.PENDING:
        return
    await db.update_fulfillment(
        uow.connection, f.fulfillment_id, status=F.REJECTED.value, status_reason=event.detail
    )
    uow.emit(
        FulfillmentRejected(
            order_id=order.order_id,
            fulfillment_id=f.fulfillment_id,
            location_id=f.location_id,
            reason=f"reservation rejected: {event.detail}",
        )
    )
    await reroute(uow, order, f, f"reservation rejected at {f.location_id}: {event.detail}", policy)


async def on_reservation_expired(event: ReservationExpired, uow: UnitOfWork) -> None:
    order = await order_for_event(uow, event.order_id, event)
    if order is None:
        return
    f = await db.get_fulfillment(uow.connection, event.reservation_id)
    if f is None or F(f.status) not in domain.HOLDING:
        return
    await db.update_fulfillment(
        uow.connection, f.fulfillment_id, status=F.EXPIRED.value, status_reason="hold expired"
    )
    await expire(uow, order, "the hold expired before collection")


async def expire(uow: UnitOfWork, order: Any, reason: str) -> None:
    if OrderStatus(order.status) in domain.TERMINAL_ORDER:
        return
    await release(uow, order, F.EXPIRED, reason)
    await db.set_order_status(uow.connection, order.order_id, OrderStatus.EXPIRED.value, reason)
    uow.emit(OrderExpired(order_id=order.order_id, reason=reason))


async def on_commit_rejected(event: StockCommitRejected, uow: UnitOfWork) -> None:
    log.error(
        "inventory refused to commit %s of order %s: %s",
        event.reservation_id,
        event.order_id,
        event.detail,
    )


async def project_availability(event: AvailabilityChanged, uow: UnitOfWork) -> None:
    values = {
        "sku": event.sku,
        "location_id": event.location_id,
        "available": event.available,
        "version": event.version,
    }
    await db.project_availability(uow.connection, values)
    await uow.commit()


async def project_location(event: LocationChanged, uow: UnitOfWork) -> None:
    await db.project_location(uow.connection, location_values(event))
    await uow.commit()


async def expire_overdue_pickups(uow: UnitOfWork, limit: int = 100) -> int:
    """Click & collect orders not collected within the pickup window: stock goes back."""
    overdue = await db.overdue_pickups(uow.connection, now(), limit)
    for row in overdue:
        order = await locked_order(uow, row.order_id)
        f = await db.get_fulfillment(uow.connection, row.fulfillment_id)
        if f is not None and F(f.status) is F.READY_FOR_PICKUP:
            await expire(uow, order, "not collected within the pickup window")
    await uow.commit()
    return len(overdue)


async def retry_backorders(uow: UnitOfWork, policy: Policy, limit: int = 50) -> int:
    """Route what backordered orders still miss; give up on those that waited too long."""
    waiting = await db.backordered(uow.connection, limit)
    for row in waiting:
        order = await locked_order(uow, row.order_id)
        missing = await db.outstanding(uow.connection, order.order_id)
        if missing and now() - order.backordered_at > policy.backorder_max_wait:
            await db.set_backordered(uow.connection, order.order_id, None, None)
            await reject_order(uow, order, "backordered too long: no stock arrived")
            ORDERS_UNROUTABLE.labels("orders", "backorder_expired").inc()
        elif not missing or await route(
            uow,
            order,
            missing,
            "backorder: stock arrived",
            policy,
            record_failure=False,
            cause="backorder",
        ):
            await db.set_backordered(uow.connection, order.order_id, None, None)
            await settle(uow, order)
    await uow.commit()
    return len(waiting)
