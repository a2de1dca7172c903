"""Orders' tables and queries, including its projections of inventory's locations and
availability (so routing needs no call to another service)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import registry
from sqlalchemy.sql.elements import TextClause
from sqlmodel import Field, SQLModel

from services.infrastructure.tables import table, timestamp, with_infrastructure


class OrdersTable(SQLModel, registry=registry()):
    """Base of orders's tables: a metadata of its own, so no two services share a table
    definition even when the names match (both inventory and orders have `locations`)."""


class OrderRow(OrdersTable, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_consolidation", "customer_id", "address_key", "created_at"),
        # The command center: orders per minute, and those still pending, oldest first.
        Index("ix_orders_created_at", "created_at"),
        Index("ix_orders_pending", "created_at", postgresql_where=text("status = 'pending'")),
    )

    order_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=16)
    status_reason: str | None = Field(default=None, max_length=500)
    channel: str = Field(max_length=16)
    customer_id: str = Field(max_length=64)
    customer_email: str = Field(max_length=254)
    # A quote buys one order: a replayed token cannot charge the same quote twice.
    quote_id: str = Field(max_length=64, unique=True)
    method: str = Field(max_length=16)
    currency: str = Field(max_length=3)
    subtotal: int = Field(sa_column=Column(BigInteger, nullable=False))
    discount_total: int = Field(sa_column=Column(BigInteger, nullable=False))
    total: int = Field(sa_column=Column(BigInteger, nullable=False))
    refunded: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    store_id: str | None = Field(default=None, max_length=64)
    address: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    hold_until: datetime | None = timestamp(nullable=True)
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    request_hash: str | None = Field(default=None, max_length=64)
    allow_backorder: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    promised_at: datetime | None = timestamp(nullable=True)
    # Who and where a delivery goes, normalised, to find a parcel a later order may join.
    address_key: str | None = Field(default=None, max_length=400)
    consolidated_with: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(64)), nullable=False, server_default=text("'{}'")),
    )
    # Partial cancels applied (id -> refund), so a repeated one applies nothing.
    cancellations: dict[str, int] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    created_at: datetime | None = timestamp()
    updated_at: datetime | None = timestamp()


class OrderLineRow(OrdersTable, table=True):
    __tablename__ = "order_lines"

    order_id: str = Field(primary_key=True, max_length=64)
    sku: str = Field(primary_key=True, max_length=64)
    quantity: int
    unit_price: int = Field(sa_column=Column(BigInteger, nullable=False))
    unit_net_prices: list[int] = Field(sa_column=Column(ARRAY(BigInteger), nullable=False))
    total: int = Field(sa_column=Column(BigInteger, nullable=False))
    returned_quantity: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    cancelled_quantity: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )


class FulfillmentRow(OrdersTable, table=True):
    __tablename__ = "fulfillments"
    __table_args__ = (
        Index("ix_fulfillments_location_status", "location_id", "status"),
        Index("ix_fulfillments_pickup_store", "pickup_store_id", "status"),
        Index(
            "ix_fulfillments_pickup_deadline",
            "pickup_deadline",
            postgresql_where=text("status = 'ready_for_pickup'"),
        ),
        # The command center's stores: work created, made ready and rejected in a window.
        Index("ix_fulfillments_location_created", "location_id", "created_at"),
        Index(
            "ix_fulfillments_location_ready",
            "location_id",
            "ready_at",
            postgresql_where=text("ready_at IS NOT NULL"),
        ),
        Index(
            "ix_fulfillments_location_rejected",
            "location_id",
            "updated_at",
            postgresql_where=text("status = 'rejected'"),
        ),
    )

    fulfillment_id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(max_length=64, index=True)
    location_id: str = Field(max_length=64)
    location_type: str = Field(max_length=16)
    method: str = Field(max_length=16)
    status: str = Field(max_length=20)
    status_reason: str | None = Field(default=None, max_length=500)
    attempt: int
    pickup_store_id: str | None = Field(default=None, max_length=64)
    transfer: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    # Waits for incoming stock promised to it (PromiseStock); reserved when that stock arrives.
    backorder: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    shipment_id: str | None = Field(default=None, max_length=64, index=True)
    # A new pickup store's fulfillment: the ones it takes over once its reservation holds.
    replaces: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(64)), nullable=False, server_default=text("'{}'")),
    )
    hold_until: datetime | None = timestamp(nullable=True)
    pickup_deadline: datetime | None = timestamp(nullable=True)
    ready_at: datetime | None = timestamp(nullable=True)
    carrier: str | None = Field(default=None, max_length=100)
    tracking_number: str | None = Field(default=None, max_length=100)
    created_at: datetime | None = timestamp()
    updated_at: datetime | None = timestamp()


class FulfillmentLineRow(OrdersTable, table=True):
    __tablename__ = "fulfillment_lines"

    fulfillment_id: str = Field(primary_key=True, max_length=64)
    sku: str = Field(primary_key=True, max_length=64)
    quantity: int


class RoutingAttemptRow(OrdersTable, table=True):
    __tablename__ = "routing_attempts"

    order_id: str = Field(primary_key=True, max_length=64)
    attempt: int = Field(primary_key=True)
    decision: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))


class ReturnRow(OrdersTable, table=True):
    __tablename__ = "returns"

    return_id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(max_length=64, index=True)
    store_id: str = Field(max_length=64)
    refund: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str = Field(max_length=500)
    lines: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    request_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime | None = timestamp()


class LocationRow(OrdersTable, table=True):
    """Projection of inventory's LocationChanged: the directory routing works from."""

    __tablename__ = "locations"

    location_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    type: str = Field(max_length=16)
    lat: float
    lon: float
    capabilities: list[str] = Field(sa_column=Column(ARRAY(String(16)), nullable=False))
    priority: int
    ship_capacity: int
    partner_id: str | None = Field(default=None, max_length=64, index=True)
    changed_at: datetime | None = timestamp()


