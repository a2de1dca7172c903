"""Webhooks end to end inside the test session: orders commits, its events reach the webhooks
service over the broker, and a real local HTTP receiver gets signed deliveries, retried with the
same `webhook-id`, only for what the subscriber's key may read."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook as Verifier

from services.contracts.webhooks import WebhookEventType
from services.webhooks import handlers
from tests.integration.conftest import GATEWAY_ADMIN_KEY
from tests.support.kafka import eventually
from tests.support.network import Network
from tests.support.webhook_receiver import HANG, Receiver, receiving

pytestmark = pytest.mark.integration

EVERY_EVENT = tuple(event_type.value for event_type in WebhookEventType)


async def api_key(gateway: httpx.AsyncClient, unique: Callable[[str], str], **binding: str) -> str:
    response = await gateway.post(
        "/v1/admin/api-keys", json={"name": unique("webhook-test"), **binding}
    )
    assert response.status_code == 201, response.text
    return response.json()["api_key"]  # type: ignore[no-any-return]


CREATED: list[str] = []


@pytest.fixture(autouse=True)
async def _forget_webhooks(gateway: httpx.AsyncClient) -> AsyncIterator[None]:
    """Delete the test's webhooks after it: their receivers are gone, and a webhook left behind
    would be retried for the rest of the session with every event it hears of."""
    yield
    while CREATED:
        await gateway.delete(f"/v1/webhooks/{CREATED.pop()}")


async def subscribe(
    gateway: httpx.AsyncClient, key: str, url: str, *event_types: str
) -> dict[str, Any]:
    response = await gateway.post(
        "/v1/webhooks",
        json={"url": url, "event_types": list(event_types)},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201, response.text
    CREATED.append(response.json()["webhook_id"])
    return response.json()  # type: ignore[no-any-return]


async def deliveries(
    gateway: httpx.AsyncClient, key: str, webhook_id: str, **params: str
) -> list[dict[str, Any]]:
    response = await gateway.get(
        f"/v1/webhooks/{webhook_id}/deliveries",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def verified(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """Every request the receiver got, each checked as a partner would check it."""
    return [Verifier(secret).verify(r.body, r.headers) for r in receiver.received]


async def dropship_order(network: Network, *, channel: str = "web") -> tuple[str, str]:
    """An order only the network's partner has the stock for: routed to it."""
    sku = network.id(f"KAYAK{uuid.uuid4().hex[:6]}")
    await network.price(sku, 42000)
    await network.stock(network.partner_location, sku, 3)
    body = network.order_body(await network.quote({sku: 1}, channel=channel), network.deliver())
    response = await network.orders.post("/orders", json=body)
    assert response.status_code == 202, response.text
    order_id = response.json()["order_id"]
    await network.until(order_id, "confirmed")
    return order_id, sku


