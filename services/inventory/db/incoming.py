"""Supplies (incoming stock) and the promises of them to backorders. Every writer locks supplies
by sku, then supply id, and a supply before the promises drawing on it, so none deadlock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.infrastructure.tables import table
from services.inventory.db.tables import PromiseDrawRow, PromiseLineRow

# Supplies (incoming stock)


SUPPLY_COLUMNS = (
    "supply_id, location_id, sku, quantity, received, promised, expected_at, created_at, updated_at"
)


async def get_supply(conn: AsyncConnection, supply_id: str, *, lock: bool = False) -> Any | None:
    query = f"SELECT {SUPPLY_COLUMNS} FROM supplies WHERE supply_id = :id" + (
        " FOR UPDATE" if lock else ""
    )
    return (await conn.execute(text(query), {"id": supply_id})).first()


async def upsert_supply(conn: AsyncConnection, values: dict[str, Any]) -> Any:
    """Insert a supply, or change its location, sku, quantity and expected time (received and
    promised are kept)."""
    statement = text(
        "INSERT INTO supplies AS s (supply_id, location_id, sku, quantity, received, promised,"
        " expected_at) VALUES (:supply_id, :location_id, :sku, :quantity, 0, 0, :expected_at)"
        " ON CONFLICT (supply_id) DO UPDATE SET location_id = excluded.location_id,"
        " sku = excluded.sku, quantity = excluded.quantity, expected_at = excluded.expected_at,"
        f" updated_at = now() RETURNING {SUPPLY_COLUMNS}"
    )
    return (await conn.execute(statement, values)).one()


async def list_supplies(
    conn: AsyncConnection,
    skus: Sequence[str] | None,
    location_id: str | None,
    status: str | None,
) -> Sequence[Any]:
    """Supplies of some skus and/or at a location, soonest first; at most 1000 rows when no sku
    narrows the list."""
    conditions = []
    if skus:
        conditions.append("sku = ANY(:skus)")
    if location_id:
        conditions.append("location_id = :loc")
    if status == "incoming":
        conditions.append("received < quantity")
    elif status == "received":
        conditions.append("received >= quantity")
    where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    limit = "" if skus else " LIMIT 1000"
    query = f"SELECT {SUPPLY_COLUMNS} FROM supplies{where} ORDER BY expected_at, supply_id{limit}"
    params = {"skus": list(skus or ()), "loc": location_id}
    return (await conn.execute(text(query), params)).all()


async def lock_promisable_supplies(
    conn: AsyncConnection, location_id: str, sku: str
) -> Sequence[Any]:
    """The supplies of a sku at a location with units left to promise, locked in supply id
    order (every writer locks supplies by sku, then supply id, so they never deadlock)."""
    query = text(
        f"SELECT {SUPPLY_COLUMNS} FROM supplies WHERE location_id = :loc AND sku = :sku"
        " AND quantity - received - promised > 0 ORDER BY supply_id FOR UPDATE"
    )
    return (await conn.execute(query, {"loc": location_id, "sku": sku})).all()


async def lock_supplies_at(conn: AsyncConnection, location_id: str, skus: Iterable[str]) -> None:
    """Wait for any receipt of these skus at the location that is under way: every supply of
    them there, locked in the writers' order (sku, then supply id)."""
    await conn.execute(
        text(
            "SELECT supply_id FROM supplies WHERE location_id = :loc AND sku = ANY(:skus)"
            " ORDER BY sku, supply_id FOR UPDATE"
        ),
        {"loc": location_id, "skus": sorted(skus)},
    )


async def lock_supplies(conn: AsyncConnection, supply_ids: Iterable[str]) -> Sequence[Any]:
    query = text(
        f"SELECT {SUPPLY_COLUMNS} FROM supplies WHERE supply_id = ANY(:ids)"
        " ORDER BY sku, supply_id FOR UPDATE"
    )
    return (await conn.execute(query, {"ids": list(supply_ids)})).all()


_PROMISE = text(
    # The condition is the promise rule, checked again on the locked row: never promise more
    # than is still incoming and unpromised.
    "UPDATE supplies SET promised = promised + :qty, updated_at = now()"
    " WHERE supply_id = :id AND quantity - received - promised >= :qty RETURNING supply_id"
)


async def try_promise(conn: AsyncConnection, supply_id: str, quantity: int) -> bool:
    return (await conn.execute(_PROMISE, {"id": supply_id, "qty": quantity})).first() is not None


