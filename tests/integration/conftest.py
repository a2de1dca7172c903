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
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from services.infrastructure.database import UnitOfWork, create_engine
from services.inventory.app import create_app as create_inventory
from services.inventory.settings import InventorySettings
from services.orders.app import create_app as create_orders
from services.orders.settings import OrdersSettings
from services.pricing.app import create_app as create_pricing
from services.pricing.settings import PricingSettings
from services.webhooks.app import create_app as create_webhooks
from services.webhooks.settings import WebhooksSettings
from tests.conftest import TEST_KAFKA_SETTINGS
from tests.support.http import listening
from tests.support.kafka import Producer, TopicWatcher
from tests.support.network import Network

SIGNING_KEYS = (
    "it-new:integration-test-signing-key-0123456789,it-old:older-integration-key-0123456789"
)
COMMON: dict[str, Any] = {
    "outbox_poll_interval_seconds": 0.2,
    "quote_signing_keys": SIGNING_KEYS,
    "log_format": "console",
    **TEST_KAFKA_SETTINGS,
}


def client_of(app: FastAPI, name: str) -> httpx.AsyncClient:
    """A client calling a started app in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")


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
    async with client_of(inventory_app, "inventory") as client:
        yield client


@pytest.fixture(scope="session")
async def inventory_url(inventory_app: FastAPI) -> AsyncIterator[str]:
    """Inventory over real HTTP, as orders asks it for current stock."""
    async with listening(inventory_app) as url:
        yield url


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
async def pricing_app(pricing_settings: PricingSettings) -> AsyncIterator[FastAPI]:
    app = create_pricing(pricing_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def pricing(pricing_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(pricing_app, "pricing") as client:
        yield client


# Orders


@pytest.fixture(scope="session")
def orders_settings(
    create_service_database: Callable[[str], str], kafka_bootstrap: str, inventory_url: str
) -> OrdersSettings:
    return OrdersSettings(
        database_url=create_service_database("orders"),
        kafka_bootstrap_servers=kafka_bootstrap,
        inventory_url=inventory_url,
        consumer_group=f"orders-{uuid.uuid4().hex[:6]}",
        projection_group=f"orders-projection-{uuid.uuid4().hex[:6]}",
        expiry_sweep_interval_seconds=0.2,
        pickup_window_seconds=3,
        database_pool_size=20,
        database_max_overflow=40,
        **COMMON,
    )


@pytest.fixture(scope="session")
async def orders_app(
    orders_settings: OrdersSettings, inventory_app: FastAPI
) -> AsyncIterator[FastAPI]:
    # Inventory runs too: the saga needs it to answer on the broker.
    app = create_orders(orders_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def orders(orders_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(orders_app, "orders") as client:
        yield client


# Webhooks


@pytest.fixture(scope="session")
def webhooks_settings(
    create_service_database: Callable[[str], str], kafka_bootstrap: str
) -> WebhooksSettings:
    return WebhooksSettings(
        database_url=create_service_database("webhooks"),
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=f"webhooks-{uuid.uuid4().hex[:6]}",
        webhook_allow_private_addresses=True,  # the receivers are local
        webhook_timeout_seconds=1.0,
        webhook_retry_schedule_seconds=(0.3, 0.6, 1.0),
        webhook_poll_interval_seconds=0.2,
        **COMMON,
    )


@pytest.fixture(scope="session")
async def webhooks_app(webhooks_settings: WebhooksSettings) -> AsyncIterator[FastAPI]:
    app = create_webhooks(webhooks_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def webhooks(webhooks_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(webhooks_app, "webhooks") as client:
        yield client


# The gateway, in front of the services above reached over real HTTP

GATEWAY_ADMIN_KEY = "omr_integration_admin_key_0123456789"


@pytest.fixture(scope="session")
async def gateway_app(
    create_service_database: Callable[[str], str],
    inventory_url: str,
    pricing_app: FastAPI,
    orders_app: FastAPI,
    webhooks_app: FastAPI,
) -> AsyncIterator[FastAPI]:
    """The gateway, started, in front of the services served on local ports."""
    async with (
        listening(pricing_app) as pricing_url,
        listening(orders_app) as orders_url,
        listening(webhooks_app) as webhooks_url,
    ):
        app = create_gateway(
            GatewaySettings(
                database_url=create_service_database("gateway"),
                inventory_url=inventory_url,
                pricing_url=pricing_url,
                orders_url=orders_url,
                webhooks_url=webhooks_url,
                bootstrap_admin_key=GATEWAY_ADMIN_KEY,
                log_format="console",
            )
        )
        async with app.router.lifespan_context(app):
            yield app


@pytest.fixture(scope="session")
async def gateway(gateway_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway, as an admin calls it."""
    async with client_of(gateway_app, "gateway") as client:
        client.headers["Authorization"] = f"Bearer {GATEWAY_ADMIN_KEY}"
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


@pytest.fixture
async def network(
    inventory: httpx.AsyncClient,
    pricing: httpx.AsyncClient,
    orders: httpx.AsyncClient,
    unique: Callable[[str], str],
) -> Network:
    """A small retail network of the test's own (see tests/support/network.py)."""
    built = Network(inventory, pricing, orders, unique("n"))
    await built.build()
    return built
