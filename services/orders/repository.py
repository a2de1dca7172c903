"""Where orders keeps its aggregates and its view of the retail network, over SQLAlchemy Core (the
ORM session measured at about half the throughput on these paths), and the unit of work that
saves every order it loaded and puts the messages they recorded in the outbox, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.contracts.inventory import AvailabilityChanged, Location, LocationChanged, StockLevel
from services.contracts.orders import FulfillmentMethod, FulfillmentStatus, OrderStatus
from services.contracts.pricing import Channel
from services.infrastructure.database import UnitOfWork
from services.infrastructure.tables import table
from services.orders import db
from services.orders.domain import Fulfillment, Order, OrderLine, TakenBack, address_key
from services.orders.routing import ShipWith

# An order's row, locked until the transaction ends, then its lines and fulfillments in one
# statement (they were two: a round trip more on every step of every order). Not all three in
# one: a statement's subqueries read the snapshot taken before it waited for the lock, and would
# miss a change committed by the transaction it waited for.
_LOCK_ORDER = text(
    "SELECT o.*, (SELECT coalesce(max(attempt), 0) FROM routing_attempts a"
    " WHERE a.order_id = o.order_id) AS attempts"
    " FROM orders o WHERE o.order_id = :id FOR UPDATE"
)
_ORDER_PARTS = text(
    "SELECT"
    " (SELECT coalesce(jsonb_agg(l ORDER BY l.sku), '[]') FROM order_lines l"
    "  WHERE l.order_id = :id) AS order_lines,"
    " (SELECT coalesce(jsonb_agg(f ORDER BY f.created_at, f.fulfillment_id), '[]') FROM ("
    "   SELECT f.*, l.partner_id, coalesce((SELECT jsonb_object_agg(fl.sku, fl.quantity)"
    "   FROM fulfillment_lines fl WHERE fl.fulfillment_id = f.fulfillment_id), '{}')"
    "   AS line_quantities FROM fulfillments f"
    "   LEFT JOIN locations l ON l.location_id = f.location_id"
    "   WHERE f.order_id = :id) f) AS order_fulfillments"
)


class _Stored(dict[str, Any]):
    """A fulfillment as the load's JSON has it: its fields as attributes, its times as text."""

    def __getattr__(self, name: str) -> Any:
        return self[name]

    def moment(self, name: str) -> datetime | None:
        """In UTC, as asyncpg gives a timestamp (JSON has it in the session's time zone)."""
        value = self[name]
        return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


# The columns of an order and a fulfillment that the aggregate may change after they are stored.
_ORDER_CHANGES = (
    "status",
    "status_reason",
    "refunded",
    "promised_at",
    "consolidated_with",
    "cancellations",
)
_FULFILLMENT_CHANGES = (
    "status",
    "status_reason",
    "pickup_deadline",
    "ready_at",
    "carrier",
    "tracking_number",
)


_ORDERS = table(db.OrderRow).name
_ORDER_LINES = table(db.OrderLineRow).name
_FULFILLMENTS = table(db.FulfillmentRow).name
_FULFILLMENT_LINES = table(db.FulfillmentLineRow).name
_ROUTING_ATTEMPTS = table(db.RoutingAttemptRow).name


def _fulfillment_rows(
    order_id: str, fulfillments: Sequence[Fulfillment]
) -> dict[str, list[dict[str, Any]]]:
    return {
        _FULFILLMENTS: [_fulfillment_values(order_id, f) for f in fulfillments],
        _FULFILLMENT_LINES: [
            {"fulfillment_id": f.fulfillment_id, "sku": sku, "quantity": quantity}
            for f in fulfillments
            for sku, quantity in f.lines.items()
        ],
    }


def _order_values(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "status": order.status.value,
        "status_reason": order.status_reason,
        "channel": order.channel.value,
        "customer_id": order.customer_id,
        "customer_email": order.customer_email,
        "quote_id": order.quote_id,
        "method": order.method.value,
        "currency": order.currency,
        "subtotal": order.subtotal,
        "discount_total": order.discount_total,
        "total": order.total,
        "refunded": order.refunded,
        "store_id": order.store_id,
        "address": order.address,
        "hold_until": order.hold_until,
        "idempotency_key": order.idempotency_key,
        "request_hash": order.request_hash,
        "allow_backorder": order.allow_backorder,
        "promised_at": order.promised_at,
        "address_key": address_key(order.address),
        "consolidated_with": list(order.consolidated_with),
        "cancellations": dict(order.cancellations),
    }


