"""An order is never rejected because orders' view of stock is behind (DESIGN.md §7): stock set a
moment ago is found by asking inventory, the authority, also while the projection's consumer is
stopped; a real shortage is still rejected at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.contracts import topics
from services.orders.app import create_app
from services.orders.settings import OrdersSettings
from tests.integration.conftest import COMMON, client_of
from tests.support.network import Network

pytestmark = pytest.mark.integration


def _projection_subscriber(app: FastAPI) -> Any:
    (subscriber,) = [
        s
        for s in app.state.runtime.broker.subscribers
        if topics.INVENTORY_AVAILABILITY.name in s.topic_names_for_subscribe
    ]
    return subscriber


@pytest.fixture
async def projection_stopped(orders_app: FastAPI, network: Network) -> AsyncIterator[None]:
    """Orders' availability consumer stopped (once the test's network is known), as during a
    restart or a long rebalance: the projection learns nothing new until it starts again."""
    subscriber = _projection_subscriber(orders_app)
    await subscriber.stop()
    try:
        yield
    finally:
        await subscriber.start()


async def _decision(network: Network, order_id: str) -> list[dict[str, Any]]:
    response = await network.orders.get(f"/orders/{order_id}/routing")
    assert response.status_code == 200, response.text
    return response.json()["attempts"]  # type: ignore[no-any-return]


async def test_an_order_placed_right_after_stock_is_set_is_confirmed_fifty_times(
    network: Network,
) -> None:
    skus = [network.id(f"FRESH{n}") for n in range(50)]
    for sku in skus:
        await network.price(sku, 1500)
    placed = []
    for sku in skus:
        # No waiting for the projection between setting stock and ordering it.
        await network.stock(network.warehouse, sku, 1)
        placed.append(await network.place({sku: 1}, network.deliver()))

    for order_id in placed:
        if (await network.order(order_id))["status"] == "rejected":
            raise AssertionError(await _decision(network, order_id))
        confirmed = await network.until(order_id, "confirmed")
        (fulfillment,) = confirmed["fulfillments"]
        assert fulfillment["location_id"] == network.warehouse
        (attempt,) = await _decision(network, order_id)
        assert attempt["rejected_reason"] is None


async def test_orders_are_confirmed_while_the_projection_consumer_is_stopped(
    network: Network, projection_stopped: None
) -> None:
    # A store opened while the projection was stopped: routing has never heard of it.
    new_store = network.id("store-new")
    response = await network.inventory.post(
        "/locations",
        json={
            "location_id": new_store,
            "name": "Opened today",
            "type": "store",
            "lat": -33.5,
            "lon": 18.5,
            "capabilities": ["ship", "pickup", "returns"],
            "priority": 50,
            "ship_capacity": 100,
        },
    )
    assert response.status_code == 200, response.text

    delivered, collected = network.id("STALE-D"), network.id("STALE-C")
    for sku in (delivered, collected):
        await network.price(sku, 2500)
    await network.stock(network.warehouse, delivered, 3)
    await network.stock(new_store, collected, 2)

    delivery = await network.place({delivered: 3}, network.deliver())
    pickup = await network.place({collected: 2}, network.collect(new_store))

    shipped = await network.until(delivery, "confirmed")
    assert [f["location_id"] for f in shipped["fulfillments"]] == [network.warehouse]
    ready = await network.until(pickup, "confirmed")
    (fulfillment,) = ready["fulfillments"]
    assert fulfillment["location_id"] == new_store  # collected where it is, not transferred
    for order_id in (delivery, pickup):
        (attempt,) = await _decision(network, order_id)
        assert attempt["stock_checked_with_inventory"] is True
        assert "stock checked with inventory" in attempt["rules_applied"]


async def test_a_preorder_waits_at_a_warehouse_opened_while_the_projection_was_stopped(
    network: Network, projection_stopped: None
) -> None:
    # The warehouse has nothing on hand, only stock on its way: no level names it, so only the
    # incoming stock can tell routing it exists (CI once rejected such a pre-order).
    new_warehouse = network.id("wh-new")
    response = await network.inventory.post(
        "/locations",
        json={
            "location_id": new_warehouse,
            "name": "Opened today",
            "type": "warehouse",
            "lat": -33.6,
            "lon": 18.6,
            "capabilities": ["ship"],
            "priority": 50,
            "ship_capacity": 100,
        },
    )
    assert response.status_code == 200, response.text
    sku = network.id("STALE-PRE")
    await network.price(sku, 89900)
    due = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    supply = {"supply_id": network.id("po"), "location_id": new_warehouse, "sku": sku, "quantity": 3, "expected_at": due.isoformat()}  # fmt: skip
    response = await network.inventory.post("/incoming-stock", json=supply)
    assert response.status_code == 200, response.text

    body = network.order_body(await network.quote({sku: 2}), network.deliver())
    body["allow_backorder"] = True
    response = await network.orders.post("/orders", json=body)
    assert response.status_code == 202, response.text

    waiting = await network.until(response.json()["order_id"], "backordered")
    assert datetime.fromisoformat(waiting["promised_at"]) == due
    assert [f["location_id"] for f in waiting["fulfillments"]] == [new_warehouse]


async def test_a_real_shortage_is_still_rejected_after_inventory_agrees(
    network: Network,
) -> None:
    sku = network.id("SCARCE")
    await network.price(sku, 900)
    await network.stock(network.warehouse, sku, 1)
    await network.sees(sku, network.warehouse, 1)

    order_id = await network.place({sku: 2}, network.deliver())

    rejected = await network.until(order_id, "rejected", timeout=5)
    assert rejected["fulfillments"] == []
    (attempt,) = await _decision(network, order_id)
    assert attempt["stock_checked_with_inventory"] is True
    assert attempt["chosen"] == []
    level = await network.level(network.warehouse, sku)
    assert level["reserved"] == 0


@pytest.fixture(scope="module")
async def orders_without_inventory(
    create_service_database: Callable[[str], str], kafka_bootstrap: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An orders deployment whose inventory does not answer (nothing listens on its URL)."""
    settings = OrdersSettings(
        database_url=create_service_database("orders"),
        kafka_bootstrap_servers=kafka_bootstrap,
        inventory_url="http://127.0.0.1:9",  # discard: connections are refused
        consumer_group=f"orders-noinv-{uuid.uuid4().hex[:6]}",
        projection_group=f"orders-noinv-projection-{uuid.uuid4().hex[:6]}",
        **COMMON,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_of(app, "orders-noinv") as client:
        yield client


async def test_an_order_nobody_can_confirm_is_refused_with_503_not_rejected(
    inventory: httpx.AsyncClient,
    pricing: httpx.AsyncClient,
    orders_without_inventory: httpx.AsyncClient,
    unique: Callable[[str], str],
) -> None:
    network = Network(inventory, pricing, orders_without_inventory, unique("noinv"))
    await network.build()
    sku = network.id("UNSEEN")  # in no projection: only inventory could say, and it is away
    await network.price(sku, 1000)
    body = network.order_body(await network.quote({sku: 1}), network.deliver())

    for _ in range(2):  # nothing was taken: the retry is a new attempt, not a replay
        response = await orders_without_inventory.post(
            "/orders", json=body, headers={"Idempotency-Key": "k-" + sku}
        )
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["Retry-After"] == "1"
        problem = response.json()
        assert "inventory could not be asked for current stock" in problem["detail"]
        assert problem["unavailable"] == ["inventory"]
