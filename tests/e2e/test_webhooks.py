"""Webhooks on the whole running system (`omniroute run`), as a partner meets them: it registers
a URL through the gateway and receives signed deliveries for its own orders, and nothing else."""

from __future__ import annotations

import asyncio

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from tests.e2e.conftest import LISBON, Retail, address, is_problem, near, ok
from tests.support.webhook_receiver import receiving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_a_partner_gets_a_signed_fulfillment_assigned_and_a_failure_comes_again(
    retail: Retail,
) -> None:
    customer = near(LISBON, -40)
    partner_id, rival_id = retail.id("partner"), retail.id("rival")
    dropship = await retail.location(
        "dropship", "dropship", near(customer, 50), capabilities=("ship",), partner_id=partner_id
    )
    sku = retail.sku("canoe")
    await retail.price(sku, 79900)
    await retail.stock(dropship, sku, 4)
    await retail.routing_sees(sku, dropship, 4)
    partner = await retail.key("partner", partner_id=partner_id)
    rival = await retail.key("partner", partner_id=rival_id)
    shop = await retail.key("shop", channel="web")

    # The partner's endpoint fails the first delivery: the retry must carry the same id.
    async with receiving([500]) as endpoint, receiving() as rivals:
        created = ok(
            await partner.post(
                "/v1/webhooks",
                json={
                    "url": endpoint.url,
                    "event_types": ["fulfillment.assigned", "fulfillment.cancelled"],
                    "description": "warehouse system",
                },
            )
        )
        secret = created["secret"]
        ok(await rival.post("/v1/webhooks", json={"url": rivals.url, "event_types": ["fulfillment.assigned"]}))  # fmt: skip
        refused = await partner.post(
            "/v1/webhooks",
            json={"url": "http://169.254.169.254/latest/", "event_types": ["order.confirmed"]},
        )
        assert "link-local" in is_problem(refused, 422)["detail"]

        order_id = await retail.place(
            shop, {sku: 1}, {"method": "delivery", "address": address(customer)}
        )
        got = await endpoint.wait_for(lambda got: len(got) >= 2, timeout=30)
        first, again = got[0], got[1]
        assert first.webhook_id == again.webhook_id
        assert again.at - first.at < 30  # the first retry comes within 30 s
        body = Verifier(secret).verify(again.body, again.headers)
        assert body["type"] == "fulfillment.assigned"
        assert body["data"]["order_id"] == order_id
        assert body["data"]["partner_id"] == partner_id
        assert body["data"]["lines"] == [{"sku": sku, "quantity": 1}]

        log = ok(await partner.get(f"/v1/webhooks/{created['webhook_id']}/deliveries"))
        (delivery,) = log["items"]
        assert delivery["delivery_id"] == first.webhook_id
        assert delivery["status"] == "delivered"
        assert delivery["attempts"] == 2

        # The order is cancelled: the partner hears so, and must not ship it.
        ok(await shop.post(f"/v1/orders/{order_id}/cancel", json={"reason": "changed mind"}))
        await endpoint.wait_for(lambda got: bool(endpoint.of("fulfillment.cancelled")))
        (cancelled,) = endpoint.of("fulfillment.cancelled", order_id=order_id)
        Verifier(secret).verify(cancelled.body, cancelled.headers)

        await asyncio.sleep(1)
        assert rivals.received == []