def _fulfillment_values(order_id: str, f: Fulfillment) -> dict[str, Any]:
    return {
        "fulfillment_id": f.fulfillment_id,
        "order_id": order_id,
        "location_id": f.location_id,
        "location_type": f.location_type,
        "method": f.method.value,
        "status": f.status.value,
        "status_reason": f.status_reason,
        "attempt": f.attempt,
        "pickup_store_id": f.pickup_store_id,
        "transfer": f.transfer,
        "backorder": f.backorder,
        "replaces": list(f.replaces),
        "shipment_id": f.shipment_id,
        "hold_until": f.hold_until,
        "pickup_deadline": f.pickup_deadline,
        "ready_at": f.ready_at,
        "carrier": f.carrier,
        "tracking_number": f.tracking_number,
    }


class OrderRepository:
    """Orders as aggregates: loaded whole (three statements), saved by what changed."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection
        # What each loaded order looked like in the database, to write only what changed.
        self._stored: dict[
            str, tuple[dict[str, Any], dict[str, tuple[int, int]], dict[str, dict[str, Any]]]
        ]
        self._stored = {}
        self._seen: dict[str, Order] = {}

    @property
    def seen(self) -> list[Order]:
        return list(self._seen.values())

    def add(self, order: Order) -> None:
        self._seen[order.order_id] = order

    async def get(self, order_id: str) -> Order | None:
        """The order, locked until the transaction ends: the steps of one order never
        interleave."""
        if order_id in self._seen:
            return self._seen[order_id]
        row = (await self._conn.execute(_LOCK_ORDER, {"id": order_id})).first()
        if row is None:
            return None
        parts = (await self._conn.execute(_ORDER_PARTS, {"id": order_id})).one()
        lines = parts.order_lines
        fulfillments = [_Stored(f) for f in parts.order_fulfillments]
        order = Order(
            order_id=row.order_id,
            status=OrderStatus(row.status),
            channel=Channel(row.channel),
            customer_id=row.customer_id,
            customer_email=row.customer_email,
            quote_id=row.quote_id,
            method=FulfillmentMethod(row.method),
            currency=row.currency,
            subtotal=row.subtotal,
            discount_total=row.discount_total,
            total=row.total,
            lines={
                line["sku"]: OrderLine(
                    sku=line["sku"],
                    quantity=line["quantity"],
                    unit_price=line["unit_price"],
                    unit_net_prices=list(line["unit_net_prices"]),
                    returned_quantity=line["returned_quantity"],
                    cancelled_quantity=line["cancelled_quantity"],
                )
                for line in lines
            },
            fulfillments=[
                Fulfillment(
                    fulfillment_id=f.fulfillment_id,
                    location_id=f.location_id,
                    location_type=f.location_type,
                    method=FulfillmentMethod(f.method),
                    status=FulfillmentStatus(f.status),
                    attempt=f.attempt,
                    lines=dict(sorted(f.line_quantities.items())),
                    pickup_store_id=f.pickup_store_id,
                    transfer=f.transfer,
                    backorder=f.backorder,
                    replaces=tuple(f.replaces),
                    shipment_id=f.shipment_id,
                    hold_until=f.moment("hold_until"),
                    pickup_deadline=f.moment("pickup_deadline"),
                    ready_at=f.moment("ready_at"),
                    status_reason=f.status_reason,
                    carrier=f.carrier,
                    tracking_number=f.tracking_number,
                    partner_id=f.partner_id,
                )
                for f in fulfillments
            ],
            store_id=row.store_id,
            address=row.address,
            hold_until=row.hold_until,
            status_reason=row.status_reason,
            refunded=row.refunded,
            allow_backorder=row.allow_backorder,
            promised_at=row.promised_at,
            consolidated_with=list(row.consolidated_with),
            cancellations=dict(row.cancellations),
            idempotency_key=row.idempotency_key,
            request_hash=row.request_hash,
            attempts=row.attempts,
        )
        self._remember(order)
        self._seen[order_id] = order
        return order

    async def for_fulfillment(self, fulfillment_id: str) -> Order | None:
        """The (locked) order a fulfillment belongs to."""
        order_id = (
            await self._conn.execute(
                text("SELECT order_id FROM fulfillments WHERE fulfillment_id = :id"),
                {"id": fulfillment_id},
            )
        ).scalar()
        return None if order_id is None else await self.get(order_id)

    async def by_idempotency_key(self, key: str) -> tuple[str, str | None] | None:
        """(order id, request hash) of the order placed with this key; a concurrent request with
        the same key waits here until this transaction ends."""
        row = await db.order_by_key(self._conn, key)
        return None if row is None else (row.order_id, row.request_hash)

    async def by_quote(self, quote_id: str) -> str | None:
        row = await db.order_by_quote(self._conn, quote_id)
        return None if row is None else str(row.order_id)

    async def overdue_pickups(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(order id, fulfillment id) of collections past their pickup deadline."""
        return [
            (r.order_id, r.fulfillment_id) for r in await db.overdue_pickups(self._conn, now, limit)
        ]

    async def unaccepted_partner_fulfillments(
        self, reserved_before: datetime, limit: int
    ) -> list[tuple[str, str]]:
        """(order id, fulfillment id) of dropship fulfillments reserved before `reserved_before`
        that their partner has not accepted yet, read without locking anything."""
        rows = await db.unaccepted_partner_fulfillments(self._conn, reserved_before, limit)
        return [(r.order_id, r.fulfillment_id) for r in rows]

    async def parcels_to_join(self, order: Order, since: datetime) -> list[ShipWith]:
        """Unshipped parcels of the buyer's earlier deliveries to the same address, placed
        since `since`, the earliest first: candidates for consolidation."""
        key = address_key(order.address)
        if key is None:
            return []
        rows = await db.parcels_to_join(self._conn, order.order_id, order.customer_id, key, since)
        return [ShipWith(r.order_id, r.location_id, r.shipment_id) for r in rows]

    async def shipment_of(self, fulfillment_id: str) -> list[tuple[str, str]]:
        """(order id, fulfillment id) of every fulfillment in the parcel this one ships in
        (itself alone when it shares none), read without locking anything."""
        rows = await db.shipment_fulfillments(self._conn, fulfillment_id)
        return [(r.order_id, r.fulfillment_id) for r in rows]

    async def save(self) -> None:
        """Write every order this unit of work added or loaded, as far as it changed, each in
        one statement (`db.write_rows`)."""
        for order in self._seen.values():
            changes: list[db.Change] = []
            if order.order_id in self._stored:
                new_rows = await self._update(order, changes)
            else:
                new_rows = self._insert(order)
            if order.decisions:
                new_rows[_ROUTING_ATTEMPTS] = [
                    {"order_id": order.order_id, "attempt": d["attempt"], "decision": d}
                    for d in order.decisions
                ]
                order.decisions.clear()
            await db.write_rows(self._conn, new_rows, changes)
            self._remember(order)

    def _insert(self, order: Order) -> dict[str, list[dict[str, Any]]]:
        return {
            _ORDERS: [_order_values(order)],
            _ORDER_LINES: [
                {
                    "order_id": order.order_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "unit_net_prices": line.unit_net_prices,
                    "total": line.total,
                    "returned_quantity": line.returned_quantity,
                    "cancelled_quantity": line.cancelled_quantity,
                }
                for line in order.lines.values()
            ],
            **_fulfillment_rows(order.order_id, order.fulfillments),
        }

    async def _update(
        self, order: Order, changes: list[db.Change]
    ) -> dict[str, list[dict[str, Any]]]:
        """The changes of a stored order into `changes`, and its new fulfillments' rows."""
        stored_order, stored_lines, stored_fulfillments = self._stored[order.order_id]
        values = _order_values(order)
        changed = {k: values[k] for k in _ORDER_CHANGES if values[k] != stored_order[k]}
        if changed:
            changes.append(
                db.Change(_ORDERS, ("order_id",), {"order_id": order.order_id, **changed})
            )
        for sku, line in order.lines.items():
            given_back = (line.returned_quantity, line.cancelled_quantity)
            if given_back != stored_lines[sku]:
                row = {
                    "order_id": order.order_id,
                    "sku": sku,
                    "returned_quantity": line.returned_quantity,
                    "cancelled_quantity": line.cancelled_quantity,
                }
                changes.append(db.Change(_ORDER_LINES, ("order_id", "sku"), row, stamped=False))
        new: list[Fulfillment] = []
        for f in order.fulfillments:
            now = _fulfillment_values(order.order_id, f)
            before = stored_fulfillments.get(f.fulfillment_id)
            if before is None:
                new.append(f)
                continue
            changed = {k: now[k] for k in _FULFILLMENT_CHANGES if now[k] != before[k]}
            if changed:
                row = {"fulfillment_id": f.fulfillment_id, **changed}
                changes.append(db.Change(_FULFILLMENTS, ("fulfillment_id",), row))
            if f.lines != before["lines"]:
                # Rows deleted and changed: a statement of its own, before the others.
                await db.set_fulfillment_lines(self._conn, f.fulfillment_id, f.lines)
        return _fulfillment_rows(order.order_id, new)

    def _remember(self, order: Order) -> None:
        self._stored[order.order_id] = (
            _order_values(order),
            {
                sku: (line.returned_quantity, line.cancelled_quantity)
                for sku, line in order.lines.items()
            },
            {
                f.fulfillment_id: {**_fulfillment_values(order.order_id, f), "lines": dict(f.lines)}
                for f in order.fulfillments
            },
        )


