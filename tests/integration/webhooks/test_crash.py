"""The webhooks process killed while a delivery is on the wire: the next process sends it again,
with the same `webhook-id`, once the dead one's lease on it runs out (at least once)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.contracts.inventory import LocationType, StockLine
from services.contracts.orders import FulfillmentAssigned, FulfillmentMethod, OrderPlaced
from services.contracts.pricing import Channel, Money
from services.launcher.embedded import free_port
from tests.support.kafka import Producer, eventually
from tests.support.processes import ServiceProcess
from tests.support.webhook_receiver import HANG, receiving

pytestmark = pytest.mark.integration

LEASE_SECONDS = 6


def webhooks_process(
    database_url: str, kafka_bootstrap: str, group: str, log: Path
) -> ServiceProcess:
    return ServiceProcess(
        "services.webhooks.app:app",
        free_port(),
        {
            "OMNIROUTE_DATABASE_URL": database_url,
            "OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "OMNIROUTE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "OMNIROUTE_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "OMNIROUTE_CONSUMER_GROUP": group,
            "OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
            "OMNIROUTE_WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS),
            "OMNIROUTE_LOG_FORMAT": "console",
        },
        log,
    )


async def test_a_process_killed_mid_send_still_delivers(
    create_service_database: Callable[[str], str],
    kafka_bootstrap: str,
    producer: Producer,
    tmp_path: Path,
) -> None:
    database_url = create_service_database("webhooks")
    group = f"webhooks-crash-{uuid.uuid4().hex[:6]}"
    first = webhooks_process(database_url, kafka_bootstrap, group, tmp_path / "first.log")
    second = webhooks_process(database_url, kafka_bootstrap, group, tmp_path / "second.log")
    order_id = f"ord-crash-{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(first.start)
        # The first attempt is taken and never answered; the second is answered.
        async with receiving([HANG, 200]) as receiver, httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                f"{first.url}/webhooks",
                json={
                    "url": receiver.url,
                    "event_types": ["fulfillment.assigned"],
                    "subscriber": {"role": "admin"},
                },
            )
            assert response.status_code == 201, response.text
            webhook_id = response.json()["webhook_id"]
            await producer.send_event(
                OrderPlaced(
                    order_id=order_id,
                    channel=Channel.WEB,
                    customer_id="cust-1",
                    quote_id="q-1",
                    method=FulfillmentMethod.DELIVERY,
                    lines=(StockLine(sku="KAYAK", quantity=1),),
                    total=Money(amount=42000, currency="EUR"),
                )
            )
            await producer.send_event(
                FulfillmentAssigned(
                    order_id=order_id,
                    fulfillment_id=f"ful-{order_id}",
                    location_id="dropship-1",
                    location_type=LocationType.DROPSHIP,
                    method=FulfillmentMethod.DELIVERY,
                    lines=(StockLine(sku="KAYAK", quantity=1),),
                    attempt=1,
                    partner_id="partner-1",
                )
            )
            await receiver.wait_for(lambda got: len(got) >= 1)
            await asyncio.to_thread(first.kill)  # the request is on the wire, unanswered

            await asyncio.to_thread(second.start)
            got = await receiver.wait_for(lambda got: len(got) >= 2, timeout=LEASE_SECONDS + 20)
            assert got[0].webhook_id == got[1].webhook_id
            assert got[0].body == got[1].body
            assert got[1].payload["data"]["order_id"] == order_id

            async def delivered() -> dict[str, object] | None:
                response = await client.get(f"{second.url}/webhooks/{webhook_id}/deliveries")
                (delivery,) = response.json()["items"]
                return delivery if delivery["status"] == "delivered" else None

            delivery = await eventually(delivered, timeout=10)
            assert delivery["attempts"] == 2
            assert delivery["delivery_id"] == got[0].webhook_id
    finally:
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)
