"""Inventory running for real: its app with its lifespan (consumers, relay, expiry sweep) against
the session's PostgreSQL and broker, reached over HTTP (in-process ASGI) and plain Kafka."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.contracts import topics
from services.infrastructure.database import UnitOfWork, create_engine
from services.inventory.app import create_app
from services.inventory.settings import InventorySettings
from tests.conftest import TEST_KAFKA_SETTINGS
from tests.support.kafka import Producer, TopicWatcher

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def inventory_settings(
    create_service_database: Callable[[str], str], kafka_bootstrap: str
) -> InventorySettings:
    return InventorySettings(
        database_url=create_service_database("inventory"),
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=f"inventory-{uuid.uuid4().hex[:6]}",
        reservation_sweep_interval_seconds=0.2,
        outbox_poll_interval_seconds=0.2,
        database_pool_size=20,
        database_max_overflow=60,
        log_format="console",
        **TEST_KAFKA_SETTINGS,
    )


@pytest.fixture(scope="session")
async def inventory_app(inventory_settings: InventorySettings) -> AsyncIterator[FastAPI]:
    app = create_app(inventory_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def inventory(inventory_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=inventory_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as client:
        yield client


@pytest.fixture(scope="session")
def uow_factory(inventory_app: FastAPI) -> Callable[[], UnitOfWork]:
    runtime = inventory_app.state.runtime
    return runtime.unit_of_work  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
async def producer(kafka_bootstrap: str) -> AsyncIterator[Producer]:
    producer = Producer(kafka_bootstrap)
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture(scope="session")
async def inventory_events(kafka_bootstrap: str) -> AsyncIterator[TopicWatcher]:
    watcher = TopicWatcher(
        kafka_bootstrap, topics.INVENTORY_EVENTS.name, topics.INVENTORY_AVAILABILITY.name
    )
    await watcher.start()
    yield watcher
    await watcher.stop()


@pytest.fixture
async def store(inventory: httpx.AsyncClient, unique: Callable[[str], str]) -> dict[str, Any]:
    """A fresh store location in Amsterdam, for tests that need somewhere to keep stock."""
    body = {
        "location_id": unique("store"),
        "name": "Test store Amsterdam",
        "type": "store",
        "lat": 52.3738,
        "lon": 4.8910,
        "capabilities": ["ship", "pickup", "returns"],
        "priority": 50,
        "ship_capacity": 40,
    }
    response = await inventory.post("/locations", json=body)
    assert response.status_code == 200, response.text
    return body


async def set_stock(
    client: httpx.AsyncClient, location_id: str, sku: str, on_hand: int, safety_stock: int = 0
) -> dict[str, Any]:
    response = await client.post(
        "/stock-levels",
        json={
            "location_id": location_id,
            "sku": sku,
            "on_hand": on_hand,
            "safety_stock": safety_stock,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def level(client: httpx.AsyncClient, location_id: str, sku: str) -> dict[str, Any]:
    response = await client.get("/stock-levels", params={"location_id": location_id, "sku": sku})
    assert response.status_code == 200, response.text
    (found,) = response.json()
    return found  # type: ignore[no-any-return]


async def assert_ledger_reconciles(client: httpx.AsyncClient) -> None:
    response = await client.get("/reconciliation")
    assert response.status_code == 200
    body = response.json()
    assert body["levels_checked"] > 0
    assert body["mismatches"] == []


__all__ = ["assert_ledger_reconciles", "level", "set_stock"]


@pytest.fixture
async def racing_uow(
    inventory_settings: InventorySettings,
) -> AsyncIterator[Callable[[], UnitOfWork]]:
    """Units of work on a private engine with a pool as large as the race, so the database (not
    the pool) decides who wins."""
    engine = create_engine(inventory_settings.database_url, pool_size=70, max_overflow=0)
    yield lambda: UnitOfWork(engine, source="/tests")
    await engine.dispose()
