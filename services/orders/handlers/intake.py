"""Order intake: an order for exactly what a quote priced."""

from __future__ import annotations

import uuid

from services.contracts.orders import OrderAccepted, OrderStatus, PlaceOrder
from services.infrastructure.errors import Conflict, InvalidRequest
from services.infrastructure.quote_tokens import verify_quote_token
from services.orders import domain
from services.orders.domain import Order, OrderLine
from services.orders.handlers.common import Policy, now, request_hash
from services.orders.handlers.planning import route, unplanned
from services.orders.repository import OrdersUnitOfWork
from services.retail.holds import hold_problem


async def place_order(
    body: PlaceOrder, idempotency_key: str | None, uow: OrdersUnitOfWork, policy: Policy
) -> OrderAccepted:
    """Accept an order for exactly what a quote priced, route it, and ask inventory to reserve."""
    fingerprint = request_hash(body)
    if idempotency_key is not None:
        earlier = await uow.orders.by_idempotency_key(idempotency_key)
        if earlier is not None:
            order_id, earlier_hash = earlier
            if earlier_hash != fingerprint:
                raise InvalidRequest("this Idempotency-Key was used for a different order")
            return OrderAccepted(order_id=order_id, status=OrderStatus.PENDING)

    claims = verify_quote_token(body.quote_token, policy.keys)
    ordered = {line.sku: line.quantity for line in body.lines}
    mismatch = domain.quote_mismatch(ordered, {line.sku: line.quantity for line in claims.lines})
    if mismatch is not None:
        raise InvalidRequest(mismatch)
    if (used := await uow.orders.by_quote(claims.quote_id)) is not None:
        raise Conflict(f"quote {claims.quote_id} was already used by order {used}")
    fulfillment = body.fulfillment
    if fulfillment.hold_until is not None and (
        problem := hold_problem(fulfillment.hold_until, now())
    ):
        raise InvalidRequest(problem)

    order = Order.place(
        order_id=f"ord_{uuid.uuid4().hex[:20]}",
        channel=claims.channel,
        customer_id=body.customer.id,
        customer_email=body.customer.email,
        quote_id=claims.quote_id,
        method=fulfillment.method,
        currency=claims.currency,
        subtotal=claims.subtotal,
        discount_total=claims.discount_total,
        total=claims.total,
        lines=[
            OrderLine(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                unit_net_prices=list(line.unit_net_prices),
            )
            for line in claims.lines
        ],
        store_id=fulfillment.store_id,
        address=fulfillment.address.model_dump() if fulfillment.address else None,
        hold_until=fulfillment.hold_until,
        allow_backorder=body.allow_backorder,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
    )
    uow.orders.add(order)
    if not await route(uow, order, ordered, "order placed", policy):
        unplanned(order, "no location can fulfil the order")
    await uow.commit()
    # The receipt says the order was taken, not how it ended: that is the order's own status.
    return OrderAccepted(order_id=order.order_id, status=OrderStatus.PENDING)