async def change_supply(
    conn: AsyncConnection, supply_id: str, *, received_delta: int = 0, promised_delta: int = 0
) -> Any:
    statement = text(
        "UPDATE supplies SET received = received + :received, promised = promised + :promised,"
        f" updated_at = now() WHERE supply_id = :id RETURNING {SUPPLY_COLUMNS}"
    )
    params = {"id": supply_id, "received": received_delta, "promised": promised_delta}
    return (await conn.execute(statement, params)).one()


async def promisable_by_sku(
    conn: AsyncConnection, location_id: str, skus: Iterable[str]
) -> dict[str, int]:
    query = text(
        "SELECT sku, sum(greatest(quantity - received - promised, 0)) AS promisable"
        " FROM supplies WHERE location_id = :loc AND sku = ANY(:skus) GROUP BY sku"
    )
    rows = await conn.execute(query, {"loc": location_id, "skus": list(skus)})
    return {row.sku: int(row.promisable) for row in rows}


# Promises


async def claim_promise(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert the promise header; False when the id exists already. Its created_at is the
    moment of the insert, after the supplies were locked: the order promises are kept in."""
    statement = text(
        "INSERT INTO promises (promise_id, order_id, fulfillment_id, location_id, status,"
        " promised_at, created_at, updated_at) VALUES (:promise_id, :order_id, :fulfillment_id,"
        " :location_id, :status, :promised_at, clock_timestamp(), clock_timestamp())"
        " ON CONFLICT (promise_id) DO NOTHING RETURNING promise_id"
    )
    return (await conn.execute(statement, values)).first() is not None


async def add_promise_lines(conn: AsyncConnection, promise_id: str, lines: dict[str, int]) -> None:
    await conn.execute(
        insert(table(PromiseLineRow)),
        [{"promise_id": promise_id, "sku": sku, "quantity": q} for sku, q in lines.items()],
    )


async def promise_lines(conn: AsyncConnection, promise_id: str) -> dict[str, int]:
    rows = await conn.execute(
        text("SELECT sku, quantity FROM promise_lines WHERE promise_id = :id ORDER BY sku"),
        {"id": promise_id},
    )
    return {row.sku: row.quantity for row in rows}


async def add_promise_draws(conn: AsyncConnection, draws: list[dict[str, Any]]) -> None:
    await conn.execute(insert(table(PromiseDrawRow)), draws)


async def get_promise(conn: AsyncConnection, promise_id: str, *, lock: bool = False) -> Any | None:
    query = "SELECT * FROM promises WHERE promise_id = :id" + (" FOR UPDATE" if lock else "")
    return (await conn.execute(text(query), {"id": promise_id})).first()


async def promise_draws(conn: AsyncConnection, promise_id: str) -> Sequence[Any]:
    query = text(
        "SELECT promise_id, supply_id, sku, quantity, arrived FROM promise_draws"
        " WHERE promise_id = :id ORDER BY sku, supply_id"
    )
    return (await conn.execute(query, {"id": promise_id})).all()


async def lock_waiting_draws(conn: AsyncConnection, supply_id: str) -> Sequence[Any]:
    """The promises still waiting on a supply, in the order they were made, locked."""
    query = text(
        "SELECT d.promise_id, d.quantity - d.arrived AS outstanding FROM promise_draws d"
        " JOIN promises p ON p.promise_id = d.promise_id"
        " WHERE d.supply_id = :id AND p.status = 'promised' AND d.arrived < d.quantity"
        " ORDER BY p.created_at, p.promise_id FOR UPDATE"
    )
    return (await conn.execute(query, {"id": supply_id})).all()


async def record_arrivals(
    conn: AsyncConnection, supply_id: str, arrivals: Sequence[tuple[str, int]]
) -> None:
    if arrivals:
        await conn.execute(
            text(
                "UPDATE promise_draws SET arrived = arrived + :n"
                " WHERE promise_id = :promise AND supply_id = :supply"
            ),
            [{"n": n, "promise": promise_id, "supply": supply_id} for promise_id, n in arrivals],
        )


async def complete_promises(conn: AsyncConnection, promise_ids: Sequence[str]) -> Sequence[Any]:
    """Of these promises still waiting, those whose every unit arrived, in promise order."""
    query = text(
        "SELECT p.* FROM promises p WHERE p.promise_id = ANY(:ids) AND p.status = 'promised'"
        " AND NOT EXISTS (SELECT 1 FROM promise_draws d WHERE d.promise_id = p.promise_id"
        " AND d.arrived < d.quantity) ORDER BY p.created_at, p.promise_id"
    )
    return (await conn.execute(query, {"ids": list(promise_ids)})).all()


async def set_promise_status(conn: AsyncConnection, promise_id: str, status: str) -> None:
    await conn.execute(
        text("UPDATE promises SET status = :status, updated_at = now() WHERE promise_id = :id"),
        {"status": status, "id": promise_id},
    )
