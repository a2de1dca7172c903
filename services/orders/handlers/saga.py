"""The saga's reactions to inventory, the projections routing reads, and the sweeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from services.contracts.inventory import (
    AvailabilityChanged,
    LocationChanged,
    ReservationExpired,
    StockCommitRejected,
    StockPromised,
    StockPromiseRejected,
    StockReservationRejected,
    StockReserved,
)
from services.orders.handlers.common import Policy, log, now, order_for_event
from services.orders.handlers.planning import reroute
from services.orders.repository import OrdersUnitOfWork

# Saga: inventory's answers


async def on_stock_reserved(event: StockReserved, uow: OrdersUnitOfWork) -> None:
    """The stock is held: the order is confirmed once all of it is."""
    if order := await order_for_event(uow, event.order_id, event):
        order.reservation_confirmed(event.reservation_id)


async def on_reservation_rejected(
    event: StockReservationRejected, uow: OrdersUnitOfWork, policy: Policy
) -> None:
    """Inventory could not hold the stock there: route those lines again without it."""
    order = await order_for_event(uow, event.order_id, event)
    if order is None:
        return
    lines = order.reservation_failed(event.reservation_id, event.detail)
    if lines is not None:
        failed = order.fulfillment(event.reservation_id)
        assert failed is not None
        trigger = f"reservation rejected at {failed.location_id}: {event.detail}"
        await reroute(uow, order, lines, trigger, policy)


async def on_stock_promised(event: StockPromised, uow: OrdersUnitOfWork) -> None:
    """Incoming stock is promised to a backordered fulfillment, expected by `promised_at`."""
    if order := await order_for_event(uow, event.order_id, event):
        order.promise_kept(event.promise_id, event.promised_at)


async def on_promise_rejected(
    event: StockPromiseRejected, uow: OrdersUnitOfWork, policy: Policy
) -> None:
    """The incoming stock was promised to others first: route those lines again without it."""
    order = await order_for_event(uow, event.order_id, event)
    if order is None:
        return
    lines = order.reservation_failed(event.promise_id, event.detail)
    if lines is not None:
        trigger = f"promise rejected at {event.location_id}: {event.detail}"
        await reroute(uow, order, lines, trigger, policy)


async def on_reservation_expired(event: ReservationExpired, uow: OrdersUnitOfWork) -> None:
    """A click & reserve hold ran out in inventory: the order expires."""
    if order := await order_for_event(uow, event.order_id, event):
        order.hold_expired(event.reservation_id)


async def on_commit_rejected(event: StockCommitRejected, uow: OrdersUnitOfWork) -> None:
    log.error(
        "inventory refused to commit %s of order %s: %s",
        event.reservation_id,
        event.order_id,
        event.detail,
    )


# Projections: idempotent by themselves (the newest version wins)


async def project_availability(event: AvailabilityChanged, uow: OrdersUnitOfWork) -> None:
    await uow.network.update_levels([event])
    await uow.commit()


async def project_location(event: LocationChanged, uow: OrdersUnitOfWork) -> None:
    await uow.network.learn_location(event)
    await uow.commit()


# Sweeps: each order is locked while it changes


async def expire_overdue_pickups(uow: OrdersUnitOfWork, limit: int = 100) -> int:
    """Click & collect orders not collected within the pickup window: stock goes back."""
    overdue = await uow.orders.overdue_pickups(now(), limit)
    for order_id, fulfillment_id in overdue:
        if order := await uow.orders.get(order_id):
            order.pickup_overdue(fulfillment_id)
    await uow.commit()
    return len(overdue)


async def withdraw_unaccepted(
    order_id: str, fulfillment_id: str, uow: OrdersUnitOfWork, policy: Policy
) -> None:
    """A partner that did not accept its fulfillment within the accept window loses it: the stock
    goes back and the lines are routed again without that location (or the order is rejected
    when nothing else can serve them). One the partner accepted meanwhile is left alone."""
    order = await uow.orders.get(order_id)
    f = None if order is None else order.fulfillment(fulfillment_id)
    if order is None or f is None:
        return
    within = f"within {_span(policy.partner_accept_window)}"
    lines = order.withdraw(fulfillment_id, f"not accepted {within}")
    if lines is not None:
        await reroute(uow, order, lines, f"not accepted at {f.location_id} {within}", policy)
    await uow.commit()


async def withdraw_unaccepted_fulfillments(
    unit_of_work: Callable[[], OrdersUnitOfWork], policy: Policy, limit: int = 100
) -> int:
    """Withdraw every dropship fulfillment not accepted within the accept window, each order in
    a unit of work of its own, so one that fails (inventory not answering while its lines are
    routed again) is retried next time and never holds back the others."""
    async with unit_of_work() as uow:
        overdue = await uow.orders.unaccepted_partner_fulfillments(
            now() - policy.partner_accept_window, limit
        )
    for order_id, fulfillment_id in overdue:
        try:
            async with unit_of_work() as uow:
                await withdraw_unaccepted(order_id, fulfillment_id, uow, policy)
        except Exception:
            log.exception(
                "withdrawing %s of order %s failed; retried next time", fulfillment_id, order_id
            )
    return len(overdue)


def _span(window: timedelta) -> str:
    """`60 minutes`, or `2 seconds` for a window shorter than a minute (a test's)."""
    seconds = window.total_seconds()
    amount, unit = (seconds / 60, "minute") if seconds >= 60 else (seconds, "second")
    return f"{amount:g} {unit}{'' if amount == 1 else 's'}"
