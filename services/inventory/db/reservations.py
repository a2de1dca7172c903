"""Reservations: the header and lines of each hold, and the lock on an id that decides
whether it is a reservation, a promise or a tombstone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, column, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.contracts.inventory import ReservationStatus
from services.infrastructure.tables import table
from services.inventory.db.tables import ReservationLineRow, ReservationRow

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


async def reduce_reservation_lines(
    conn: AsyncConnection, reservation_id: str, lines: dict[str, int]
) -> None:
    """Some units of a held reservation were given back: it goes on holding the rest."""
    for sku, quantity in lines.items():
        await conn.execute(
            text(
                "UPDATE reservation_lines SET quantity = quantity - :q"
                " WHERE reservation_id = :id AND sku = :sku"
            ),
            {"q": quantity, "id": reservation_id, "sku": sku},
        )
    await conn.execute(
        text("DELETE FROM reservation_lines WHERE reservation_id = :id AND quantity <= 0"),
        {"id": reservation_id},
    )


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


async def lock_identifier(conn: AsyncConnection, identifier: str) -> None:
    """Serialise, until the transaction ends, everything that decides what one reservation or
    promise id is (a promise, its release, the tombstone of a release that came first)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:ref, 0))"),
        {"ref": f"reservation-id:{identifier}"},
    )
