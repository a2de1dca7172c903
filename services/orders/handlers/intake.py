"""Order intake: an order for exactly what a quote priced."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from services.contracts.orders import (
    OrderAccepted,
    OrderPlaced,
    OrderStatus,
    PlaceOrder,
)
from services.contracts.pricing import Money
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import Conflict, InvalidRequest
from services.infrastructure.quote_tokens import verify_quote_token
from services.orders import db, domain
from services.orders.handlers.common import (
    Policy,
    lines_of,
    locked_order,
    now,
    request_hash,
)
from services.orders.handlers.planning import route, unplanned

# Intake


async def place_order(
    body: PlaceOrder, idempotency_key: str | None, uow: UnitOfWork, policy: Policy
) -> OrderAccepted:
    """Accept an order for exactly what a quote priced, route it, and ask inventory to reserve."""
    conn = uow.connection
    fingerprint = request_hash(body)
    if idempotency_key is not None:
        earlier = await db.order_by_key(conn, idempotency_key)
        if earlier is not None:
            if earlier.request_hash != fingerprint:
                raise InvalidRequest("this Idempotency-Key was used for a different order")
            return OrderAccepted(order_id=earlier.order_id, status=OrderStatus.PENDING)

    claims = verify_quote_token(body.quote_token, policy.keys)
    ordered = {line.sku: line.quantity for line in body.lines}
    mismatch = domain.quote_mismatch(ordered, {line.sku: line.quantity for line in claims.lines})
    if mismatch is not None:
        raise InvalidRequest(mismatch)
    if (used := await db.order_by_quote(conn, claims.quote_id)) is not None:
        raise Conflict(f"quote {claims.quote_id} was already used by order {used.order_id}")
    if body.fulfillment.hold_until is not None and (
        problem := hold_problem(body.fulfillment.hold_until)
    ):
        raise InvalidRequest(problem)

    order_id = f"ord_{uuid.uuid4().hex[:20]}"
    fulfillment = body.fulfillment
    await db.insert_order(
        conn,
        {
            "order_id": order_id,
            "status": OrderStatus.PENDING.value,
            "channel": claims.channel.value,
            "customer_id": body.customer.id,
            "customer_email": body.customer.email,
            "quote_id": claims.quote_id,
            "method": fulfillment.method.value,
            "currency": claims.currency,
            "subtotal": claims.subtotal,
            "discount_total": claims.discount_total,
            "total": claims.total,
            "store_id": fulfillment.store_id,
            "address": fulfillment.address.model_dump() if fulfillment.address else None,
            "hold_until": fulfillment.hold_until,
            "idempotency_key": idempotency_key,
            "request_hash": fingerprint,
        },
        [
            {
                "order_id": order_id,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "unit_net_prices": list(line.unit_net_prices),
                "total": sum(line.unit_net_prices),
            }
            for line in claims.lines
        ],
    )
    uow.emit(
        OrderPlaced(
            order_id=order_id,
            channel=claims.channel,
            customer_id=body.customer.id,
            quote_id=claims.quote_id,
            method=fulfillment.method,
            lines=lines_of(ordered),
            total=Money(amount=claims.total, currency=claims.currency),
        )
    )
    order = await locked_order(uow, order_id)
    if not await route(uow, order, ordered, "order placed", policy):
        await unplanned(uow, order, policy, "no location can fulfil the order")
    await uow.commit()
    # The receipt says the order was taken, not how it ended: that is the order's own status.
    return OrderAccepted(order_id=order_id, status=OrderStatus.PENDING)


def hold_problem(hold_until: datetime) -> str | None:
    moment = now()
    if hold_until <= moment:
        return "hold_until must be in the future"
    if hold_until - moment > timedelta(days=7):
        return "hold_until may be at most 7 days ahead"
    return None
