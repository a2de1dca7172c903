"""After one order goes through, /metrics of inventory and orders show what happened to it:
the reservation, the routing decision, the messages processed, the outbox and the lag.

The services share this process and so one registry: every check names its `service`, and
counts what grew while the order went through (other tests add to the same series)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from services.contracts import topics
from services.contracts.inventory import ReleaseStock, ReserveStock, StockReserved
from services.infrastructure.database import UnitOfWork, create_engine
from services.infrastructure.outbox import OutboxRelay
from tests.support.network import Network

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` carrying (at least) `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


async def test_one_order_shows_in_the_metrics(network: Network) -> None:
    sku = network.id("METRIC")
    await network.price(sku, 1200)
    await network.stock(network.warehouse, sku, 4)
    await network.sees(sku, network.warehouse, 4)
    inventory_before, orders_before = await scrape(network.inventory), await scrape(network.orders)

    order_id = await network.place({sku: 1}, network.deliver())
    await network.until(order_id, "confirmed")
    inventory_after, orders_after = await scrape(network.inventory), await scrape(network.orders)

    def inventory_grew(name: str, **labels: str) -> float:
        return total(inventory_after, name, **labels) - total(inventory_before, name, **labels)

    def orders_grew(name: str, **labels: str) -> float:
        return total(orders_after, name, **labels) - total(orders_before, name, **labels)

    reservations = inventory_grew(
        "omniroute_reservations_total", service="inventory", outcome="reserved"
    )
    assert reservations >= 1
    decisions = orders_grew(
        "omniroute_routing_decisions_total", service="orders", trigger="placed", outcome="single"
    )
    assert decisions >= 1
    processed = "omniroute_consumer_processing_seconds_count"
    commands = inventory_grew(
        processed, service="inventory", event_type=ReserveStock.TYPE, outcome="applied"
    )
    assert commands >= 1
    answers = orders_grew(
        processed, service="orders", event_type=StockReserved.TYPE, outcome="applied"
    )
    assert answers >= 1
    published = orders_grew(
        "omniroute_outbox_published_total", service="orders", topic=topics.INVENTORY_COMMANDS.name
    )
    assert published >= 1
    for service, samples in (("inventory", inventory_after), ("orders", orders_after)):
        assert value(samples, "omniroute_outbox_backlog", service=service) is not None
        assert (
            value(samples, "omniroute_outbox_oldest_unpublished_age_seconds", service=service)
            is not None
        )
    # Orders fetched from the partition inventory answered on, so its lag there is known.
    lags = [
        v
        for (name, labels), v in orders_after.items()
        if name == "omniroute_consumer_lag_messages"
        and ("service", "orders") in labels
        and ("topic", topics.INVENTORY_EVENTS.name) in labels
    ]
    assert lags
    assert all(lag >= 0 for lag in lags)


class Accepts:
    """A broker that takes every message (this test is about the relay's own bookkeeping)."""

    def __init__(self) -> None:
        self.topics: list[str] = []

    async def publish(self, message: Any, topic: str = "", **options: Any) -> asyncio.Future[None]:
        self.topics.append(topic)
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)  # like the broker's confirmation, awaited per batch
        return delivered


async def test_the_outbox_backlog_is_what_waits_and_drains(
    create_service_database: Callable[[str], str], unique: Callable[[str], str]
) -> None:
    engine = create_engine(create_service_database("inventory"))
    service = unique("relay")
    async with UnitOfWork(engine, source="/tests") as uow:
        for n in range(7):
            uow.emit(ReleaseStock(order_id=f"o{n}", reservation_id=f"r{n}"))
        await uow.commit()
    broker = Accepts()
    relay = OutboxRelay(engine, broker, service=service, batch_size=3)

    def sample(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"service": service, **labels})

    try:
        assert await relay.publish_batch() == 3
        assert sample("omniroute_outbox_backlog") == 7  # a full batch: counted
        assert (sample("omniroute_outbox_oldest_unpublished_age_seconds") or 0) > 0
        while await relay.publish_batch():
            pass
    finally:
        await engine.dispose()
    assert sample("omniroute_outbox_backlog") == 0
    assert sample("omniroute_outbox_oldest_unpublished_age_seconds") == 0
    topic = topics.INVENTORY_COMMANDS.name
    assert sample("omniroute_outbox_published_total", topic=topic) == 7 == len(broker.topics)
