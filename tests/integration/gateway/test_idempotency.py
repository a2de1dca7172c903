"""A gateway that dies after claiming an Idempotency-Key, before it answered: the client's retry
takes the claim over once its lease has run out, and the order is still placed exactly once."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.gateway import domain
from services.infrastructure.service import Runtime
from tests.support.network import Network

pytestmark = pytest.mark.integration


async def test_a_claim_left_by_a_crashed_gateway_is_taken_over_by_the_retry(
    gateway: httpx.AsyncClient, gateway_app: FastAPI, network: Network
) -> None:
    created = await gateway.post(
        "/v1/admin/api-keys", json={"role": "shop", "name": "crash shop", "channel": "web"}
    )
    assert created.status_code == 201, created.text
    shop = {"Authorization": f"Bearer {created.json()['api_key']}"}
    sku = network.id("CRASH")
    await network.price(sku, 1000)
    await network.stock(network.warehouse, sku, 5)
    await network.sees(sku, network.warehouse, 5)
    body = network.order_body(await network.quote({sku: 2}), network.deliver())

    # What a gateway leaves behind when it dies mid-request: a claim, no response, a lease
    # that has run out.
    runtime: Runtime = gateway_app.state.runtime
    async with runtime.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO idempotency_records"
                " (key_id, operation, idempotency_key, fingerprint, locked_until) VALUES"
                " (:key_id, 'POST /v1/orders', 'crashed-1', :fingerprint, now() - interval '1 second')"
            ),
            {
                "key_id": created.json()["key_id"],
                "fingerprint": domain.request_fingerprint("POST", "/v1/orders", body),
            },
        )

    retried = await gateway.post(
        "/v1/orders", json=body, headers={**shop, "Idempotency-Key": "crashed-1"}
    )
    assert retried.status_code == 202, retried.text
    assert "idempotent-replayed" not in retried.headers
    again = await gateway.post(
        "/v1/orders", json=body, headers={**shop, "Idempotency-Key": "crashed-1"}
    )
    assert again.json() == retried.json()
    assert again.headers["idempotent-replayed"] == "true"

    order = await network.until(retried.json()["order_id"], "confirmed")
    assert [line["quantity"] for line in order["lines"]] == [2]
    levels = (await network.inventory.get("/stock-levels", params={"sku": sku})).json()
    assert [level["reserved"] for level in levels] == [2]
