"""What orders tells everyone on orders.events.v1, as its AsyncAPI document describes it (what
webhooks and partners subscribe to), and how long a partner has to accept."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from services.contracts import topics
from services.contracts.orders import FulfillmentAssigned, FulfillmentCancelled
from services.infrastructure.asyncapi import events_by_topic
from services.orders.app import create_app
from services.orders.settings import OrdersSettings

UNUSED = {"database_url": "postgresql://nobody@127.0.0.1:1/none", "log_format": "console"}


async def test_a_cancelled_fulfillment_and_its_partner_are_published() -> None:
    assert FulfillmentCancelled in events_by_topic()[topics.ORDERS_EVENTS.name]
    app = create_app(OrdersSettings(**UNUSED))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
        document = (await client.get("/asyncapi.json")).json()

    (channel,) = [
        c
        for c in document["channels"].values()
        if c["address"] == topics.ORDERS_EVENTS.name and "FulfillmentCancelled" in c["messages"]
    ]
    assert "FulfillmentAssigned" in channel["messages"]
    messages, schemas = document["components"]["messages"], document["components"]["schemas"]
    assert messages["FulfillmentCancelled"]["name"] == FulfillmentCancelled.TYPE
    assert set(schemas["FulfillmentCancelled"]["required"]) == {
        "order_id",
        "fulfillment_id",
        "location_id",
        "reason",
    }
    assert "partner_id" in schemas["FulfillmentCancelled"]["properties"]
    assert "partner_id" in schemas["FulfillmentAssigned"]["properties"]
    assert FulfillmentAssigned.model_fields["partner_id"].default is None  # older events still read


def test_the_partner_accept_window_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OrdersSettings(**UNUSED).partner_accept_minutes == 60
    monkeypatch.setenv("OMNIROUTE_PARTNER_ACCEPT_MINUTES", "0.5")
    app = create_app(OrdersSettings(**UNUSED))
    assert app.state.policy.partner_accept_window == timedelta(seconds=30)
