"""Returns in store: refund exactly what the units were paid; restock the resellable."""

from __future__ import annotations

import uuid
from typing import Any

from services.contracts.inventory import (
    RestockReturn,
)
from services.contracts.orders import (
    ItemCondition,
    OrderStatus,
    RefundIssued,
    Return,
    ReturnAccepted,
    ReturnIn,
    ReturnLine,
)
from services.contracts.pricing import Money
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import Conflict, InvalidRequest
from services.orders import db, domain
from services.orders.handlers.common import (
    lines_of,
    locked_order,
    request_hash,
)

# Returns


async def accept_return(body: ReturnIn, idempotency_key: str | None, uow: UnitOfWork) -> Return:
    """Take units back in a store: refund exactly what they were paid, restock resellable ones."""
    conn = uow.connection
    fingerprint = request_hash(body)
    if idempotency_key is not None and (earlier := await db.return_by_key(conn, idempotency_key)):
        if earlier.request_hash != fingerprint:
            raise InvalidRequest("this Idempotency-Key was used for a different return")
        return return_view(earlier, await db.get_order(conn, earlier.order_id))
    order = await locked_order(uow, body.order_id)
    if OrderStatus(order.status) is not OrderStatus.COMPLETED:
        raise Conflict(
            f"only a collected or delivered order can be returned; this one is {order.status}"
        )
    store = await db.get_location(conn, body.store_id)
    if store is None or "returns" not in store.capabilities:
        raise InvalidRequest(f"{body.store_id} does not take returns")
    bought = {line.sku: line for line in await db.order_lines(conn, body.order_id, lock=True)}
    returned: dict[str, int] = {}
    lines: list[dict[str, Any]] = []
    restock: dict[str, int] = {}
    for line in body.lines:
        sold = bought.get(line.sku)
        if sold is None:
            raise InvalidRequest(f"{line.sku} is not part of order {body.order_id}")
        already = sold.returned_quantity + returned.get(line.sku, 0)
        try:
            refund = domain.refund_for(sold.unit_net_prices, already, line.quantity)
        except ValueError as exc:
            raise InvalidRequest(f"{line.sku}: {exc}") from None
        returned[line.sku] = returned.get(line.sku, 0) + line.quantity
        lines.append(
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "condition": line.condition.value,
                "refund": refund,
            }
        )
        if line.condition is ItemCondition.RESELLABLE:
            restock[line.sku] = restock.get(line.sku, 0) + line.quantity
    total_refund = sum(line["refund"] for line in lines)
    return_id = f"ret_{uuid.uuid4().hex[:20]}"
    await db.add_returned(conn, body.order_id, returned, total_refund)
    await db.insert_return(
        conn,
        {
            "return_id": return_id,
            "order_id": body.order_id,
            "store_id": body.store_id,
            "refund": total_refund,
            "reason": body.reason,
            "lines": lines,
            "idempotency_key": idempotency_key,
            "request_hash": fingerprint,
        },
    )
    if restock:
        uow.emit(
            RestockReturn(
                order_id=body.order_id,
                return_id=return_id,
                location_id=body.store_id,
                lines=lines_of(restock),
            )
        )
    row = await db.get_return(conn, return_id)
    view = return_view(row, order)
    uow.emit(
        ReturnAccepted(
            order_id=body.order_id, return_id=return_id, store_id=body.store_id, lines=view.lines
        )
    )
    uow.emit(RefundIssued(order_id=body.order_id, return_id=return_id, amount=view.refund))
    await uow.commit()
    return view


def return_view(row: Any, order: Any) -> Return:
    def money(amount: int) -> Money:
        return Money(amount=amount, currency=order.currency)

    return Return(
        return_id=row.return_id,
        order_id=row.order_id,
        store_id=row.store_id,
        refund=money(row.refund),
        lines=tuple(
            ReturnLine(
                sku=line["sku"],
                quantity=line["quantity"],
                condition=ItemCondition(line["condition"]),
                refund=money(line["refund"]),
            )
            for line in row.lines
        ),
        reason=row.reason,
        created_at=row.created_at,
    )
