"""Returns in store: refund exactly what the units were paid; restock the resellable."""

from __future__ import annotations

import uuid

from services.contracts.orders import Return, ReturnIn, ReturnPreview
from services.infrastructure.errors import InvalidRequest
from services.orders.handlers.common import as_problems, order_of, request_hash
from services.orders.repository import OrdersUnitOfWork
from services.orders.views import return_view


async def accept_return(
    body: ReturnIn, idempotency_key: str | None, uow: OrdersUnitOfWork
) -> Return:
    """Take units back in a store: refund exactly what they were paid, restock resellable ones."""
    fingerprint = request_hash(body)
    if idempotency_key is not None and (
        earlier := await uow.returns.by_idempotency_key(idempotency_key)
    ):
        if earlier.request_hash != fingerprint:
            raise InvalidRequest("this Idempotency-Key was used for a different return")
        return return_view(earlier, (await order_of(uow, earlier.order_id)).currency)
    order = await order_of(uow, body.order_id)
    store = await uow.network.location(body.store_id)
    if store is None or "returns" not in store.capabilities:
        raise InvalidRequest(f"{body.store_id} does not take returns")
    with as_problems():
        taken = order.take_back(
            f"ret_{uuid.uuid4().hex[:20]}",
            body.store_id,
            [(line.sku, line.quantity, line.condition) for line in body.lines],
            body.reason,
        )
    await uow.returns.add(order.order_id, taken, idempotency_key, fingerprint)
    await uow.commit()
    return return_view(await uow.returns.get(taken.return_id), order.currency)


async def preview_return(body: ReturnIn, uow: OrdersUnitOfWork) -> ReturnPreview:
    """What `accept_return` would refund for this return now, with the same checks and answers
    (404, 409, 422), from the same rule (`Order.take_back`); nothing is stored and no event
    sent: the unit of work ends without a commit, so the order taken back in memory is
    dropped."""
    order = await order_of(uow, body.order_id)
    store = await uow.network.location(body.store_id)
    if store is None or "returns" not in store.capabilities:
        raise InvalidRequest(f"{body.store_id} does not take returns")
    with as_problems():
        taken = order.take_back(
            "preview",
            body.store_id,
            [(line.sku, line.quantity, line.condition) for line in body.lines],
            body.reason,
        )
    return ReturnPreview(
        order_id=order.order_id, store_id=taken.store_id, refund=taken.refund, lines=taken.lines
    )
