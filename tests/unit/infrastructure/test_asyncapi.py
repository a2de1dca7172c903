"""Each messaging service documents its Kafka side at /asyncapi.json: built from the app as
composed, without starting it (no database, no broker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from fastapi import FastAPI

from services.contracts import topics
from services.contracts.inventory import ReserveStock, StockReserved
from services.contracts.orders import OrderPlaced
from services.contracts.pricing import PriceChanged, PromotionChanged
from services.inventory.app import create_app as create_inventory
from services.inventory.settings import InventorySettings
from services.orders.app import create_app as create_orders
from services.orders.settings import OrdersSettings
from services.pricing.app import create_app as create_pricing
from services.pricing.settings import PricingSettings

UNUSED = {"database_url": "postgresql://nobody@127.0.0.1:1/none", "log_format": "console"}


def inventory_app() -> FastAPI:
    return create_inventory(InventorySettings(**UNUSED))


def orders_app() -> FastAPI:
    return create_orders(OrdersSettings(**UNUSED))


def pricing_app() -> FastAPI:
    return create_pricing(PricingSettings(**UNUSED))


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.get(path)


def addresses(document: dict[str, Any], action: str) -> set[str]:
    """The topics of the channels with an operation of `action` (receive or send)."""
    channels = document["channels"]
    found = set()
    for operation in document["operations"].values():
        if operation["action"] == action:
            key = operation["channel"]["$ref"].removeprefix("#/channels/")
            (channel,) = [c for k, c in channels.items() if _pointer(k) == key]
            found.add(channel["address"])
    return found


def _pointer(key: str) -> str:
    return quote(key.replace("~", "~0").replace("/", "~1"), safe="~:._-")


@pytest.mark.parametrize(
    ("build", "receives", "sends"),
    [
        (
            inventory_app,
            {topics.INVENTORY_COMMANDS.name},
            {topics.INVENTORY_EVENTS.name, topics.INVENTORY_AVAILABILITY.name},
        ),
        (
            orders_app,
            {topics.INVENTORY_EVENTS.name, topics.INVENTORY_AVAILABILITY.name},
            {topics.ORDERS_EVENTS.name, topics.INVENTORY_COMMANDS.name},
        ),
        (pricing_app, set(), {topics.PRICING_EVENTS.name}),
    ],
    ids=["inventory", "orders", "pricing"],
)
async def test_each_service_lists_the_topics_it_consumes_and_publishes(
    build: Callable[[], FastAPI], receives: set[str], sends: set[str]
) -> None:
    response = await get(build(), "/asyncapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["asyncapi"].startswith("3.")
    assert addresses(document, "receive") == receives
    assert addresses(document, "send") == sends
    assert dangling_refs(document) == []


async def test_messages_are_cloudevents_around_the_contract_models() -> None:
    document = (await get(orders_app(), "/asyncapi.json")).json()
    messages = document["components"]["messages"]
    schemas = document["components"]["schemas"]

    reserve = messages["ReserveStock"]
    assert reserve["name"] == ReserveStock.TYPE
    assert reserve["contentType"] == "application/cloudevents+json"
    envelope, specific = reserve["payload"]["allOf"]
    assert envelope == {"$ref": "#/components/schemas/CloudEvent"}
    assert specific["properties"]["type"] == {"const": ReserveStock.TYPE}
    assert specific["properties"]["data"] == {"$ref": "#/components/schemas/ReserveStock"}
    assert set(schemas["ReserveStock"]["required"]) >= {"order_id", "reservation_id", "lines"}
    assert {"id", "source", "type", "time", "data"} <= set(schemas["CloudEvent"]["required"])
    assert "traceparent" in schemas["KafkaHeaders"]["properties"]
    # What orders consumes is documented as precisely as what it publishes.
    assert messages["StockReserved"]["name"] == StockReserved.TYPE
    assert messages["OrderPlaced"]["name"] == OrderPlaced.TYPE
    assert "EmptyPayload" not in schemas


async def test_pricing_publishes_its_two_events_and_the_html_page_renders() -> None:
    app = pricing_app()
    document = (await get(app, "/asyncapi.json")).json()
    (channel,) = document["channels"].values()
    assert set(channel["messages"]) == {PriceChanged.__name__, PromotionChanged.__name__}
    assert channel["bindings"]["kafka"]["partitions"] == topics.PRICING_EVENTS.partitions
    page = await get(app, "/asyncapi")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "pricing.events.v1" in page.text


def dangling_refs(document: dict[str, Any]) -> list[str]:
    """Every `$ref` that resolves to nothing in the document."""
    found: list[str] = []

    def resolve(ref: str) -> bool:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not resolve(ref):
                found.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found