class NetworkView:
    """Orders' view of the retail network, for routing: locations and their availability,
    projected from inventory's events (and corrected from inventory when routing asks), and
    the parcels each location was given today."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def sites(self, skus: Sequence[str], day: date) -> list[dict[str, Any]]:
        return await db.sites(self._conn, skus, day)

    async def add_load(self, location_id: str, day: date, parcels: int) -> None:
        await db.add_load(self._conn, location_id, day, parcels)

    async def location(self, location_id: str) -> Any | None:
        return await db.get_location(self._conn, location_id)

    async def update_levels(self, levels: Iterable[StockLevel | AvailabilityChanged]) -> None:
        """Inventory's current levels; a newer version the projection already has wins."""
        for level in levels:
            await db.project_availability(
                self._conn,
                {
                    "sku": level.sku,
                    "location_id": level.location_id,
                    "available": level.available,
                    "version": level.version,
                },
            )

    async def known_locations(self, location_ids: Iterable[str]) -> set[str]:
        return await db.known_locations(self._conn, location_ids)

    async def learn_location(self, location: Location | LocationChanged) -> None:
        values = location.model_dump(mode="python", exclude={"created_at", "updated_at"})
        values["capabilities"] = [c.value for c in location.capabilities]
        values["type"] = location.type.value
        if isinstance(location, Location):
            values["changed_at"] = location.updated_at
        await db.project_location(self._conn, values)


