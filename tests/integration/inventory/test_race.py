"""The last units, fought over by many concurrent reservations (or promises of incoming stock)
in real database transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.contracts.inventory import (
    PromiseStock,
    ReceiveIn,
    ReleaseStock,
    ReserveStock,
    StockLine,
)
from services.infrastructure.database import UnitOfWork
from services.inventory import handlers
from tests.integration.inventory.conftest import (
    add_supply,
    assert_ledger_reconciles,
    level,
    set_stock,
)

pytestmark = pytest.mark.integration

CONTENDERS = 64


async def test_more_buyers_than_units_never_oversells(
    inventory: httpx.AsyncClient,
    racing_uow: Callable[[], UnitOfWork],
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    location = store["location_id"]
    scarce, common = unique("LAST-UNITS"), unique("COMMON")
    await set_stock(inventory, location, scarce, on_hand=11, safety_stock=1)  # 10 available
    await set_stock(inventory, location, common, on_hand=1000)

    async def buyer(n: int) -> None:
        # Half the buyers want two skus: all-or-nothing must still hold under contention.
        lines = (StockLine(sku=scarce, quantity=1),)
        if n % 2:
            lines += (StockLine(sku=common, quantity=1),)
        command = ReserveStock(
            order_id=f"{scarce}-o{n}",
            fulfillment_id=f"f{n}",
            reservation_id=f"{scarce}-r{n}",
            location_id=location,
            lines=lines,
        )
        async with racing_uow() as uow:
            await handlers.reserve_stock(command, uow)
            await uow.commit()

    await asyncio.gather(*(buyer(n) for n in range(CONTENDERS)))

    async with racing_uow() as uow:
        answers = await uow.connection.execute(
            text(
                "SELECT event_type, count(*) AS n FROM outbox WHERE message_key LIKE :orders"
                " GROUP BY event_type"
            ),
            {"orders": f"{scarce}-o%"},
        )
        counts = {row.event_type.split(".")[2]: row.n for row in answers}
    assert counts == {"stock_reserved": 10, "stock_reservation_rejected": CONTENDERS - 10}
    found = await level(inventory, location, scarce)
    assert (found["on_hand"], found["reserved"], found["available"]) == (11, 10, 0)
    winners_with_common = (await level(inventory, location, common))["reserved"]
    reservations = [
        (await inventory.get(f"/reservations/{scarce}-r{n}")) for n in range(CONTENDERS)
    ]
    held = [r.json() for r in reservations if r.status_code == 200]
    assert len(held) == 10
    assert winners_with_common == sum(
        1 for r in held for line in r["lines"] if line["sku"] == common
    )
    await assert_ledger_reconciles(inventory)


async def test_more_backorders_than_incoming_units_never_over_promises(
    inventory: httpx.AsyncClient,
    racing_uow: Callable[[], UnitOfWork],
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    location = store["location_id"]
    scarce, common = unique("LAST-INCOMING"), unique("COMMON-INCOMING")
    # Ten units on their way in two supplies, and one already promised: nine left to promise.
    await add_supply(inventory, location, scarce, 6, supply_id=unique("po-1"), days=2)
    await add_supply(inventory, location, scarce, 4, supply_id=unique("po-2"), days=5)
    await add_supply(inventory, location, common, 1000, supply_id=unique("po-3"), days=1)
    first = PromiseStock(
        order_id=f"{scarce}-first",
        fulfillment_id="first",
        promise_id=f"{scarce}-first",
        location_id=location,
        lines=(StockLine(sku=scarce, quantity=1),),
    )
    async with racing_uow() as uow:
        await handlers.promise_stock(first, uow)
        await uow.commit()

    async def backorder(n: int) -> None:
        lines = (StockLine(sku=scarce, quantity=1),)
        if n % 2:
            lines += (StockLine(sku=common, quantity=1),)
        command = PromiseStock(
            order_id=f"{scarce}-o{n}",
            fulfillment_id=f"f{n}",
            promise_id=f"{scarce}-p{n}",
            location_id=location,
            lines=lines,
        )
        async with racing_uow() as uow:
            await handlers.promise_stock(command, uow)
            await uow.commit()

    await asyncio.gather(*(backorder(n) for n in range(CONTENDERS)))

    async with racing_uow() as uow:
        answers = await uow.connection.execute(
            text(
                "SELECT event_type, count(*) AS n FROM outbox WHERE message_key LIKE :orders"
                " GROUP BY event_type"
            ),
            {"orders": f"{scarce}-o%"},
        )
        counts = {row.event_type.split(".")[2]: row.n for row in answers}
        promised = (
            await uow.connection.execute(
                text(
                    "SELECT sku, sum(promised) AS promised, sum(quantity - received - promised)"
                    " AS promisable FROM supplies WHERE sku IN (:scarce, :common) GROUP BY sku"
                ),
                {"scarce": scarce, "common": common},
            )
        ).all()
        drawn = (
            await uow.connection.execute(
                text("SELECT sum(quantity) FROM promise_draws WHERE sku = :sku"), {"sku": scarce}
            )
        ).scalar_one()
    assert counts == {"stock_promised": 9, "stock_promise_rejected": CONTENDERS - 9}
    totals = {row.sku: (row.promised, row.promisable) for row in promised}
    assert totals[scarce] == (10, 0)
    assert drawn == 10
    winners = [(await inventory.get(f"/promises/{scarce}-p{n}")) for n in range(CONTENDERS)]
    kept = [w.json() for w in winners if w.status_code == 200]
    assert len(kept) == 9
    with_common = sum(1 for p in kept for line in p["lines"] if line["sku"] == common)
    assert totals[common] == (with_common, 1000 - with_common)


async def test_receipts_racing_promises_and_releases_keep_every_count(
    inventory: httpx.AsyncClient,
    racing_uow: Callable[[], UnitOfWork],
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    location, sku = store["location_id"], unique("RACING-INCOMING")
    supplies = [unique(f"po-{n}") for n in range(3)]
    for n, supply_id in enumerate(supplies):
        await add_supply(inventory, location, sku, 8, supply_id=supply_id, days=n + 1)

    async def backorder(n: int) -> None:
        command = PromiseStock(
            order_id=f"{sku}-o{n}",
            fulfillment_id=f"f{n}",
            promise_id=f"{sku}-p{n}",
            location_id=location,
            lines=(StockLine(sku=sku, quantity=1 + n % 3),),
        )
        async with racing_uow() as uow:
            await handlers.promise_stock(command, uow)
            await uow.commit()
        if n % 4 == 0:  # a quarter is cancelled again, racing the receipts
            release = ReleaseStock(order_id=command.order_id, reservation_id=command.promise_id)
            async with racing_uow() as uow:
                await handlers.release_stock(release, uow)
                await uow.commit()

    async def receipt(supply_id: str) -> None:
        for _ in range(4):
            async with racing_uow() as uow:
                await handlers.receive_supply(supply_id, ReceiveIn(quantity=2), uow)

    await asyncio.gather(
        *(backorder(n) for n in range(CONTENDERS)), *(receipt(s) for s in supplies)
    )

    found = await level(inventory, location, sku)
    assert found["on_hand"] == 24
    async with racing_uow() as uow:
        conn = uow.connection
        held_for_promises = (
            await conn.execute(
                text(
                    "SELECT coalesce(sum(d.arrived), 0) FROM promise_draws d JOIN promises p"
                    " USING (promise_id) WHERE p.status = 'promised' AND d.sku = :sku"
                ),
                {"sku": sku},
            )
        ).scalar_one()
        reserved = (
            await conn.execute(
                text(
                    "SELECT coalesce(sum(l.quantity), 0) FROM reservation_lines l JOIN reservations"
                    " r USING (reservation_id) WHERE r.status = 'held' AND l.sku = :sku"
                ),
                {"sku": sku},
            )
        ).scalar_one()
        outstanding = (
            await conn.execute(
                text(
                    "SELECT coalesce(sum(d.quantity - d.arrived), 0) FROM promise_draws d"
                    " JOIN promises p USING (promise_id) WHERE p.status = 'promised'"
                    " AND d.sku = :sku"
                ),
                {"sku": sku},
            )
        ).scalar_one()
        promised = (
            await conn.execute(
                text("SELECT sum(promised) FROM supplies WHERE sku = :sku"), {"sku": sku}
            )
        ).scalar_one()
    # Every unit on hand is free, held for a waiting promise, or in a reservation; every
    # promised unit still incoming is counted on its supply.
    assert found["reserved"] == held_for_promises + reserved
    assert promised == outstanding
    await assert_ledger_reconciles(inventory)
