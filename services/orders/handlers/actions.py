"""What store staff and partners do with fulfillments, and cancellation."""

from __future__ import annotations

from typing import Any

from services.contracts.inventory import (
    CommitStock,
    ReleaseStock,
)
from services.contracts.orders import (
    FulfillmentAccepted,
    FulfillmentMethod,
    FulfillmentPickedUp,
    FulfillmentReady,
    FulfillmentRejected,
    FulfillmentShipped,
    FulfillmentStatus,
    OrderCancelled,
    OrderStatus,
    ShipIn,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import Conflict, NotFound
from services.orders import db, domain
from services.orders.handlers.common import (
    F,
    Policy,
    locked_order,
    now,
)
from services.orders.handlers.planning import release, reroute, settle

# Fulfillment actions (store staff, partners)


async def _fulfillment(uow: UnitOfWork, fulfillment_id: str) -> tuple[Any, Any]:
    f = await db.get_fulfillment(uow.connection, fulfillment_id)
    if f is None:
        raise NotFound(f"fulfillment {fulfillment_id!r} does not exist")
    order = await locked_order(uow, f.order_id)
    f = await db.get_fulfillment(uow.connection, fulfillment_id)  # read again under the order lock
    return order, f


def _step(f: Any, target: FulfillmentStatus, what: str) -> bool:
    """Whether the step changes anything: a step the fulfillment has taken already (a retried
    request) is answered with the fulfillment as it is, so a client or the gateway may repeat
    it safely. An illegal step is a 409."""
    if F(f.status) is target:
        return False
    try:
        domain.transition(F(f.status), target, what)
    except domain.IllegalTransition as exc:
        raise Conflict(str(exc)) from None
    return True


async def mark_ready(fulfillment_id: str, uow: UnitOfWork, policy: Policy) -> None:
    """The store has picked the items: ready for the customer to collect."""
    order, f = await _fulfillment(uow, fulfillment_id)
    if f.method == FulfillmentMethod.DELIVERY:
        raise Conflict("a delivery is shipped, not made ready for pickup")
    if not _step(f, F.READY_FOR_PICKUP, "mark it ready"):
        return
    deadline = now() + policy.pickup_window if f.method == FulfillmentMethod.PICKUP else None
    await db.update_fulfillment(
        uow.connection, fulfillment_id, status=F.READY_FOR_PICKUP.value, pickup_deadline=deadline
    )
    uow.emit(
        FulfillmentReady(
            order_id=order.order_id, fulfillment_id=fulfillment_id, location_id=f.location_id
        )
    )
    await uow.commit()


async def hand_over(fulfillment_id: str, uow: UnitOfWork) -> None:
    """The customer collected: the stock is committed."""
    order, f = await _fulfillment(uow, fulfillment_id)
    if f.method == FulfillmentMethod.DELIVERY:
        raise Conflict("a delivery is shipped, not handed over")
    if not _step(f, F.PICKED_UP, "hand it over"):
        return
    await db.update_fulfillment(uow.connection, fulfillment_id, status=F.PICKED_UP.value)
    uow.emit(CommitStock(order_id=order.order_id, reservation_id=fulfillment_id))
    uow.emit(
        FulfillmentPickedUp(
            order_id=order.order_id, fulfillment_id=fulfillment_id, location_id=f.location_id
        )
    )
    await settle(uow, order)
    await uow.commit()


async def ship(fulfillment_id: str, body: ShipIn, uow: UnitOfWork) -> None:
    """Handed to the carrier: the stock is committed."""
    order, f = await _fulfillment(uow, fulfillment_id)
    if f.method != FulfillmentMethod.DELIVERY:
        raise Conflict(f"a {f.method} fulfillment is collected in store, not shipped")
    if not _step(f, F.SHIPPED, "ship it"):
        return
    await db.update_fulfillment(
        uow.connection,
        fulfillment_id,
        status=F.SHIPPED.value,
        carrier=body.carrier,
        tracking_number=body.tracking_number,
    )
    uow.emit(CommitStock(order_id=order.order_id, reservation_id=fulfillment_id))
    uow.emit(
        FulfillmentShipped(
            order_id=order.order_id,
            fulfillment_id=fulfillment_id,
            location_id=f.location_id,
            carrier=body.carrier,
            tracking_number=body.tracking_number,
        )
    )
    await settle(uow, order)
    await uow.commit()


async def accept(fulfillment_id: str, uow: UnitOfWork) -> None:
    """A partner takes the fulfillment on."""
    order, f = await _fulfillment(uow, fulfillment_id)
    if f.location_type != "dropship":
        raise Conflict("only dropship fulfillments are accepted by a partner")
    if not _step(f, F.ACCEPTED, "accept it"):
        return
    await db.update_fulfillment(uow.connection, fulfillment_id, status=F.ACCEPTED.value)
    uow.emit(
        FulfillmentAccepted(
            order_id=order.order_id, fulfillment_id=fulfillment_id, location_id=f.location_id
        )
    )
    await uow.commit()


async def reject(fulfillment_id: str, reason: str, uow: UnitOfWork, policy: Policy) -> None:
    """A short pick or a partner's refusal: release the stock and route those lines again."""
    order, f = await _fulfillment(uow, fulfillment_id)
    if not _step(f, F.REJECTED, "reject it"):
        return
    await db.update_fulfillment(
        uow.connection, fulfillment_id, status=F.REJECTED.value, status_reason=reason
    )
    uow.emit(
        ReleaseStock(
            order_id=order.order_id, reservation_id=fulfillment_id, reason=f"rejected: {reason}"
        )
    )
    uow.emit(
        FulfillmentRejected(
            order_id=order.order_id,
            fulfillment_id=fulfillment_id,
            location_id=f.location_id,
            reason=reason,
        )
    )
    await reroute(uow, order, f, f"rejected at {f.location_id}: {reason}", policy)
    await uow.commit()


async def cancel(order_id: str, reason: str, uow: UnitOfWork) -> None:
    """Cancel before anything left a location: every held unit goes back."""
    order = await locked_order(uow, order_id)
    status = OrderStatus(order.status)
    if status is OrderStatus.CANCELLED:
        return
    if status in domain.TERMINAL_ORDER:
        raise Conflict(f"the order is already {status.value}")
    statuses = [F(f.status) for f in await db.fulfillments_of(uow.connection, order_id)]
    if not domain.can_cancel(statuses):
        raise Conflict("part of the order has already shipped or been collected; return it instead")
    await release(uow, order, F.CANCELLED, reason)
    await db.set_order_status(uow.connection, order_id, OrderStatus.CANCELLED.value, reason)
    uow.emit(OrderCancelled(order_id=order_id, reason=reason))
    await uow.commit()
