"""Locations, stock levels and the movement ledger. Stock changes are single conditional
statements, so the database serialises concurrent writers on the level row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.infrastructure.tables import table
from services.inventory.db.tables import LocationRow, MovementRow
from services.inventory.domain import Level

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


async def receive_into_level(
    conn: AsyncConnection, location_id: str, sku: str, on_hand_delta: int, reserved_delta: int
) -> Any:
    """Arrived units onto a level (created if there is none yet), `reserved_delta` of them held
    at once for promises waiting on them."""
    statement = text(
        "INSERT INTO stock_levels AS s (location_id, sku, on_hand, reserved, safety_stock, version)"
        " VALUES (:loc, :sku, :on_hand, :reserved, 0, 1)"
        " ON CONFLICT (location_id, sku) DO UPDATE SET on_hand = s.on_hand + :on_hand,"
        " reserved = s.reserved + :reserved, version = s.version + 1, updated_at = now()"
        " RETURNING s.location_id, s.sku, s.on_hand, s.reserved, s.safety_stock, s.version,"
        " s.updated_at, (SELECT type FROM locations WHERE location_id = :loc) AS location_type"
    )
    params = {"loc": location_id, "sku": sku, "on_hand": on_hand_delta, "reserved": reserved_delta}
    return (await conn.execute(statement, params)).one()
