"""The services running for real, once per test session: each app with its lifespan (consumers,
relay, periodic jobs) against the session's PostgreSQL and broker, reached over HTTP
(in-process ASGI) and plain Kafka."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.contracts import topics
from services.infrastructure.database import UnitOfWork, create_engine
from services.inventory.app import create_app as create_inventory
from services.inventory.settings import InventorySettings
from services.orders.app import create_app as create_orders
from services.orders.settings import OrdersSettings
from services.pricing.app import create_app as create_pricing
from services.pricing.settings import PricingSettings
from tests.conftest import TEST_KAFKA_SETTINGS
from tests.support.kafka import Producer, TopicWatcher

SIGNING_KEYS = (
    "it-new:integration-test-signing-key-0123456789,it-old:older-integration-key-0123456789"
)
COMMON: dict[str, Any] = {
    "outbox_poll_interval_seconds": 0.2,
    "quote_signing_keys": SIGNING_KEYS,
    "log_format": "console",
    **TEST_KAFKA_SETTINGS,
}


async def serve(app: FastAPI, name: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}") as client:
            yield client


# Inventory


@pytest.fixture(scope="session")
def inventory_settings(
    create_service_database: Callable[[str], str], kafka_bootstrap: str
) -> InventorySettings:
    return InventorySettings(
        database_url=create_service_database("inventory"),
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=f"inventory-{uuid.uuid4().hex[:6]}",
        reservation_sweep_interval_seconds=0.2,
        database_pool_size=20,
        database_max_overflow=60,
        **COMMON,
    )


@pytest.fixture(scope="session")
async def inventory_app(inventory_settings: InventorySettings) -> AsyncIterator[FastAPI]:
    app = create_inventory(inventory_settings)
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


@pytest.fixture
async def racing_uow(
    inventory_settings: InventorySettings,
) -> AsyncIterator[Callable[[], UnitOfWork]]:
    """Units of work on a private engine with a pool as large as the race, so the database (not
    the pool) decides who wins."""
    engine = create_engine(inventory_settings.database_url, pool_size=70, max_overflow=0)
    yield lambda: UnitOfWork(engine, source="/tests")
    await engine.dispose()


# Pricing


@pytest.fixture(scope="session")
def pricing_settings(
    create_service_database: Callable[[str], str], kafka_bootstrap: str
) -> PricingSettings:
    return PricingSettings(
        database_url=create_service_database("pricing"),
        kafka_bootstrap_servers=kafka_bootstrap,
        **COMMON,
    )


@pytest.fixture(scope="session")
async def pricing(pricing_settings: PricingSettings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in serve(create_pricing(pricing_settings), "pricing"):
        yield client


# Orders


@pytest.fixture(scope="session")
def orders_settings(
    create_service_database: Callable[[str], str], kafka_bootstrap: str
) -> OrdersSettings:
    return OrdersSettings(
        database_url=create_service_database("orders"),
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=f"orders-{uuid.uuid4().hex[:6]}",
        projection_group=f"orders-projection-{uuid.uuid4().hex[:6]}",
        expiry_sweep_interval_seconds=0.2,
        pickup_window_seconds=3,
        database_pool_size=20,
        database_max_overflow=40,
        **COMMON,
    )


@pytest.fixture(scope="session")
async def orders(
    orders_settings: OrdersSettings, inventory: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    # Inventory runs too: the saga needs it to answer on the broker.
    async for client in serve(create_orders(orders_settings), "orders"):
        yield client


# Kafka, as an outside client


@pytest.fixture(scope="session")
async def producer(kafka_bootstrap: str) -> AsyncIterator[Producer]:
    producer = Producer(kafka_bootstrap)
    await producer.start()
    yield producer
    await producer.stop()


async def _watch(bootstrap: str, *names: str) -> AsyncIterator[TopicWatcher]:
    watcher = TopicWatcher(bootstrap, *names)
    await watcher.start()
    yield watcher
    await watcher.stop()


@pytest.fixture(scope="session")
async def inventory_events(kafka_bootstrap: str) -> AsyncIterator[TopicWatcher]:
    async for watcher in _watch(
        kafka_bootstrap, topics.INVENTORY_EVENTS.name, topics.INVENTORY_AVAILABILITY.name
    ):
        yield watcher


@pytest.fixture(scope="session")
async def pricing_events(kafka_bootstrap: str) -> AsyncIterator[TopicWatcher]:
    async for watcher in _watch(kafka_bootstrap, topics.PRICING_EVENTS.name):
        yield watcher


@pytest.fixture(scope="session")
async def order_events(kafka_bootstrap: str) -> AsyncIterator[TopicWatcher]:
    async for watcher in _watch(
        kafka_bootstrap, topics.ORDERS_EVENTS.name, topics.INVENTORY_COMMANDS.name
    ):
        yield watcher