class AvailabilityRow(OrdersTable, table=True):
    """Projection of inventory's AvailabilityChanged: newest version per level wins."""

    __tablename__ = "availability"

    sku: str = Field(primary_key=True, max_length=64)
    location_id: str = Field(primary_key=True, max_length=64)
    available: int
    version: int = Field(sa_column=Column(BigInteger, nullable=False))


class LocationLoadRow(OrdersTable, table=True):
    """Parcels assigned to a location per day, against its daily ship capacity."""

    __tablename__ = "location_load"

    location_id: str = Field(primary_key=True, max_length=64)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    assigned: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )


METADATA = with_infrastructure(OrdersTable.metadata)


# Projections


async def project_availability(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Keep the newest version; an older or repeated one changes nothing."""
    proposed = insert(table(AvailabilityRow)).values(**values)
    await conn.execute(
        proposed.on_conflict_do_update(
            index_elements=["sku", "location_id"],
            set_={"available": proposed.excluded.available, "version": proposed.excluded.version},
            where=table(AvailabilityRow).c.version < proposed.excluded.version,
        )
    )


async def known_locations(conn: AsyncConnection, location_ids: Iterable[str]) -> set[str]:
    """Which of `location_ids` the projection already has."""
    rows = await conn.execute(
        text("SELECT location_id FROM locations WHERE location_id = ANY(:ids)"),
        {"ids": list(location_ids)},
    )
    return {row.location_id for row in rows}


async def project_location(conn: AsyncConnection, values: dict[str, Any]) -> None:
    proposed = insert(table(LocationRow)).values(**values)
    await conn.execute(
        proposed.on_conflict_do_update(
            index_elements=["location_id"],
            set_={k: proposed.excluded[k] for k in values if k != "location_id"},
            where=table(LocationRow).c.changed_at <= proposed.excluded.changed_at,
        )
    )


async def sites(conn: AsyncConnection, skus: Sequence[str], day: date) -> list[dict[str, Any]]:
    """Every location with its availability of `skus` and its ship capacity left today."""
    rows = await conn.execute(
        text(
            "SELECT l.*, coalesce(ld.assigned, 0) AS assigned_today,"
            " coalesce(jsonb_object_agg(a.sku, a.available) FILTER (WHERE a.sku IS NOT NULL),"
            " '{}'::jsonb) AS available"
            " FROM locations l"
            " LEFT JOIN availability a ON a.location_id = l.location_id AND a.sku = ANY(:skus)"
            " LEFT JOIN location_load ld ON ld.location_id = l.location_id AND ld.day = :day"
            " GROUP BY l.location_id, ld.assigned ORDER BY l.location_id"
        ),
        {"skus": list(skus), "day": day},
    )
    return [dict(row._mapping) for row in rows]


async def get_location(conn: AsyncConnection, location_id: str) -> Any | None:
    return (
        await conn.execute(
            text("SELECT * FROM locations WHERE location_id = :id"), {"id": location_id}
        )
    ).first()


async def add_load(conn: AsyncConnection, location_id: str, day: date, parcels: int) -> None:
    await conn.execute(_ADD_LOAD, {"location_id": location_id, "day": day, "parcels": parcels})


_ADD_LOAD = text(
    "INSERT INTO location_load (location_id, day, assigned) VALUES (:location_id, :day, :parcels)"
    " ON CONFLICT (location_id, day) DO UPDATE SET assigned = location_load.assigned + :parcels"
)


# Orders


@dataclass(frozen=True)
class Change:
    """New values of some columns of one row, found by its `keys` columns (in `row` too);
    `stamped` also sets its `updated_at`."""

    table: str
    keys: tuple[str, ...]
    row: dict[str, Any]
    stamped: bool = True


async def write_rows(
    conn: AsyncConnection,
    new: Mapping[str, Sequence[dict[str, Any]]],
    changes: Sequence[Change] = (),
) -> None:
    """New rows of several tables (name -> rows, each with the same columns) and changes of
    existing ones, in one statement. An order placed was five inserts and each later step of it
    two or three updates, a round trip each, and round trips are most of what a step costs.
    Rows travel as JSON that PostgreSQL turns into rows of the table's type, so each column gets
    its own type (JSONB, arrays, timestamps); columns an insert leaves out take their defaults.
    The parts of one statement see the same snapshot: no two may write the same row."""
    inserts = [(name, tuple(rows[0]), rows) for name, rows in new.items() if rows]
    if not inserts and not changes:
        return
    statement = _write_statement(
        tuple((name, columns) for name, columns, _ in inserts),
        tuple((c.table, c.keys, tuple(c.row), c.stamped) for c in changes),
    )
    parameters = {f"new_{n}": _to_json(rows) for n, (_, _, rows) in enumerate(inserts)}
    parameters.update({f"change_{n}": _to_json(c.row) for n, c in enumerate(changes)})
    await conn.execute(statement, parameters)


@functools.cache
def _write_statement(
    inserts: tuple[tuple[str, tuple[str, ...]], ...],
    changes: tuple[tuple[str, tuple[str, ...], tuple[str, ...], bool], ...],
) -> TextClause:
    parts = []
    for n, (name, columns) in enumerate(inserts):
        listed = ", ".join(columns)
        parts.append(
            f"new_{n} AS (INSERT INTO {name} ({listed}) SELECT {listed} FROM"
            f" jsonb_populate_recordset(NULL::{name}, CAST(CAST(:new_{n} AS text) AS jsonb)))"
        )
    for n, (name, keys, columns, stamped) in enumerate(changes):
        assignments = [f"{c} = r.{c}" for c in columns if c not in keys]
        if stamped:
            assignments.append("updated_at = now()")
        found = " AND ".join(f"t.{k} = r.{k}" for k in keys)
        parts.append(
            f"change_{n} AS (UPDATE {name} t SET {', '.join(assignments)} FROM"
            f" jsonb_populate_record(NULL::{name}, CAST(CAST(:change_{n} AS text) AS jsonb)) r"
            f" WHERE {found})"
        )
    return text("WITH " + ", ".join(parts) + " SELECT 1")


def _to_json(rows: Sequence[dict[str, Any]] | dict[str, Any]) -> str:
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


def _json_value(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} has no JSON form for write_rows")


async def order_by_key(conn: AsyncConnection, idempotency_key: str) -> Any | None:
    await lock_idempotency_key(conn, "order", idempotency_key)
    query = text("SELECT order_id, status, request_hash FROM orders WHERE idempotency_key = :key")
    return (await conn.execute(query, {"key": idempotency_key})).first()


async def lock_idempotency_key(conn: AsyncConnection, kind: str, idempotency_key: str) -> None:
    """Until this transaction ends, a request with the same key waits here; it then finds what
    this one stored instead of inserting it again (a client or gateway retry that overlaps the
    first attempt)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"{kind}:{idempotency_key}"},
    )


