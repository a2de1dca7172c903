"""Inventory's tables and queries. Stock changes are single conditional statements, so the
database serialises concurrent writers on the stock level row and CHECK constraints make an
oversell impossible even if a rule upstream were wrong."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    column,
    text,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.contracts.inventory import ReservationStatus
from services.infrastructure.tables import table, timestamp, with_infrastructure
from services.inventory.domain import Level


class InventoryTable(SQLModel, registry=registry()):
    """Base of inventory's tables: a metadata of its own, so no two services share a table
    definition even when the names match (both inventory and orders have `locations`)."""


class LocationRow(InventoryTable, table=True):
    __tablename__ = "locations"
    __table_args__ = (
        CheckConstraint("type IN ('warehouse', 'store', 'dropship')", name="ck_locations_type"),
    )

    location_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    type: str = Field(max_length=16)
    lat: float
    lon: float
    capabilities: list[str] = Field(sa_column=Column(ARRAY(String(16)), nullable=False))
    priority: int
    ship_capacity: int
    partner_id: str | None = Field(default=None, max_length=64, index=True)
    feed_sequence: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime | None = timestamp()
    updated_at: datetime | None = timestamp()


class StockLevelRow(InventoryTable, table=True):
    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="ck_stock_levels_on_hand"),
        CheckConstraint("reserved >= 0", name="ck_stock_levels_reserved"),
        CheckConstraint("reserved <= on_hand", name="ck_stock_levels_reserved_le_on_hand"),
        CheckConstraint("safety_stock >= 0", name="ck_stock_levels_safety_stock"),
        Index("ix_stock_levels_sku", "sku"),
    )

    location_id: str = Field(
        sa_column=Column(String(64), ForeignKey("locations.location_id"), primary_key=True)
    )
    sku: str = Field(primary_key=True, max_length=64)
    on_hand: int
    reserved: int = 0
    safety_stock: int = 0
    version: int = Field(default=1, sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime | None = timestamp()


class MovementRow(InventoryTable, table=True):
    """Append-only ledger: every change of on_hand or reserved, with why. Its sums are the levels."""

    __tablename__ = "movements"
    __table_args__ = (
        ForeignKeyConstraint(
            ["location_id", "sku"], ["stock_levels.location_id", "stock_levels.sku"]
        ),
        Index("ix_movements_level", "location_id", "sku"),
        Index("ix_movements_reference", "reference"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    location_id: str = Field(max_length=64)
    sku: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    on_hand_delta: int
    reserved_delta: int
    reference: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, max_length=500)
    occurred_at: datetime | None = timestamp()


class ReservationRow(InventoryTable, table=True):
    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint(
            "status IN ('held', 'committed', 'released', 'expired')", name="ck_reservations_status"
        ),
        Index("ix_reservations_expiring", "hold_until", postgresql_where=text("status = 'held'")),
    )

    reservation_id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(max_length=64, index=True)
    fulfillment_id: str | None = Field(default=None, max_length=64)
    location_id: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16)
    hold_until: datetime | None = timestamp(nullable=True)
    created_at: datetime | None = timestamp()
    updated_at: datetime | None = timestamp()


class ReservationLineRow(InventoryTable, table=True):
    __tablename__ = "reservation_lines"

    reservation_id: str = Field(
        sa_column=Column(String(64), ForeignKey("reservations.reservation_id"), primary_key=True)
    )
    sku: str = Field(primary_key=True, max_length=64)
    quantity: int


METADATA = with_infrastructure(InventoryTable.metadata)


# Locations


async def upsert_location(conn: AsyncConnection, values: dict[str, Any]) -> LocationRow:
    proposed = insert(table(LocationRow)).values(**values)
    upsert = proposed.on_conflict_do_update(
        index_elements=["location_id"],
        set_={
            **{k: proposed.excluded[k] for k in values if k != "location_id"},
            "updated_at": text("now()"),
        },
    ).returning(*table(LocationRow).c)
    return LocationRow(**(await conn.execute(upsert)).one()._mapping)


async def get_location(
    conn: AsyncConnection, location_id: str, *, lock: bool = False
) -> LocationRow | None:
    query = text(
        "SELECT * FROM locations WHERE location_id = :id" + (" FOR UPDATE" if lock else "")
    )
    row = (await conn.execute(query, {"id": location_id})).mappings().first()
    return LocationRow(**row) if row else None


async def list_locations(
    conn: AsyncConnection, location_type: str | None = None
) -> list[LocationRow]:
    query = "SELECT * FROM locations" + (" WHERE type = :type" if location_type else "")
    rows = (
        await conn.execute(text(query + " ORDER BY location_id"), {"type": location_type})
    ).mappings()
    return [LocationRow(**row) for row in rows]


async def set_feed_sequence(conn: AsyncConnection, location_id: str, sequence: int) -> None:
    await conn.execute(
        text(
            "UPDATE locations SET feed_sequence = :seq, updated_at = now() WHERE location_id = :id"
        ),
        {"seq": sequence, "id": location_id},
    )


# Stock levels


LEVEL_COLUMNS = (
    "s.location_id, s.sku, s.on_hand, s.reserved, s.safety_stock, s.version, s.updated_at"
)


def level_of(row: Any) -> Level:
    return Level(row.on_hand, row.reserved, row.safety_stock)


async def get_levels(
    conn: AsyncConnection, location_id: str, skus: Iterable[str], *, lock: bool = False
) -> dict[str, Any]:
    query = (
        f"SELECT {LEVEL_COLUMNS} FROM stock_levels s WHERE s.location_id = :loc"
        " AND s.sku = ANY(:skus) ORDER BY s.sku" + (" FOR UPDATE" if lock else "")
    )
    rows = (await conn.execute(text(query), {"loc": location_id, "skus": list(skus)})).all()
    return {row.sku: row for row in rows}


async def list_levels(
    conn: AsyncConnection, location_id: str | None, skus: Sequence[str] | None
) -> Sequence[Any]:
    """Levels at a location and/or of some skus; all of the skus' levels (every location), but
    at most 1000 rows when no sku narrows the list."""
    conditions = []
    if location_id:
        conditions.append("s.location_id = :loc")
    if skus:
        conditions.append("s.sku = ANY(:skus)")
    where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    limit = "" if skus else " LIMIT 1000"
    query = (
        f"SELECT {LEVEL_COLUMNS} FROM stock_levels s{where} ORDER BY s.location_id, s.sku{limit}"
    )
    params = {"loc": location_id, "skus": list(skus or ())}
    return (await conn.execute(text(query), params)).all()


_RESERVE = text(
    # The condition is the reservation rule: it holds only if enough is available at the moment
    # the row is locked, so concurrent reservations for the last unit cannot both succeed.
    "UPDATE stock_levels s SET reserved = s.reserved + :qty, version = s.version + 1,"
    " updated_at = now() FROM locations l"
    " WHERE l.location_id = s.location_id AND s.location_id = :loc AND s.sku = :sku"
    " AND s.on_hand - s.reserved - s.safety_stock >= :qty"
    f" RETURNING {LEVEL_COLUMNS}, l.type AS location_type"
)

_CHANGE = text(
    "UPDATE stock_levels s SET on_hand = s.on_hand + :on_hand_delta,"
    " reserved = s.reserved + :reserved_delta, version = s.version + 1, updated_at = now()"
    " FROM locations l WHERE l.location_id = s.location_id AND s.location_id = :loc AND s.sku = :sku"
    f" RETURNING {LEVEL_COLUMNS}, l.type AS location_type"
)

_SET = text(
    "INSERT INTO stock_levels AS s (location_id, sku, on_hand, reserved, safety_stock, version)"
    " VALUES (:loc, :sku, :on_hand, 0, :safety_stock, 1)"
    " ON CONFLICT (location_id, sku) DO UPDATE SET on_hand = :on_hand,"
    " safety_stock = :safety_stock, version = s.version + 1, updated_at = now()"
    " RETURNING s.location_id, s.sku, s.on_hand, s.reserved, s.safety_stock, s.version,"
    " s.updated_at, (SELECT type FROM locations WHERE location_id = :loc) AS location_type"
)


async def try_reserve(
    conn: AsyncConnection, location_id: str, sku: str, quantity: int
) -> Any | None:
    """Reserve if available; the updated level, or None when there is not enough (or no level)."""
    return (await conn.execute(_RESERVE, {"loc": location_id, "sku": sku, "qty": quantity})).first()


async def change_level(
    conn: AsyncConnection,
    location_id: str,
    sku: str,
    *,
    on_hand_delta: int = 0,
    reserved_delta: int = 0,
) -> Any:
    return (
        await conn.execute(
            _CHANGE,
            {
                "loc": location_id,
                "sku": sku,
                "on_hand_delta": on_hand_delta,
                "reserved_delta": reserved_delta,
            },
        )
    ).one()


async def put_level(
    conn: AsyncConnection, location_id: str, sku: str, on_hand: int, safety_stock: int
) -> Any:
    """Insert or overwrite on_hand and safety_stock (reserved is kept)."""
    return (
        await conn.execute(
            _SET, {"loc": location_id, "sku": sku, "on_hand": on_hand, "safety_stock": safety_stock}
        )
    ).one()


async def record_movements(conn: AsyncConnection, movements: list[dict[str, Any]]) -> None:
    if movements:
        await conn.execute(insert(table(MovementRow)), movements)


async def movement_by_reference(conn: AsyncConnection, reference: str) -> Any | None:
    """The movement recorded under `reference`, after waiting for any transaction recording
    one under it now (so two overlapping repeats never both apply)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:ref, 0))"), {"ref": reference}
    )
    query = text("SELECT * FROM movements WHERE reference = :ref ORDER BY id LIMIT 1")
    return (await conn.execute(query, {"ref": reference})).first()


