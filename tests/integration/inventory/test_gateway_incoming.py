"""Incoming stock through the gateway, as an admin and a shop call it: the admin routes reach
inventory, a receipt sent twice with one Idempotency-Key receives once, and availability
passes what is incoming through unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.inventory.conftest import days_ahead, level

pytestmark = pytest.mark.integration


async def test_an_admin_announces_and_receives_incoming_stock_through_the_gateway(
    gateway: httpx.AsyncClient,
    inventory: httpx.AsyncClient,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    sku, supply_id = unique("CANOE"), unique("po")
    body = {
        "supply_id": supply_id,
        "location_id": store["location_id"],
        "sku": sku,
        "quantity": 6,
        "expected_at": days_ahead(4),
    }
    created = await gateway.post(
        "/v1/admin/incoming-stock", json=body, headers={"Idempotency-Key": unique("announce")}
    )
    assert created.status_code == 200, created.text
    assert (created.json()["promisable"], created.json()["status"]) == (6, "incoming")

    availability = await gateway.get("/v1/availability", params={"sku": sku})
    (item,) = availability.json()["items"]
    assert item["incoming"] == [
        {
            "location_id": store["location_id"],
            "quantity": 6,
            "expected_at": created.json()["expected_at"],
        }
    ]
    assert item["next_available_at"] == created.json()["expected_at"]

    key = {"Idempotency-Key": unique("receipt")}
    url = f"/v1/admin/incoming-stock/{supply_id}/receive"
    first = await gateway.post(url, json={"quantity": 2}, headers=key)
    assert first.status_code == 200, first.text
    again = await gateway.post(url, json={"quantity": 2}, headers=key)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert (await level(inventory, store["location_id"], sku))["on_hand"] == 2

    too_many = await gateway.post(url, json={"quantity": 5})
    assert too_many.status_code == 409, too_many.text
    assert too_many.headers["content-type"] == "application/problem+json"
    assert too_many.json()["instance"] == url
    rest = await gateway.post(url)  # no body: everything still incoming
    assert rest.status_code == 200, rest.text
    assert (rest.json()["received"], rest.json()["status"]) == (6, "received")

    listed = await gateway.get("/v1/admin/incoming-stock", params={"sku": sku})
    assert [s["supply_id"] for s in listed.json()] == [supply_id]
    missing = await gateway.post(f"/v1/admin/incoming-stock/{unique('no-po')}/receive", json={})
    assert missing.status_code == 404, missing.text


async def test_only_admins_manage_incoming_stock(
    gateway: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    created = await gateway.post(
        "/v1/admin/api-keys", json={"role": "shop", "name": unique("shop"), "channel": "web"}
    )
    assert created.status_code == 201, created.text
    shop = {"Authorization": f"Bearer {created.json()['api_key']}"}
    listed = await gateway.get("/v1/admin/incoming-stock", headers=shop)
    assert listed.status_code == 403, listed.text
    receipt = await gateway.post("/v1/admin/incoming-stock/po-1/receive", json={}, headers=shop)
    assert receipt.status_code == 403, receipt.text