async def order_by_quote(conn: AsyncConnection, quote_id: str) -> Any | None:
    query = text("SELECT order_id FROM orders WHERE quote_id = :quote")
    return (await conn.execute(query, {"quote": quote_id})).first()


async def get_order(conn: AsyncConnection, order_id: str, *, lock: bool = False) -> Any | None:
    query = "SELECT * FROM orders WHERE order_id = :id" + (" FOR UPDATE" if lock else "")
    return (await conn.execute(text(query), {"id": order_id})).first()


async def order_lines(conn: AsyncConnection, order_id: str, *, lock: bool = False) -> Sequence[Any]:
    query = "SELECT * FROM order_lines WHERE order_id = :id ORDER BY sku" + (
        " FOR UPDATE" if lock else ""
    )
    return (await conn.execute(text(query), {"id": order_id})).all()


async def set_fulfillment_lines(
    conn: AsyncConnection, fulfillment_id: str, lines: dict[str, int]
) -> None:
    """A fulfillment that gave some units back (a partial cancel) goes on with these."""
    await conn.execute(
        text("DELETE FROM fulfillment_lines WHERE fulfillment_id = :id AND NOT sku = ANY(:skus)"),
        {"id": fulfillment_id, "skus": list(lines)},
    )
    for sku, quantity in lines.items():
        await conn.execute(
            text(
                "UPDATE fulfillment_lines SET quantity = :q"
                " WHERE fulfillment_id = :id AND sku = :sku"
            ),
            {"q": quantity, "id": fulfillment_id, "sku": sku},
        )


