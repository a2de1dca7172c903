"""When a service behind the gateway is down, slow or failing: a 503 problem naming it within the
gateway's time bound, never a hang, and retries only for calls that cannot have a second effect.

The gateway runs in-process on the session's real PostgreSQL; the services behind it are stand-ins
served over real HTTP (or nothing at all, for a service that is down).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.launcher.embedded import free_port
from tests.integration.gateway.conftest import RETRIES, TIMEOUT, GatewayWith
from tests.support.http import listening

pytestmark = pytest.mark.integration


@dataclass
class StandIn:
    """A service that answers every call with `status` after `delay` seconds, and remembers the
    calls it got."""

    status: int = 503
    delay: float = 0.0
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def handle(self, request: Request) -> JSONResponse:
        self.calls.append(
            (request.method, request.url.path, request.headers.get("idempotency-key"))
        )
        await asyncio.sleep(self.delay)
        return JSONResponse({"detail": "stand-in"}, status_code=self.status)

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT"]
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=methods)])


def nothing_listens() -> str:
    return f"http://127.0.0.1:{free_port()}"


def assert_unavailable(response: httpx.Response, service: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "1"
    problem = response.json()
    assert problem["unavailable"] == [service]
    assert problem["detail"].startswith(f"{service} is unavailable")


async def test_a_service_that_is_down_is_named_in_a_503(gateway_with: GatewayWith) -> None:
    async with gateway_with(inventory_url=nothing_listens()) as gateway:
        response = await gateway.get("/v1/availability", params={"sku": "TEE"})
    assert_unavailable(response, "inventory")
    assert "cannot connect" in response.json()["detail"]


async def test_a_slow_service_is_given_up_on_within_the_time_bound(
    gateway_with: GatewayWith,
) -> None:
    slow = StandIn(status=200, delay=30)
    async with listening(slow.app()) as url, gateway_with(pricing_url=url) as gateway:
        started = time.monotonic()
        response = await gateway.post(
            "/v1/admin/prices", json={"sku": "TEE", "currency": "EUR", "amount": 100}
        )
        waited = time.monotonic() - started
    assert_unavailable(response, "pricing")
    assert f"no answer within {TIMEOUT:g}s" in response.json()["detail"]
    # The stand-in would have answered after 30 s: the gateway answered long before.
    assert waited < 10


async def test_only_calls_that_cannot_have_a_second_effect_are_retried(
    gateway_with: GatewayWith,
) -> None:
    failing = StandIn(status=503)
    async with (
        listening(failing.app()) as url,
        gateway_with(inventory_url=url, pricing_url=url) as gateway,
    ):
        read = await gateway.get("/v1/availability", params={"sku": "TEE"})
        assert_unavailable(read, "inventory")
        assert len(failing.calls) == 1 + RETRIES  # a read is safe to repeat
        failing.calls.clear()

        # A relative change carries a key inventory recognises a repeat by: safe to repeat too.
        adjustment = await gateway.post(
            "/v1/stores/store-1/stock-adjustments",
            json={"sku": "TEE", "delta": 1, "reason": "receipt"},
        )
        assert_unavailable(adjustment, "inventory")
        assert len(failing.calls) == 1 + RETRIES
        assert len({key for _, _, key in failing.calls}) == 1
        failing.calls.clear()

        # A quote has no such key: it might have been made, so it is not sent again.
        created = await gateway.post(
            "/v1/admin/api-keys", json={"role": "shop", "name": "web", "channel": "web"}
        )
        quote = await gateway.post(
            "/v1/quotes",
            json={"currency": "EUR", "lines": [{"sku": "TEE", "quantity": 1}]},
            headers={"Authorization": f"Bearer {created.json()['api_key']}"},
        )
        assert_unavailable(quote, "pricing")
        assert len(failing.calls) == 1


async def test_an_order_is_retried_under_one_idempotency_key(gateway_with: GatewayWith) -> None:
    failing = StandIn(status=503)
    async with listening(failing.app()) as url, gateway_with(orders_url=url) as gateway:
        created = await gateway.post(
            "/v1/admin/api-keys", json={"role": "shop", "name": "web", "channel": "web"}
        )
        shop = {"Authorization": f"Bearer {created.json()['api_key']}"}
        body = {
            "quote_token": "not-a-real-token-but-long-enough",
            "customer": {"id": "c1", "email": "c1@example.com"},
            "fulfillment": {"method": "pickup", "store_id": "store-1"},
            "lines": [{"sku": "TEE", "quantity": 1}],
        }
        first = await gateway.post(
            "/v1/orders", json=body, headers={**shop, "Idempotency-Key": "checkout-7"}
        )
        assert_unavailable(first, "orders")
        keys = {key for _, _, key in failing.calls}
        assert len(failing.calls) == 1 + RETRIES
        assert len(keys) == 1  # every attempt carried the same downstream key

        # A failure is not a response to replay: the client's retry tries again, with the same
        # downstream key, so orders would still see one order.
        again = await gateway.post(
            "/v1/orders", json=body, headers={**shop, "Idempotency-Key": "checkout-7"}
        )
        assert_unavailable(again, "orders")
        assert {key for _, _, key in failing.calls} == keys
        assert "idempotent-replayed" not in again.headers


async def test_an_internal_error_behind_the_gateway_is_a_502_naming_the_service(
    gateway_with: GatewayWith,
) -> None:
    broken = StandIn(status=500)
    async with listening(broken.app()) as url, gateway_with(inventory_url=url) as gateway:
        response = await gateway.get("/v1/availability", params={"sku": "TEE"})
    assert response.status_code == 502, response.text
    assert response.json()["service"] == "inventory"
    assert len(broken.calls) == 1
