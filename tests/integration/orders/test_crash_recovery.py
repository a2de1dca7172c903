"""The orders process killed while orders stream in, then started again: every accepted order
still ends confirmed (or rejected), and no reservation is applied twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.contracts import topics
from services.contracts.pricing import QuoteTokenClaims, TokenLine
from services.infrastructure.broker import ensure_topics
from services.infrastructure.quote_tokens import SigningKeys, sign_quote_token
from services.launcher.embedded import free_port
from tests.conftest import start_kafka
from tests.support.kafka import eventually
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration

KEYS = "crash:crash-test-signing-key-0123456789-abcdefgh"
ORDERS = 40


def token(sku: str) -> str:
    now = int(time.time())
    claims = QuoteTokenClaims(
        quote_id=f"q-{uuid.uuid4().hex}",
        channel="web",
        currency="EUR",
        lines=(TokenLine(sku=sku, quantity=1, unit_price=1000, net=((1000, 1),)),),
        subtotal=1000,
        discount_total=0,
        total=1000,
        price_version=1,
        iat=now,
        exp=now + 600,
    )
    return sign_quote_token(claims, SigningKeys.parse(KEYS))


async def test_orders_killed_mid_stream_loses_no_accepted_order(
    create_service_database: Callable[[str], str], tmp_path: Path
) -> None:
    kafka = await asyncio.to_thread(start_kafka, tmp_path)
    await ensure_topics(kafka.bootstrap_servers, topics.ALL_TOPICS)
    env = {
        "OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "OMNIROUTE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "OMNIROUTE_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "OMNIROUTE_QUOTE_SIGNING_KEYS": KEYS,
        "OMNIROUTE_LOG_FORMAT": "console",
    }
    inventory = ServiceProcess(
        "services.inventory.app:app",
        free_port(),
        {**env, "OMNIROUTE_DATABASE_URL": create_service_database("inventory")},
        tmp_path / "inventory.log",
    )
    orders = ServiceProcess(
        "services.orders.app:app",
        free_port(),
        {
            **env,
            "OMNIROUTE_DATABASE_URL": create_service_database("orders"),
            "OMNIROUTE_INVENTORY_URL": inventory.url,
        },
        tmp_path / "orders.log",
    )
    try:
        await asyncio.to_thread(inventory.start)
        await asyncio.to_thread(orders.start)
        async with httpx.AsyncClient(timeout=10) as client:
            await client.post(
                f"{inventory.url}/locations",
                json={
                    "location_id": "wh",
                    "name": "W",
                    "type": "warehouse",
                    "lat": 51.56,
                    "lon": 5.09,
                    "capabilities": ["ship"],
                    "ship_capacity": 10_000,
                },
            )
            await client.post(
                f"{inventory.url}/stock-levels",
                json={"location_id": "wh", "sku": "S", "on_hand": 1000},
            )

            async def projected() -> bool:
                sites = (
                    await client.get(f"{orders.url}/routing/sites", params={"sku": "S"})
                ).json()
                return any(s["available"]["S"] == 1000 for s in sites)

            await eventually(projected)
            accepted: list[str] = []

            async def place(n: int) -> None:
                body = {
                    "quote_token": token("S"),
                    "customer": {"id": f"c{n}", "email": "c@example.com"},
                    "fulfillment": {
                        "method": "delivery",
                        "address": {
                            "line1": "x",
                            "postal_code": "1",
                            "city": "Tilburg",
                            "country": "NL",
                            "lat": 51.55,
                            "lon": 5.08,
                        },
                    },
                    "lines": [{"sku": "S", "quantity": 1}],
                }
                try:
                    response = await client.post(f"{orders.url}/orders", json=body)
                except httpx.HTTPError:
                    return  # the service is down: not accepted, and the client knows it
                if response.status_code == 202:
                    accepted.append(response.json()["order_id"])

            for n in range(ORDERS // 2):
                await place(n)
            orders.kill()  # right after accepting: saga steps are in flight
            await asyncio.to_thread(orders.start)
            for n in range(ORDERS // 2, ORDERS):
                await place(n)
            assert len(accepted) == ORDERS

            async def all_settled() -> bool:
                for order_id in accepted:
                    order = (await client.get(f"{orders.url}/orders/{order_id}")).json()
                    if order["status"] != "confirmed":
                        return False
                return True

            await eventually(all_settled, timeout=90)
            (level,) = (
                await client.get(f"{inventory.url}/stock-levels", params={"sku": "S"})
            ).json()
            assert level["reserved"] == ORDERS  # one reservation per order, none twice
            assert (await client.get(f"{inventory.url}/reconciliation")).json()["mismatches"] == []
    finally:
        await asyncio.to_thread(orders.stop)
        await asyncio.to_thread(inventory.stop)
        await asyncio.to_thread(kafka.stop)