async def has_movement(conn: AsyncConnection, kind: str, reference: str) -> bool:
    query = text("SELECT 1 FROM movements WHERE reference = :ref AND kind = :kind LIMIT 1")
    return (await conn.execute(query, {"ref": reference, "kind": kind})).first() is not None


async def availability(
    conn: AsyncConnection, skus: Sequence[str], location_type: str | None
) -> Sequence[Any]:
    query = (
        "SELECT s.sku, s.on_hand, s.reserved, s.safety_stock, l.location_id, l.name, l.type,"
        " l.lat, l.lon FROM stock_levels s JOIN locations l ON l.location_id = s.location_id"
        " WHERE s.sku = ANY(:skus)" + (" AND l.type = :type" if location_type else "")
    )
    return (await conn.execute(text(query), {"skus": list(skus), "type": location_type})).all()


async def mismatched_levels(conn: AsyncConnection) -> tuple[int, list[str]]:
    """Levels whose on_hand or reserved differ from the sum of their movements."""
    checked = (await conn.execute(text("SELECT count(*) FROM stock_levels"))).scalar_one()
    rows = (
        await conn.execute(
            text(
                "SELECT s.location_id, s.sku, s.on_hand, s.reserved,"
                " coalesce(m.on_hand, 0) AS ledger_on_hand, coalesce(m.reserved, 0) AS ledger_reserved"
                " FROM stock_levels s LEFT JOIN (SELECT location_id, sku, sum(on_hand_delta) AS on_hand,"
                " sum(reserved_delta) AS reserved FROM movements GROUP BY location_id, sku) m"
                " ON m.location_id = s.location_id AND m.sku = s.sku"
                " WHERE s.on_hand <> coalesce(m.on_hand, 0) OR s.reserved <> coalesce(m.reserved, 0)"
                " ORDER BY s.location_id, s.sku"
            )
        )
    ).all()
    return checked, [
        f"{r.sku}@{r.location_id}: level on_hand={r.on_hand} reserved={r.reserved}, "
        f"ledger on_hand={r.ledger_on_hand} reserved={r.ledger_reserved}"
        for r in rows
    ]


