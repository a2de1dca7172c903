"""The last units, fought over by many concurrent reservations in real database transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.contracts.inventory import ReserveStock, StockLine
from services.infrastructure.database import UnitOfWork
from services.inventory import handlers
from tests.integration.inventory.conftest import assert_ledger_reconciles, level, set_stock

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
