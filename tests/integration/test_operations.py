"""The command center through the gateway (DESIGN.md §8.3), over the real services: each answers
for its own data at `/operations/*` and the gateway puts the answers together.

The services are shared with the rest of the session, so counts are compared before and after
this test's own orders, and everything else is found by this test's own ids."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.contracts import topics
from services.gateway.downstream import Downstream
from services.launcher.embedded import free_port
from services.orders import operations
from tests.support.kafka import Producer, eventually
from tests.support.network import Network

pytestmark = pytest.mark.integration

SUMMARY = "/v1/admin/operations/summary"
EXCEPTIONS = "/v1/admin/operations/exceptions"
STORES = "/v1/admin/operations/stores"


def orders_engine(orders_app: FastAPI) -> AsyncEngine:
    engine: AsyncEngine = orders_app.state.runtime.engine
    return engine


async def get(gateway: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    answer = await gateway.get(path, params=params)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def by_channel(rows: list[dict[str, Any]], channel: str) -> dict[str, Any]:
    return next(row for row in rows if row["channel"] == channel)


async def test_the_summary_counts_orders_per_minute_channel_and_status_and_conversion(
    network: Network, gateway: httpx.AsyncClient
) -> None:
    sku = network.id("OPS-TEE")
    await network.price(sku, 1500)
    await network.stock(network.warehouse, sku, 10)
    await network.sees(sku, network.warehouse, 10)
    before = await get(gateway, SUMMARY, minutes=5)

    # Four quotes on the marketplace, three of them ordered.
    quotes = [await network.quote({sku: 1}, channel="marketplace") for _ in range(4)]
    placed = []
    for quote in quotes[:3]:
        body = network.order_body(quote, network.deliver())
        answer = await network.orders.post("/orders", json=body)
        assert answer.status_code == 202, answer.text
        placed.append(answer.json()["order_id"])
    for order_id in placed:
        await network.until(order_id, "confirmed")

    after = await get(gateway, SUMMARY, minutes=5)
    assert after["window_minutes"] == 5
    assert after["unavailable"] == []
    was = by_channel(before["conversion"], "marketplace")
    now = by_channel(after["conversion"], "marketplace")
    assert (now["quotes"] - was["quotes"], now["orders"] - was["orders"]) == (4, 3)
    assert now["rate"] == round(now["orders"] / now["quotes"], 4)
    orders_then = by_channel(before["orders_by_channel"], "marketplace")["orders"]
    assert by_channel(after["orders_by_channel"], "marketplace")["orders"] - orders_then == 3

    def confirmed(summary: dict[str, Any]) -> int:
        return sum(
            bucket["orders"]
            for bucket in summary["orders_per_minute"]
            if (bucket["channel"], bucket["status"]) == ("marketplace", "confirmed")
        )

    assert confirmed(after) - confirmed(before) == 3
    for bucket in after["orders_per_minute"]:
        minute = datetime.fromisoformat(bucket["minute"])
        assert minute.utcoffset() == timedelta(0)
        assert (minute.second, minute.microsecond) == (0, 0)
        assert minute > datetime.now(UTC) - timedelta(minutes=6)


async def test_an_order_pending_too_long_and_a_partner_fulfillment_at_risk_are_exceptions(
    network: Network, gateway: httpx.AsyncClient, orders_app: FastAPI
) -> None:
    # An order whose routing never finished, as if placed two minutes ago.
    stuck = f"ord-ops-{uuid.uuid4().hex[:12]}"
    engine = orders_engine(orders_app)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO orders (order_id, status, channel, customer_id, customer_email,"
                " quote_id, method, currency, subtotal, discount_total, total, created_at)"
                " VALUES (:id, 'pending', 'web', 'cust-ops', 'ops@example.com', :id, 'delivery',"
                " 'EUR', 100, 0, 100, now() - interval '2 minutes')"
            ),
            {"id": stuck},
        )
    # A dropship fulfillment reserved 31 minutes ago: past half the 60-minute accept window.
    kayak = network.id("OPS-KAYAK")
    await network.price(kayak, 49900)
    await network.stock(network.partner_location, kayak, 1)
    await network.sees(kayak, network.partner_location, 1)
    partner_order = await network.place({kayak: 1}, network.deliver())
    (waiting,) = (await network.until(partner_order, "confirmed"))["fulfillments"]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE fulfillments SET updated_at = now() - interval '31 minutes'"
                " WHERE fulfillment_id = :id"
            ),
            {"id": waiting["fulfillment_id"]},
        )
    try:
        found = await get(gateway, EXCEPTIONS, pending_seconds=60)
        items = {(item["kind"], item["subject"]): item for item in found["items"]}
        pending = items["pending_too_long", stuck]
        assert pending["service"] == "orders"
        assert datetime.fromisoformat(pending["since"]) < datetime.now(UTC) - timedelta(minutes=1)
        at_risk = items["partner_not_accepted", waiting["fulfillment_id"]]
        assert "at risk" in at_risk["detail"]
        assert network.partner_location in at_risk["detail"]
        kinds = [item["kind"] for item in found["items"]]
        assert kinds.index("pending_too_long") < kinds.index("partner_not_accepted")

        # Pending for less than the threshold asked for: not listed.
        patient = await get(gateway, EXCEPTIONS, pending_seconds=600)
        assert all(item["subject"] != stuck for item in patient["items"])
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM orders WHERE order_id = :id"), {"id": stuck})
        cancelled = await network.orders.post(f"/orders/{partner_order}/cancel")
        assert cancelled.status_code == 200, cancelled.text


async def test_every_store_is_listed_with_its_work_rejects_and_median_time_to_ready(
    network: Network, gateway: httpx.AsyncClient, orders_app: FastAPI
) -> None:
    sku = network.id("OPS-CAP")
    await network.price(sku, 900)
    await network.stock(network.store_ams, sku, 3)
    await network.sees(sku, network.store_ams, 3)
    hold = network.hold(datetime.now(UTC) + timedelta(days=1))
    orders = [await network.place({sku: 1}, hold) for _ in range(3)]
    fulfillments = [
        (await network.until(order_id, "reserved"))["fulfillments"][0]["fulfillment_id"]
        for order_id in orders
    ]
    first, second, refused = fulfillments
    for fulfillment_id in (first, second):
        await network.act(fulfillment_id, "ready")
    await network.act(refused, "reject", {"reason": "cannot find it"})
    # Made ready 2 and 4 minutes after they were created: a median of 3.
    engine = orders_engine(orders_app)
    async with engine.begin() as conn:
        for fulfillment_id, minutes in ((first, 2), (second, 4)):
            await conn.execute(
                text(
                    "UPDATE fulfillments SET created_at = ready_at - make_interval(mins => :m)"
                    " WHERE fulfillment_id = :id AND ready_at IS NOT NULL"
                ),
                {"m": minutes, "id": fulfillment_id},
            )

    found = await get(gateway, STORES, minutes=60)
    assert found["window_minutes"] == 60
    stores = {item["store_id"]: item for item in found["items"]}
    assert network.warehouse not in stores
    assert stores[network.store_ams] == {
        "store_id": network.store_ams,
        "name": network.store_ams,
        "fulfillments": 3,
        "by_status": {"ready_for_pickup": 2, "rejected": 1},
        "rejects": 1,
        "median_minutes_to_ready": 3.0,
    }
    assert stores[network.store_utr] == {
        "store_id": network.store_utr,
        "name": network.store_utr,
        "fulfillments": 0,
        "by_status": {},
        "rejects": 0,
        "median_minutes_to_ready": None,
    }

    # A pickup past its deadline (the sweep expires it within a second, so the row is changed
    # only inside a transaction that is rolled back).
    async with engine.connect() as conn, conn.begin():
        await conn.execute(
            text(
                "UPDATE fulfillments SET pickup_deadline = now() - interval '5 minutes'"
                " WHERE fulfillment_id = :id"
            ),
            {"id": first},
        )
        overdue = await operations.pickups_overdue(conn, datetime.now(UTC))
        assert first in {item.subject for item in overdue}
        await conn.rollback()


async def test_a_dead_letter_is_an_exception_of_the_service_that_parked_it(
    gateway: httpx.AsyncClient, inventory: httpx.AsyncClient, producer: Producer
) -> None:
    async def parked() -> int:
        status = await inventory.get("/operations/messaging")
        assert status.status_code == 200, status.text
        assert status.json()["service"] == "inventory"
        return int(status.json()["dead_letters"])

    before = await parked()
    await producer.send(topics.INVENTORY_COMMANDS.name, b"{not json", key=uuid.uuid4().hex)
    await eventually(lambda: _more_than(parked, before))

    found = await get(gateway, EXCEPTIONS)
    (dead,) = [
        item
        for item in found["items"]
        if item["kind"] == "dead_letters" and item["service"] == "inventory"
    ]
    assert dead["count"] >= before + 1
    assert dead["since"] is not None


async def _more_than(count: Callable[[], Any], than: int) -> bool:
    return bool(await count() > than)


@contextlib.asynccontextmanager
async def webhooks_away(gateway_app: FastAPI) -> AsyncIterator[None]:
    """The gateway's webhooks service, for a while, at a port nothing listens on."""
    state = gateway_app.state.gateway
    present = state.webhooks
    state.webhooks = Downstream(
        "webhooks", f"http://127.0.0.1:{free_port()}", timeout=1, connect_timeout=0.5, retries=0
    )
    try:
        yield
    finally:
        await state.webhooks.aclose()
        state.webhooks = present


