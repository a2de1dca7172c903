"""The inventory process killed while commands stream in, then started again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.contracts import topics
from services.contracts.inventory import ReserveStock, StockLine
from services.infrastructure.broker import ensure_topics
from services.launcher.embedded import free_port
from tests.conftest import start_kafka
from tests.support.kafka import Producer, TopicWatcher, of_type
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration

COMMANDS = 300


async def test_killed_mid_stream_loses_nothing_and_applies_nothing_twice(
    create_service_database: Callable[[str], str], tmp_path: Path
) -> None:
    # A broker of its own, so no other inventory consumer in this test session takes commands.
    kafka = await asyncio.to_thread(start_kafka, tmp_path)
    await ensure_topics(kafka.bootstrap_servers, topics.ALL_TOPICS)
    port = free_port()
    service = ServiceProcess(
        "services.inventory.app:app",
        port,
        {
            "OMNIROUTE_DATABASE_URL": create_service_database("inventory"),
            "OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "OMNIROUTE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "OMNIROUTE_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "OMNIROUTE_LOG_FORMAT": "console",
        },
        tmp_path / "inventory.log",
    )
    producer = Producer(kafka.bootstrap_servers)
    events = TopicWatcher(kafka.bootstrap_servers, topics.INVENTORY_EVENTS.name)
    try:
        await asyncio.to_thread(service.start)
        async with httpx.AsyncClient(base_url=service.url) as client:
            await client.post(
                "/locations",
                json={
                    "location_id": "wh",
                    "name": "W",
                    "type": "warehouse",
                    "lat": 51.5,
                    "lon": 5.0,
                },
            )
            await client.post(
                "/stock-levels", json={"location_id": "wh", "sku": "S", "on_hand": 1000}
            )
        await producer.start()
        await events.start()
        run = uuid.uuid4().hex[:6]

        async def stream() -> None:
            for n in range(COMMANDS):
                await producer.send_event(
                    ReserveStock(
                        order_id=f"{run}-{n}",
                        fulfillment_id="f",
                        reservation_id=f"{run}-{n}-r",
                        location_id="wh",
                        lines=(StockLine(sku="S", quantity=1),),
                    )
                )
                await asyncio.sleep(0.01)

        streaming = asyncio.create_task(stream())
        await events.wait_for(of_type("stock_reserved"), count=40)
        service.kill()
        applied_before_kill = len(events.matching(of_type("stock_reserved")))
        await streaming
        assert applied_before_kill < COMMANDS, "the kill came too late to prove anything"

        await asyncio.to_thread(service.start)
        answers = await events.wait_for(of_type("stock_reserved"), count=COMMANDS, timeout=60)
        await asyncio.sleep(1)  # a wrongly applied duplicate would show up now
        answers = events.matching(of_type("stock_reserved"))
        # A relay killed between publishing and marking may publish an answer twice, always
        # with the same event id; what matters is that every command took effect exactly once.
        assert len({m["id"] for m in answers}) == COMMANDS
        assert len({m["data"]["reservation_id"] for m in answers}) == COMMANDS

        async with httpx.AsyncClient(base_url=service.url) as client:
            (level,) = (await client.get("/stock-levels", params={"sku": "S"})).json()
            assert (level["on_hand"], level["reserved"]) == (1000, COMMANDS)
            assert (await client.get("/reconciliation")).json()["mismatches"] == []
    finally:
        await asyncio.to_thread(service.stop)
        await events.stop()
        await producer.stop()
        await asyncio.to_thread(kafka.stop)
