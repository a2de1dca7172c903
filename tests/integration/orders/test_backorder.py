"""Backorders, when configured: a delivery nothing can serve waits for stock instead of failing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.orders.app import create_app
from services.orders.settings import OrdersSettings
from tests.integration.conftest import COMMON, client_of
from tests.support.network import Network

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def backordering_orders(
    create_service_database: Callable[[str], str],
    kafka_bootstrap: str,
    inventory_url: str,
) -> AsyncIterator[httpx.AsyncClient]:
    """A second orders deployment with backorders on (its own database and consumer groups)."""
    settings = OrdersSettings(
        database_url=create_service_database("orders"),
        kafka_bootstrap_servers=kafka_bootstrap,
        inventory_url=inventory_url,
        consumer_group=f"orders-bo-{uuid.uuid4().hex[:6]}",
        projection_group=f"orders-bo-projection-{uuid.uuid4().hex[:6]}",
        backorder=True,
        backorder_retry_interval_seconds=0.3,
        **COMMON,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_of(app, "orders-backorder") as client:
        yield client


async def test_a_backordered_delivery_goes_out_when_stock_arrives(
    inventory: httpx.AsyncClient,
    pricing: httpx.AsyncClient,
    backordering_orders: httpx.AsyncClient,
    unique: Callable[[str], str],
) -> None:
    network = Network(inventory, pricing, backordering_orders, unique("bo"))
    await network.build()
    sku = network.id("RARE")
    await network.price(sku, 12000)

    order_id = await network.place({sku: 2}, network.deliver())
    waiting = await network.order(order_id)
    assert waiting["status"] == "pending"
    assert waiting["status_reason"].startswith("backordered:")
    assert waiting["fulfillments"] == []

    await network.stock(network.warehouse, sku, 5)
    confirmed = await network.until(order_id, "confirmed", timeout=30)
    (fulfillment,) = confirmed["fulfillments"]
    assert fulfillment["location_id"] == network.warehouse
    assert confirmed["status_reason"] is None

    attempts = (await backordering_orders.get(f"/orders/{order_id}/routing")).json()["attempts"]
    assert [a["trigger"] for a in attempts] == ["order placed", "backorder: stock arrived"]
    assert attempts[0]["rejected_reason"]