# Fulfillments


# A fulfillment with the partner its location belongs to, so the gateway can check a partner's
# access from the fulfillment alone.
_FULFILLMENT = (
    "f.*, l.partner_id FROM fulfillments f LEFT JOIN locations l ON l.location_id = f.location_id"
)


async def fulfillments_of(conn: AsyncConnection, order_id: str) -> Sequence[Any]:
    query = text(
        f"SELECT {_FULFILLMENT} WHERE f.order_id = :id ORDER BY f.created_at, f.fulfillment_id"
    )
    return (await conn.execute(query, {"id": order_id})).all()


async def get_fulfillment(conn: AsyncConnection, fulfillment_id: str) -> Any | None:
    query = text(f"SELECT {_FULFILLMENT} WHERE f.fulfillment_id = :id")
    return (await conn.execute(query, {"id": fulfillment_id})).first()


async def fulfillment_lines(
    conn: AsyncConnection, fulfillment_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    rows = await conn.execute(
        text(
            "SELECT fulfillment_id, sku, quantity FROM fulfillment_lines"
            " WHERE fulfillment_id = ANY(:ids) ORDER BY sku"
        ),
        {"ids": list(fulfillment_ids)},
    )
    lines: dict[str, dict[str, int]] = {fid: {} for fid in fulfillment_ids}
    for row in rows:
        lines[row.fulfillment_id][row.sku] = row.quantity
    return lines


async def fulfillment_page(
    conn: AsyncConnection,
    *,
    store_id: str | None = None,
    partner_id: str | None = None,
    status: str | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> Sequence[Any]:
    """A work queue, oldest first, keyset-paginated on (created_at, fulfillment_id)."""
    conditions = []
    if store_id is not None:
        conditions.append("(f.location_id = :store OR f.pickup_store_id = :store)")
    if partner_id is not None:
        conditions.append(
            "f.location_id IN (SELECT location_id FROM locations WHERE partner_id = :partner)"
        )
    if status is not None:
        conditions.append("f.status = :status")
    if after is not None:
        conditions.append(
            "(f.created_at, f.fulfillment_id) > (CAST(:after_at AS timestamptz), :after_id)"
        )
    where = " AND ".join(conditions) or "TRUE"
    query = text(
        f"SELECT {_FULFILLMENT} WHERE {where} ORDER BY f.created_at, f.fulfillment_id LIMIT :limit"
    )
    params = {
        "store": store_id,
        "partner": partner_id,
        "status": status,
        "after_at": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    return (await conn.execute(query, params)).all()


async def overdue_pickups(conn: AsyncConnection, now: datetime, limit: int) -> Sequence[Any]:
    query = text(
        "SELECT f.fulfillment_id, f.order_id FROM fulfillments f"
        " WHERE f.status = 'ready_for_pickup' AND f.pickup_deadline <= :now"
        " ORDER BY f.pickup_deadline LIMIT :limit"
    )
    return (await conn.execute(query, {"now": now, "limit": limit})).all()


async def unaccepted_partner_fulfillments(
    conn: AsyncConnection, reserved_before: datetime, limit: int
) -> Sequence[Any]:
    """Dropship fulfillments reserved before `reserved_before` and still not accepted, the
    longest waiting first. A reserved fulfillment's `updated_at` is when its reservation held:
    the first moment its partner could accept it (for a backorder, when the stock arrived, which
    may be weeks after it was assigned); nothing else updates it while it stays reserved."""
    # The partners' locations first, so the (location_id, status) index finds the few reserved
    # fulfillments instead of this scan (every second, in every replica) reading them all.
    query = text(
        "SELECT f.fulfillment_id, f.order_id FROM fulfillments f"
        " WHERE f.location_id IN (SELECT location_id FROM locations WHERE type = 'dropship')"
        " AND f.location_type = 'dropship' AND f.status = 'reserved'"
        " AND f.updated_at <= :before"
        " ORDER BY f.updated_at, f.fulfillment_id LIMIT :limit"
    )
    return (await conn.execute(query, {"before": reserved_before, "limit": limit})).all()


# Routing decisions and returns


async def attempts(conn: AsyncConnection, order_id: str) -> list[dict[str, Any]]:
    query = text("SELECT decision FROM routing_attempts WHERE order_id = :id ORDER BY attempt")
    return [row.decision for row in await conn.execute(query, {"id": order_id})]


async def insert_return(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(table(ReturnRow)).values(**values))


async def get_return(conn: AsyncConnection, return_id: str) -> Any | None:
    query = text("SELECT * FROM returns WHERE return_id = :id")
    return (await conn.execute(query, {"id": return_id})).first()


async def return_by_key(conn: AsyncConnection, idempotency_key: str) -> Any | None:
    await lock_idempotency_key(conn, "return", idempotency_key)
    query = text("SELECT * FROM returns WHERE idempotency_key = :key")
    return (await conn.execute(query, {"key": idempotency_key})).first()


async def parcels_to_join(
    conn: AsyncConnection, order_id: str, customer_id: str, address_key: str, since: datetime
) -> Sequence[Any]:
    """Unshipped delivery fulfillments of the buyer's earlier orders to the same address."""
    query = text(
        "SELECT o.order_id, f.location_id, f.shipment_id FROM orders o"
        " JOIN fulfillments f ON f.order_id = o.order_id"
        " WHERE o.customer_id = :customer AND o.address_key = :address"
        " AND o.created_at >= :since AND o.order_id <> :order AND o.method = 'delivery'"
        " AND f.status IN ('pending', 'reserved', 'accepted')"
        " ORDER BY o.created_at, f.created_at, f.fulfillment_id"
    )
    params = {"customer": customer_id, "address": address_key, "since": since, "order": order_id}
    return (await conn.execute(query, params)).all()


async def shipment_fulfillments(conn: AsyncConnection, fulfillment_id: str) -> Sequence[Any]:
    """The fulfillments sharing this one's shipment (itself included)."""
    query = text(
        "SELECT s.order_id, s.fulfillment_id FROM fulfillments f JOIN fulfillments s"
        " ON s.shipment_id = f.shipment_id OR s.fulfillment_id = f.fulfillment_id"
        " WHERE f.fulfillment_id = :id ORDER BY s.order_id, s.fulfillment_id"
    )
    return (await conn.execute(query, {"id": fulfillment_id})).all()
