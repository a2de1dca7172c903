"""A poll's messages in one transaction against the real database: reservations in savepoints
of one batch, a failure and a redelivery of the whole batch, and still one effect each."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.contracts.inventory import ReserveStock, StockLine
from services.infrastructure.database import UnitOfWork
from services.infrastructure.inbox import Delivery, Dispatcher
from services.inventory import handlers
from tests.integration.inventory.conftest import assert_ledger_reconciles, level, set_stock
from tests.support.kafka import envelope_bytes

pytestmark = pytest.mark.integration


def reserve_one(prefix: str, n: int, location_id: str, sku: str) -> ReserveStock:
    """Order `n` of a test's orders, for one unit of `sku`."""
    return ReserveStock(
        order_id=f"{prefix}-order-{n}",
        fulfillment_id=f"{prefix}-f{n}",
        reservation_id=f"{prefix}-r{n}",
        location_id=location_id,
        lines=(StockLine(sku=sku, quantity=1),),
    )


def delivered(command: ReserveStock, event_id: str, partition: int, offset: int) -> Delivery:
    return Delivery(
        topic="inventory.commands.v1",
        partition=partition,
        offset=offset,
        key=command.order_id.encode(),
        value=envelope_bytes(command, event_id=event_id),
        headers={},
    )


async def inbox_rows(engine: AsyncEngine, consumer: str) -> dict[str, int]:
    """How many inbox rows `consumer` has per event id."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_id, count(*) FROM inbox WHERE consumer = :c GROUP BY event_id"),
            {"c": consumer},
        )
        return {event_id: count for event_id, count in rows}


async def reservations_answered(engine: AsyncEngine, prefix: str) -> dict[str, int]:
    """How many StockReserved answers the outbox holds per reservation of a test's orders."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT payload->'data'->>'reservation_id', count(*) FROM outbox"
                " WHERE event_type = 'omniroute.inventory.stock_reserved.v1'"
                " AND payload->'data'->>'reservation_id' LIKE :prefix"
                " GROUP BY 1"
            ),
            {"prefix": f"{prefix}-r%"},
        )
        return {reservation_id: n for reservation_id, n in rows}


