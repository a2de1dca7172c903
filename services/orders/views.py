"""The read side: orders, fulfillments, work queues and routing decisions as clients see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.contracts.inventory import LocationType, StockLine
from services.contracts.orders import (
    Customer,
    Fulfillment,
    FulfillmentMethod,
    FulfillmentPage,
    FulfillmentStatus,
    ItemCondition,
    Order,
    OrderLine,
    OrderStatus,
    Return,
    ReturnLine,
    RoutingDecision,
    Totals,
)
from services.contracts.pricing import Channel, Money
from services.infrastructure.errors import InvalidRequest, NotFound
from services.orders import db


async def sites(conn: AsyncConnection, skus: list[str]) -> list[dict[str, object]]:
    return [
        {
            "location_id": row["location_id"],
            "type": row["type"],
            "capabilities": row["capabilities"],
            "available": {sku: row["available"].get(sku, 0) for sku in skus},
            "ship_capacity_left": max(row["ship_capacity"] - row["assigned_today"], 0),
        }
        for row in await db.sites(conn, skus, datetime.now(UTC).date())
    ]


def fulfillment_view(row: Any, lines: dict[str, int]) -> Fulfillment:
    return Fulfillment(
        fulfillment_id=row.fulfillment_id,
        order_id=row.order_id,
        location_id=row.location_id,
        location_type=LocationType(row.location_type),
        method=FulfillmentMethod(row.method),
        status=FulfillmentStatus(row.status),
        lines=tuple(StockLine(sku=s, quantity=q) for s, q in sorted(lines.items())),
        pickup_store_id=row.pickup_store_id,
        partner_id=row.partner_id,
        transfer=row.transfer,
        backorder=row.backorder,
        shipment_id=row.shipment_id,
        hold_until=row.hold_until,
        carrier=row.carrier,
        tracking_number=row.tracking_number,
        status_reason=row.status_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def order(conn: AsyncConnection, order_id: str) -> Order:
    row = await db.get_order(conn, order_id)
    if row is None:
        raise NotFound(f"order {order_id!r} does not exist")
    fulfillments = await db.fulfillments_of(conn, order_id)
    lines = await db.fulfillment_lines(conn, [f.fulfillment_id for f in fulfillments])

    def money(amount: int) -> Money:
        return Money(amount=amount, currency=row.currency)

    return Order(
        order_id=row.order_id,
        status=OrderStatus(row.status),
        status_reason=row.status_reason,
        channel=Channel(row.channel),
        customer=Customer(id=row.customer_id, email=row.customer_email),
        quote_id=row.quote_id,
        method=FulfillmentMethod(row.method),
        lines=tuple(
            OrderLine(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=money(line.unit_price),
                unit_net_prices=tuple(line.unit_net_prices),
                total=money(line.total),
                returned_quantity=line.returned_quantity,
                cancelled_quantity=line.cancelled_quantity,
            )
            for line in await db.order_lines(conn, order_id)
        ),
        fulfillments=tuple(fulfillment_view(f, lines[f.fulfillment_id]) for f in fulfillments),
        totals=Totals(
            subtotal=money(row.subtotal),
            discount_total=money(row.discount_total),
            total=money(row.total),
            refunded=money(row.refunded),
        ),
        promised_at=row.promised_at,
        consolidated_with=tuple(row.consolidated_with),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def routing_decision(conn: AsyncConnection, order_id: str) -> RoutingDecision:
    if await db.get_order(conn, order_id) is None:
        raise NotFound(f"order {order_id!r} does not exist")
    return RoutingDecision.model_validate(
        {"order_id": order_id, "attempts": await db.attempts(conn, order_id)}
    )


async def fulfillment(conn: AsyncConnection, fulfillment_id: str) -> Fulfillment:
    row = await db.get_fulfillment(conn, fulfillment_id)
    if row is None:
        raise NotFound(f"fulfillment {fulfillment_id!r} does not exist")
    lines = await db.fulfillment_lines(conn, [fulfillment_id])
    return fulfillment_view(row, lines[fulfillment_id])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _encode_cursor(created_at: datetime, fulfillment_id: str) -> str:
    """A place in a queue as `QueueCursor` spells it: every value of that pattern is a place,
    so a client can only ever ask for the page after some point, never for an error."""
    return f"{(created_at - _EPOCH) // _MICROSECOND}~{fulfillment_id}"


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    micros, _, fulfillment_id = cursor.partition("~")
    if not (micros.isascii() and micros.isdigit() and fulfillment_id):
        raise InvalidRequest("cursor is not one this API handed out")
    return _EPOCH + int(micros) * _MICROSECOND, fulfillment_id


async def queue(
    conn: AsyncConnection,
    *,
    store_id: str | None = None,
    partner_id: str | None = None,
    status: FulfillmentStatus | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> FulfillmentPage:
    """A store's or a partner's fulfillments, oldest first, a page at a time."""
    rows = await db.fulfillment_page(
        conn,
        store_id=store_id,
        partner_id=partner_id,
        status=status.value if status else None,
        # A datetime, not the str db.fulfillment_page's annotation names: asyncpg binds the
        # timestamptz it is cast to from a datetime only (a str was a 500 on every cursor).
        after=_decode_cursor(cursor),
        limit=limit + 1,
    )
    page, more = rows[:limit], len(rows) > limit
    lines = await db.fulfillment_lines(conn, [r.fulfillment_id for r in page])
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = _encode_cursor(last.created_at, last.fulfillment_id)
    return FulfillmentPage(
        items=tuple(fulfillment_view(r, lines[r.fulfillment_id]) for r in page),
        next_cursor=next_cursor,
    )


async def return_(conn: AsyncConnection, return_id: str) -> Return:
    row = await db.get_return(conn, return_id)
    if row is None:
        raise NotFound(f"return {return_id!r} does not exist")
    order = await db.get_order(conn, row.order_id)
    assert order is not None  # a return belongs to an order
    return return_view(row, order.currency)


def return_view(row: Any, currency: str) -> Return:
    def money(amount: int) -> Money:
        return Money(amount=amount, currency=currency)

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