class ReturnBook:
    """Returns taken back in stores, with the key a client may repeat them with."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def by_idempotency_key(self, key: str) -> Any | None:
        return await db.return_by_key(self._conn, key)

    async def get(self, return_id: str) -> Any | None:
        return await db.get_return(self._conn, return_id)

    async def add(
        self, order_id: str, taken: TakenBack, idempotency_key: str | None, request_hash: str
    ) -> None:
        await db.insert_return(
            self._conn,
            {
                "return_id": taken.return_id,
                "order_id": order_id,
                "store_id": taken.store_id,
                "refund": taken.refund.amount,
                "reason": taken.reason,
                "lines": [
                    {
                        "sku": line.sku,
                        "quantity": line.quantity,
                        "condition": line.condition.value,
                        "refund": line.refund.amount,
                    }
                    for line in taken.lines
                ],
                "idempotency_key": idempotency_key,
                "request_hash": request_hash,
            },
        )


class OrdersUnitOfWork(UnitOfWork):
    """A unit of work that, on commit, saves the orders it loaded or added and writes the
    messages they recorded to the outbox, all in the one transaction."""

    orders: OrderRepository
    network: NetworkView
    returns: ReturnBook

    async def __aenter__(self) -> OrdersUnitOfWork:
        await super().__aenter__()
        self.orders = OrderRepository(self.connection)
        self.network = NetworkView(self.connection)
        self.returns = ReturnBook(self.connection)
        return self

    async def commit(self) -> None:
        await self.orders.save()
        for order in self.orders.seen:
            for message in order.messages:
                self.emit(message)
            order.messages.clear()
        await super().commit()
