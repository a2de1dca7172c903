"""What store staff and partners do with fulfillments, and cancellation."""

from __future__ import annotations

import hashlib
import uuid

from services.contracts.orders import CancelIn, RejectCode, ShipIn
from services.contracts.pricing import Money
from services.infrastructure.errors import Conflict, NotFound
from services.orders.domain import CLOSED
from services.orders.handlers.common import Policy, as_problems, now, order_of, order_with
from services.orders.handlers.planning import reroute, route
from services.orders.repository import OrdersUnitOfWork

# Each answers a step the fulfillment has taken already with the fulfillment as it is, so a client
# or the gateway may repeat it safely; an illegal step is a 409.


async def mark_ready(fulfillment_id: str, uow: OrdersUnitOfWork, policy: Policy) -> None:
    """The store has picked the items: ready for the customer to collect."""
    order = await order_with(uow, fulfillment_id)
    with as_problems():
        order.mark_ready(fulfillment_id, now(), policy.pickup_window)
    await uow.commit()


async def hand_over(fulfillment_id: str, uow: OrdersUnitOfWork) -> None:
    """The customer collected: the stock is committed."""
    order = await order_with(uow, fulfillment_id)
    with as_problems():
        order.hand_over(fulfillment_id)
    await uow.commit()


async def ship(fulfillment_id: str, body: ShipIn, uow: OrdersUnitOfWork) -> None:
    """Handed to the carrier: the stock is committed. A consolidated parcel ships whole: every
    fulfillment of its shipment, of every order in it, with this carrier and tracking number."""
    parcel = await uow.orders.shipment_of(fulfillment_id)
    if not parcel:
        raise NotFound(f"fulfillment {fulfillment_id!r} does not exist")
    # The orders are locked in one order (by id), so two people shipping the same parcel from
    # different fulfillments wait for each other instead of deadlocking.
    for order_id, member in parcel:
        order = await order_of(uow, order_id)
        f = order.fulfillment(member)
        if member != fulfillment_id and (f is None or f.status in CLOSED):
            continue  # left the parcel (cancelled, rejected, expired)
        with as_problems():
            order.ship(member, body.carrier, body.tracking_number)
    await uow.commit()


async def accept(fulfillment_id: str, uow: OrdersUnitOfWork) -> None:
    """A partner takes the fulfillment on."""
    order = await order_with(uow, fulfillment_id)
    with as_problems():
        order.accept(fulfillment_id)
    await uow.commit()


async def reject(
    fulfillment_id: str,
    reason: str,
    uow: OrdersUnitOfWork,
    policy: Policy,
    code: RejectCode = RejectCode.OTHER,
) -> None:
    """A short pick or a partner's refusal: release the stock (corrected when the code says it
    is not there or damaged) and route those lines again elsewhere."""
    order = await order_with(uow, fulfillment_id)
    with as_problems():
        lines = order.turn_down(fulfillment_id, reason, code)
    if lines is not None:
        f = order.fulfillment(fulfillment_id)
        assert f is not None
        await reroute(uow, order, lines, f"rejected at {f.location_id}: {reason}", policy)
    await uow.commit()


async def cancel(
    order_id: str, body: CancelIn, uow: OrdersUnitOfWork, idempotency_key: str | None = None
) -> Money | None:
    """Cancel the whole order before anything left a location (every held unit goes back), or
    with `lines` only those units, refunded at what they were paid (once per idempotency key)."""
    order = await order_of(uow, order_id)
    refund = None
    with as_problems():
        if body.lines:
            wanted = {line.sku: line.quantity for line in body.lines}
            refund = order.cancel_lines(cancellation_id(idempotency_key), wanted, body.reason)
        else:
            order.cancel(body.reason)
    await uow.commit()
    return refund


def cancellation_id(idempotency_key: str | None) -> str:
    """The same for every repeat of one partial cancel (so it applies once), new otherwise."""
    if idempotency_key is None:
        return f"cnl_{uuid.uuid4().hex[:20]}"
    return "cnl_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


async def change_pickup_store(
    order_id: str, store_id: str, uow: OrdersUnitOfWork, policy: Policy
) -> None:
    """Collect at another store: routed again there, and the old reservation is released only
    once the new one holds. If the new store cannot serve the order, it keeps the old one and
    the answer (409) says why."""
    order = await order_of(uow, order_id)
    with as_problems():
        replacing = order.pickup_store_change(store_id)
    if replacing is None:
        return
    lines: dict[str, int] = {}
    for fulfillment_id in replacing:
        f = order.fulfillment(fulfillment_id)
        assert f is not None
        for sku, quantity in f.lines.items():
            lines[sku] = lines.get(sku, 0) + quantity
    trigger = f"pickup store changed to {store_id}"
    placed = await route(
        uow, order, lines, trigger, policy, cause="store_change", store_id=store_id,
        replacing=replacing,
    )  # fmt: skip
    if not placed:
        why = order.decisions[-1]["rejected_reason"] or "no plan"
        raise Conflict(f"{store_id} cannot serve this order ({why}); it stays at {order.store_id}")
    await uow.commit()