# Reservations


async def claim_reservation(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert the reservation header; False when the id exists already (a repeat command)."""
    statement = (
        insert(table(ReservationRow))
        .values(**values)
        .on_conflict_do_nothing()
        .returning(column("reservation_id", String))
    )
    return (await conn.execute(statement)).first() is not None


async def add_reservation_lines(
    conn: AsyncConnection, reservation_id: str, lines: dict[str, int]
) -> None:
    await conn.execute(
        insert(table(ReservationLineRow)),
        [{"reservation_id": reservation_id, "sku": sku, "quantity": q} for sku, q in lines.items()],
    )


async def get_reservation(
    conn: AsyncConnection, reservation_id: str, *, lock: bool = False
) -> Any | None:
    query = "SELECT * FROM reservations WHERE reservation_id = :id" + (
        " FOR UPDATE" if lock else ""
    )
    return (await conn.execute(text(query), {"id": reservation_id})).first()


async def reservation_lines(conn: AsyncConnection, reservation_id: str) -> dict[str, int]:
    rows = await conn.execute(
        text("SELECT sku, quantity FROM reservation_lines WHERE reservation_id = :id ORDER BY sku"),
        {"id": reservation_id},
    )
    return {row.sku: row.quantity for row in rows}


async def set_reservation_status(
    conn: AsyncConnection, reservation_id: str, status: ReservationStatus
) -> None:
    await conn.execute(
        text(
            "UPDATE reservations SET status = :status, updated_at = now() WHERE reservation_id = :id"
        ),
        {"status": status.value, "id": reservation_id},
    )


async def lock_expired_reservations(
    conn: AsyncConnection, now: datetime, limit: int
) -> Sequence[Any]:
    """Held reservations past their hold time; SKIP LOCKED lets several replicas sweep at once."""
    query = text(
        "SELECT * FROM reservations WHERE status = 'held' AND hold_until <= :now"
        " ORDER BY hold_until, reservation_id LIMIT :limit FOR UPDATE SKIP LOCKED"
    )
    return (await conn.execute(query, {"now": now, "limit": limit})).all()
