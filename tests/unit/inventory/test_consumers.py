"""Inventory's subscriber wiring on FastStream's in-memory broker: a command on
inventory.commands.v1 reaches its handler as a typed model."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.contracts import topics
from services.contracts.inventory import CommitStock, PromiseStock, ReserveStock, StockLine
from services.inventory import consumers, handlers
from services.inventory.settings import InventorySettings
from tests.support.fakes import FakeUnitOfWork
from tests.support.kafka import envelope_bytes


async def test_commands_reach_their_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[Any] = []

    async def record(command: Any, uow: FakeUnitOfWork) -> None:
        received.append(command)

    monkeypatch.setattr(handlers, "reserve_stock", record)
    monkeypatch.setattr(handlers, "commit_stock", record)
    monkeypatch.setattr(handlers, "promise_stock", record)
    store: dict[str, Any] = {"claimed": set(), "dead": [], "emitted": []}
    broker = KafkaBroker()
    broker.include_router(
        consumers.build_router(InventorySettings(), lambda: FakeUnitOfWork(store))  # type: ignore[arg-type, return-value]
    )
    reserve = ReserveStock(
        order_id="o1",
        fulfillment_id="f1",
        reservation_id="r1",
        location_id="store-1",
        lines=(StockLine(sku="TEE-WHT-M", quantity=2),),
    )
    commit = CommitStock(order_id="o1", reservation_id="r1")
    promise = PromiseStock(
        order_id="o1",
        fulfillment_id="f2",
        promise_id="f2",
        location_id="wh-1",
        lines=(StockLine(sku="TENT-2P", quantity=1),),
    )

    async with TestKafkaBroker(broker) as test_broker:
        for command in (reserve, commit, promise):
            await test_broker.publish(
                envelope_bytes(command), topics.INVENTORY_COMMANDS.name, key=b"o1"
            )
        await test_broker.publish(b"garbage", topics.INVENTORY_COMMANDS.name, key=b"o1")

    assert received == [reserve, commit, promise]
    assert len(store["claimed"]) == 3
    assert store["dead"] == [
        "not a CloudEvent: message: Invalid JSON: expected value at line 1 column 1"
    ]