async def test_a_partner_hears_of_its_own_fulfillment_signed_and_no_one_else_does(
    network: Network, gateway: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    partner_key = await api_key(gateway, unique, role="partner", partner_id=network.partner)
    other_key = await api_key(gateway, unique, role="partner", partner_id=unique("other"))
    web_key = await api_key(gateway, unique, role="shop", channel="web")
    app_key = await api_key(gateway, unique, role="shop", channel="app")
    async with (
        receiving() as partner,
        receiving() as other,
        receiving() as web,
        receiving() as app,
    ):
        everything = ("fulfillment.assigned", "order.confirmed")
        mine = await subscribe(gateway, partner_key, partner.url, *everything)
        assert mine["secret"].startswith("whsec_")
        assert mine["owner"] == f"partner:{network.partner}"
        await subscribe(gateway, other_key, other.url, *everything)
        web_hook = await subscribe(gateway, web_key, web.url, *everything)
        await subscribe(gateway, app_key, app.url, *everything)

        order_id, _ = await dropship_order(network)

        await partner.wait_for(lambda got: bool(partner.of("fulfillment.assigned")))
        await web.wait_for(lambda got: len(got) >= 2)
        (assigned,) = verified(partner, mine["secret"])
        assert assigned["type"] == "fulfillment.assigned"
        assert assigned["data"]["order_id"] == order_id
        assert assigned["data"]["partner_id"] == network.partner
        assert assigned["data"]["location_id"] == network.partner_location
        # The web shop hears of its order, and of the fulfillment in it.
        assert {p["type"] for p in verified(web, web_hook["secret"])} == set(everything)
        # The deliveries for this order were all made when its events were consumed, and the
        # ones above have arrived: nothing is on its way to the others.
        await asyncio.sleep(1)
        assert [p["type"] for p in verified(partner, mine["secret"])] == ["fulfillment.assigned"]
        assert other.received == []
        assert app.received == []


async def test_a_failed_delivery_comes_again_with_the_same_id(
    network: Network, gateway: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    key = await api_key(gateway, unique, role="partner", partner_id=network.partner)
    # A 500, then no answer within the 1 s timeout, then a 200.
    async with receiving([500, (2.5, 200)]) as partner:
        hook = await subscribe(gateway, key, partner.url, "fulfillment.assigned")
        await dropship_order(network)
        got = await partner.wait_for(lambda got: len(got) >= 3)
        assert len({r.webhook_id for r in got}) == 1
        assert all(p["type"] == "fulfillment.assigned" for p in verified(partner, hook["secret"]))
        # The first retry comes within the schedule's first pause (0.3 s here, +-20%).
        assert got[1].at - got[0].at < 5

        async def logged() -> list[dict[str, Any]] | None:
            return await deliveries(gateway, key, hook["webhook_id"], status="delivered") or None

        (delivery,) = await eventually(logged, timeout=10)
        assert delivery["delivery_id"] == got[0].webhook_id
        assert delivery["attempts"] == 3
        assert delivery["last_status_code"] == 200
        assert delivery["payload"]["type"] == "fulfillment.assigned"

        # Sent again on request, with the same id.
        response = await gateway.post(
            f"/v1/webhooks/{hook['webhook_id']}/deliveries/{delivery['delivery_id']}/retry",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 202, response.text
        again = await partner.wait_for(lambda got: len(got) >= 4)
        assert again[3].webhook_id == delivery["delivery_id"]
        assert again[3].body == again[0].body


async def test_a_dead_endpoint_never_holds_up_the_others(
    network: Network,
    gateway: httpx.AsyncClient,
    webhooks_app: FastAPI,
    unique: Callable[[str], str],
) -> None:
    per_endpoint = webhooks_app.state.settings.webhook_concurrency_per_endpoint
    key = await api_key(gateway, unique, role="partner", partner_id=network.partner)
    async with receiving([HANG] * 1000) as dead, receiving() as alive:
        # The dead one hears of everything this session does, the live one of one partner.
        await subscribe(gateway, GATEWAY_ADMIN_KEY, dead.url, *EVERY_EVENT)
        await subscribe(gateway, key, alive.url, "fulfillment.assigned")
        orders = [(await dropship_order(network))[0] for _ in range(4)]
        await alive.wait_for(lambda got: len(got) >= len(orders), timeout=10)
        assert {r.payload["data"]["order_id"] for r in alive.received} == set(orders)
        # The dead one is tried again and again, never with more than its share at once.
        await dead.wait_for(lambda got: len(got) > 2 * per_endpoint, timeout=15)
        assert dead.most_in_flight == per_endpoint


async def test_a_webhook_failing_for_a_day_is_disabled_and_says_so(
    network: Network,
    gateway: httpx.AsyncClient,
    webhooks_app: FastAPI,
    unique: Callable[[str], str],
) -> None:
    key = await api_key(gateway, unique, role="partner", partner_id=network.partner)
    async with receiving([503] * 20) as partner:
        hook = await subscribe(gateway, key, partner.url, "fulfillment.assigned")
        async with webhooks_app.state.unit_of_work() as uow:
            await uow.connection.execute(
                text(
                    "UPDATE webhooks SET failing_since = now() - interval '25 hours'"
                    " WHERE webhook_id = :id"
                ),
                {"id": hook["webhook_id"]},
            )
            await uow.commit()
        await dropship_order(network)
        await partner.wait_for(lambda got: len(got) >= 1)

        async def disabled() -> dict[str, Any] | None:
            response = await gateway.get(
                f"/v1/webhooks/{hook['webhook_id']}", headers={"Authorization": f"Bearer {key}"}
            )
            found: dict[str, Any] = response.json()
            return found if found["status"] == "disabled" else None

        found = await eventually(disabled, timeout=10)
        assert "every delivery has failed since" in found["status_reason"]
        assert "HTTP 503" in found["status_reason"]
        (failed,) = await deliveries(gateway, key, hook["webhook_id"], status="failed")
        assert failed["last_status_code"] == 503
        await asyncio.sleep(1.5)  # past every retry pause of the schedule: nothing more came
        assert len(partner.received) == 1
        # Someone asks for it: sent once, even to the disabled webhook.
        response = await gateway.post(
            f"/v1/webhooks/{hook['webhook_id']}/deliveries/{failed['delivery_id']}/retry",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 202, response.text
        await partner.wait_for(lambda got: len(got) >= 2)
        assert partner.received[1].webhook_id == failed["delivery_id"]


async def test_a_partner_hears_when_its_fulfillment_is_cancelled(
    network: Network, gateway: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    key = await api_key(gateway, unique, role="partner", partner_id=network.partner)
    async with receiving() as partner:
        hook = await subscribe(gateway, key, partner.url, "fulfillment.cancelled")
        order_id, _ = await dropship_order(network)
        response = await network.orders.post(
            f"/orders/{order_id}/cancel", json={"reason": "customer changed their mind"}
        )
        assert response.status_code == 200, response.text
        await partner.wait_for(lambda got: len(got) >= 1)
        (cancelled,) = verified(partner, hook["secret"])
        assert cancelled["type"] == "fulfillment.cancelled"
        assert cancelled["data"]["order_id"] == order_id
        assert cancelled["data"]["partner_id"] == network.partner


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://0.0.0.0:8080/", "not an address"),
    ],
)
async def test_link_local_and_metadata_addresses_are_refused(
    gateway: httpx.AsyncClient, url: str, why: str
) -> None:
    response = await gateway.post(
        "/v1/webhooks", json={"url": url, "event_types": ["order.confirmed"]}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert why in response.json()["detail"]


async def test_a_host_that_does_not_resolve_is_refused(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/v1/webhooks",
        json={"url": "http://no-such-host.invalid/hooks", "event_types": ["order.confirmed"]},
    )
    assert response.status_code == 422, response.text
    assert "does not resolve" in response.json()["detail"]


async def test_webhooks_are_managed_only_by_their_binding(
    gateway: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    one = await api_key(gateway, unique, role="partner", partner_id=unique("p1"))
    two = await api_key(gateway, unique, role="partner", partner_id=unique("p2"))
    store = await api_key(gateway, unique, role="store", store_id=unique("s"))
    hook = await subscribe(gateway, one, "http://127.0.0.1:9/hooks", "fulfillment.assigned")

    def as_(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    assert (await gateway.get("/v1/webhooks", headers=as_(two))).json()["items"] == []
    mine = (await gateway.get("/v1/webhooks", headers=as_(one))).json()["items"]
    assert [w["webhook_id"] for w in mine] == [hook["webhook_id"]]
    assert "secret" not in mine[0]
    path = f"/v1/webhooks/{hook['webhook_id']}"
    assert (await gateway.get(path, headers=as_(two))).status_code == 404
    assert (await gateway.get(f"{path}/deliveries", headers=as_(two))).status_code == 404
    assert (await gateway.delete(path, headers=as_(two))).status_code == 404
    assert (await gateway.get("/v1/webhooks", headers=as_(store))).status_code == 403
    # An admin sees and manages every webhook.
    assert (await gateway.get(path)).status_code == 200
    deleted = await gateway.delete(path, headers=as_(one))
    assert deleted.status_code == 200
    assert (await gateway.get(path, headers=as_(one))).status_code == 404


async def test_the_log_keeps_old_deliveries_only_until_they_are_settled_and_old(
    webhooks: httpx.AsyncClient, webhooks_app: FastAPI
) -> None:
    created = await webhooks.post(
        "/webhooks",
        json={
            "url": "http://127.0.0.1:9/hooks",
            "event_types": ["order.confirmed"],
            "subscriber": {"role": "admin"},
        },
    )
    assert created.status_code == 201, created.text
    webhook_id = created.json()["webhook_id"]
    CREATED.append(webhook_id)
    rows = [
        ("delivered", 15),  # old and settled: goes
        ("failed", 15),  # old and settled: goes
        ("pending", 15),  # old but still being retried: stays
        ("delivered", 1),  # settled but recent: stays
    ]
    async with webhooks_app.state.unit_of_work() as uow:
        for n, (status, days) in enumerate(rows):
            await uow.connection.execute(
                text(
                    "INSERT INTO deliveries (delivery_id, webhook_id, event_id, event_type, body,"
                    " status, attempts, replay, next_attempt_at, created_at) VALUES (:id, :webhook,"
                    " :event, 'order.confirmed', '{}', :status, 1, false, now() + interval '1 day',"
                    " now() - make_interval(days => :days))"
                ),
                {
                    "id": f"msg_retention_{webhook_id}_{n}",
                    "webhook": webhook_id,
                    "event": f"event-{n}",
                    "status": status,
                    "days": days,
                },
            )
        await uow.commit()
    async with webhooks_app.state.unit_of_work() as uow:
        assert await handlers.forget_old_deliveries(uow, retention_days=14) >= 2
    async with webhooks_app.state.unit_of_work() as uow:
        left = (
            (
                await uow.connection.execute(
                    text(
                        "SELECT delivery_id FROM deliveries WHERE webhook_id = :id ORDER BY delivery_id"
                    ),
                    {"id": webhook_id},
                )
            )
            .scalars()
            .all()
        )
    assert left == [f"msg_retention_{webhook_id}_2", f"msg_retention_{webhook_id}_3"]