async def test_a_service_that_does_not_answer_is_named_and_the_rest_is_answered(
    gateway: httpx.AsyncClient, gateway_app: FastAPI
) -> None:
    async with webhooks_away(gateway_app):
        found = await get(gateway, EXCEPTIONS)
        summary = await get(gateway, SUMMARY)
    (away,) = [item for item in found["items"] if item["kind"] == "service_unavailable"]
    assert away["service"] == "webhooks"
    assert found["items"][0] == away  # the most urgent
    assert summary["unavailable"] == []  # the summary does not need webhooks


async def test_only_admins_watch_operations_and_windows_are_checked(
    gateway: httpx.AsyncClient,
) -> None:
    created = await gateway.post(
        "/v1/admin/api-keys", json={"role": "shop", "name": "ops-shop", "channel": "web"}
    )
    assert created.status_code == 201, created.text
    shop = {"Authorization": f"Bearer {created.json()['api_key']}"}
    for path in (SUMMARY, EXCEPTIONS, STORES):
        refused = await gateway.get(path, headers=shop)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    for path, params in (
        (SUMMARY, {"minutes": 4}),
        (SUMMARY, {"minutes": 1441}),
        (STORES, {"minutes": "an hour"}),
        (EXCEPTIONS, {"pending_seconds": 0}),
    ):
        invalid = await gateway.get(path, params=params)
        assert invalid.status_code == 422, invalid.text
        assert invalid.headers["content-type"] == "application/problem+json"