async def test_a_redelivered_batch_has_one_effect_per_event(
    inventory: httpx.AsyncClient,
    inventory_app: FastAPI,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    sku = unique("BATCH")
    await set_stock(inventory, store["location_id"], sku, on_hand=100)
    engine = inventory_app.state.runtime.engine
    wakes: list[str] = []
    failing = {"order-3"}

    async def reserve_or_fail(command: ReserveStock, uow: UnitOfWork) -> None:
        await handlers.reserve_stock(command, uow)
        if command.order_id.endswith(tuple(failing)):
            failing.clear()
            raise ValueError("failed once, after its reservation")

    consumer = unique("tests.batch")
    dispatcher = Dispatcher[UnitOfWork](
        consumer,
        {ReserveStock: reserve_or_fail},
        lambda: UnitOfWork(engine, source="/tests", on_commit=lambda: wakes.append("woken")),
        retry_delay=0,
    )
    prefix = unique("batch")
    commands = [reserve_one(prefix, n, store["location_id"], sku) for n in range(8)]
    event_ids = [str(uuid.uuid4()) for _ in commands]
    deliveries = [
        delivered(command, event_id, partition=n % 2, offset=n)
        for n, (command, event_id) in enumerate(zip(commands, event_ids, strict=True))
    ]
    # A repeat of the first message inside the same batch, and a poison message.
    deliveries.append(Delivery(**{**vars(deliveries[0]), "offset": 8}))
    deliveries.append(Delivery(**{**vars(deliveries[0]), "offset": 9, "value": b"\x00garbage"}))

    with pytest.raises(ValueError, match="failed once"):
        await dispatcher.dispatch_batch(deliveries)
    # Order 3 was undone alone; order 5 and on in its partition wait behind it, the rest held.
    assert (await level(inventory, store["location_id"], sku))["reserved"] == 5
    assert wakes == ["woken"]  # once, after the batch's commit

    await dispatcher.dispatch_batch(deliveries)  # the whole batch, read again
    assert (await level(inventory, store["location_id"], sku))["reserved"] == 8

    assert await inbox_rows(engine, consumer) == dict.fromkeys(event_ids, 1)
    assert await reservations_answered(engine, prefix) == {c.reservation_id: 1 for c in commands}
    async with engine.connect() as conn:
        parked = await conn.execute(
            text("SELECT count(*) FROM dead_letters WHERE consumer = :c"), {"c": consumer}
        )
        assert parked.scalar_one() == 1  # parked with the first batch, not again
    await assert_ledger_reconciles(inventory)


async def test_a_batch_claims_its_inbox_rows_at_once_and_applies_each_event_once(
    inventory: httpx.AsyncClient,
    inventory_app: FastAPI,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    """The path every batch takes when nothing fails: one claim for the whole poll, which tells
    new messages from ones applied by an earlier batch and from a repeat within this one."""
    sku = unique("CLAIM")
    await set_stock(inventory, store["location_id"], sku, on_hand=100)
    engine = inventory_app.state.runtime.engine
    consumer = unique("tests.claim")
    dispatcher = Dispatcher[UnitOfWork](
        consumer,
        {ReserveStock: handlers.reserve_stock},
        lambda: UnitOfWork(engine, source="/tests"),
        retry_delay=0,
    )
    prefix = unique("claim")

    def delivery(n: int, offset: int, event_id: str) -> Delivery:
        command = reserve_one(prefix, n, store["location_id"], sku)
        return delivered(command, event_id, partition=0, offset=offset)

    ids = [str(uuid.uuid4()) for _ in range(6)]
    await dispatcher.dispatch_batch([delivery(n, n, ids[n]) for n in range(2)])
    assert (await level(inventory, store["location_id"], sku))["reserved"] == 2

    # Orders 0 and 1 again (applied by the batch before), 2 to 5 new, 4 twice in this batch.
    again = [delivery(n, 10 + n, ids[n]) for n in range(6)] + [delivery(4, 16, ids[4])]
    await dispatcher.dispatch_batch(again)
    assert (await level(inventory, store["location_id"], sku))["reserved"] == 6

    assert await inbox_rows(engine, consumer) == dict.fromkeys(ids, 1)
    assert await reservations_answered(engine, prefix) == {f"{prefix}-r{n}": 1 for n in range(6)}
    await assert_ledger_reconciles(inventory)


async def test_an_id_the_database_refuses_is_parked_alone(
    inventory: httpx.AsyncClient,
    inventory_app: FastAPI,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    """A CloudEvent id with a NUL in it fails the poll's claim of every message at once: the
    batch is done again with a claim per message, the others apply and that one is parked."""
    sku = unique("NULID")
    await set_stock(inventory, store["location_id"], sku, on_hand=10)
    engine = inventory_app.state.runtime.engine
    consumer = unique("tests.nul")
    dispatcher = Dispatcher[UnitOfWork](
        consumer,
        {ReserveStock: handlers.reserve_stock},
        lambda: UnitOfWork(engine, source="/tests"),
        max_attempts=2,
        retry_delay=0,
    )
    prefix = unique("nul")
    ids = [str(uuid.uuid4()), "bad\x00id", str(uuid.uuid4())]
    # A partition each: the bad one holds up no other.
    deliveries = [
        delivered(
            reserve_one(prefix, n, store["location_id"], sku), event_id, partition=n, offset=0
        )
        for n, event_id in enumerate(ids)
    ]

    for _ in range(3):  # read again after each failure, as the consumer would
        try:
            await dispatcher.dispatch_batch(deliveries)
            break
        except Exception:  # the failure that makes the consumer read again
            continue
    else:
        raise AssertionError("the batch never went through")
    assert (await level(inventory, store["location_id"], sku))["reserved"] == 2
    async with engine.connect() as conn:
        parked = await conn.execute(
            text("SELECT reason FROM dead_letters WHERE consumer = :c"), {"c": consumer}
        )
        reasons = [row.reason for row in parked]
    assert len(reasons) == 1
    assert "handler failed 2 times" in reasons[0]
    await assert_ledger_reconciles(inventory)
