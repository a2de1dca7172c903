"""The outbox relay killed mid-backlog: nothing lost, nothing applied twice downstream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.contracts import topics
from services.contracts.inventory import ReserveStock, StockLine
from services.infrastructure.broker import create_broker
from services.infrastructure.database import UnitOfWork, create_engine
from services.infrastructure.outbox import OutboxRelay
from services.inventory.settings import InventorySettings
from tests.integration.inventory.conftest import assert_ledger_reconciles, level, set_stock
from tests.support.kafka import TopicWatcher, of_type

pytestmark = pytest.mark.integration

BACKLOG = 100
BATCH = 20


class KilledMidBatch(Exception):
    pass


class DiesAfter:
    """Passes `limit` messages to the real broker, then dies like a killed process would:
    after they went out, before the batch is marked published."""

    def __init__(self, publisher: Any, limit: int) -> None:
        self._publisher = publisher
        self._left = limit

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        if self._left == 0:
            raise KilledMidBatch
        self._left -= 1
        return await self._publisher.publish(*args, **kwargs)


async def test_relay_restart_mid_backlog_loses_and_doubles_nothing(
    inventory: httpx.AsyncClient,
    inventory_events: TopicWatcher,
    inventory_settings: InventorySettings,
    create_service_database: Callable[[str], str],
    kafka_bootstrap: str,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    sku = unique("RELAY")
    await set_stock(inventory, store["location_id"], sku, on_hand=BACKLOG + 5)

    # An upstream service's database holding a backlog of commands in its outbox.
    upstream = create_engine(create_service_database("inventory"))
    uow = UnitOfWork(upstream, source="/tests/upstream")
    prefix = unique("relay-order")
    async with uow:
        for n in range(BACKLOG):
            uow.emit(
                ReserveStock(
                    order_id=f"{prefix}-{n}",
                    fulfillment_id="f1",
                    reservation_id=f"{prefix}-{n}-r",
                    location_id=store["location_id"],
                    lines=(StockLine(sku=sku, quantity=1),),
                )
            )
        await uow.commit()

    commands = TopicWatcher(kafka_bootstrap, topics.INVENTORY_COMMANDS.name)
    await commands.start()
    broker = create_broker(inventory_settings.model_copy(update={"service_name": "upstream"}))
    await broker.connect()
    try:
        dying = OutboxRelay(
            upstream, DiesAfter(broker, 2 * BATCH + 7), service="upstream", batch_size=BATCH
        )
        assert await dying.publish_batch() == BATCH
        assert await dying.publish_batch() == BATCH
        with pytest.raises(KilledMidBatch):
            await dying.publish_batch()

        restarted = OutboxRelay(upstream, broker, service="upstream", batch_size=BATCH)
        while await restarted.publish_batch():
            pass
    finally:
        await broker.stop()

    mine = of_type("reserve_stock")
    sent = await commands.wait_for(
        lambda m: mine(m) and m["data"]["order_id"].startswith(prefix), count=BACKLOG + 7
    )
    await commands.stop()
    assert len({m["id"] for m in sent}) == BACKLOG  # 7 went out twice, with the same ids

    answers = await inventory_events.wait_for(
        lambda m: of_type("stock_reserved")(m) and m["data"]["order_id"].startswith(prefix),
        count=BACKLOG,
    )
    await asyncio.sleep(1)  # let any wrongly applied duplicate show itself
    answers = inventory_events.matching(
        lambda m: of_type("stock_reserved")(m) and m["data"]["order_id"].startswith(prefix)
    )
    assert len(answers) == BACKLOG
    assert (await level(inventory, store["location_id"], sku))["reserved"] == BACKLOG

    async with upstream.connect() as conn:
        unpublished = await conn.scalar(
            text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        )
    assert unpublished == 0
    await upstream.dispose()
    await assert_ledger_reconciles(inventory)
