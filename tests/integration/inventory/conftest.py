"""Helpers for inventory's integration tests (the running services are in ../conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(inventory: httpx.AsyncClient, unique: Callable[[str], str]) -> dict[str, Any]:
    """A fresh store location in Amsterdam, for tests that need somewhere to keep stock."""
    body = {
        "location_id": unique("store"),
        "name": "Test store Amsterdam",
        "type": "store",
        "lat": 52.3738,
        "lon": 4.8910,
        "capabilities": ["ship", "pickup", "returns"],
        "priority": 50,
        "ship_capacity": 40,
    }
    response = await inventory.post("/locations", json=body)
    assert response.status_code == 200, response.text
    return body


async def set_stock(
    client: httpx.AsyncClient, location_id: str, sku: str, on_hand: int, safety_stock: int = 0
) -> dict[str, Any]:
    response = await client.post(
        "/stock-levels",
        json={
            "location_id": location_id,
            "sku": sku,
            "on_hand": on_hand,
            "safety_stock": safety_stock,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def level(client: httpx.AsyncClient, location_id: str, sku: str) -> dict[str, Any]:
    response = await client.get("/stock-levels", params={"location_id": location_id, "sku": sku})
    assert response.status_code == 200, response.text
    (found,) = response.json()
    return found  # type: ignore[no-any-return]


async def assert_ledger_reconciles(client: httpx.AsyncClient) -> None:
    response = await client.get("/reconciliation")
    assert response.status_code == 200
    body = response.json()
    assert body["levels_checked"] > 0
    assert body["mismatches"] == []


def days_ahead(days: float) -> str:
    """An expected time `days` from now, as a client writes it."""
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def add_supply(
    client: httpx.AsyncClient,
    location_id: str,
    sku: str,
    quantity: int,
    *,
    supply_id: str,
    days: float = 3,
) -> dict[str, Any]:
    response = await client.post(
        "/incoming-stock",
        json={
            "supply_id": supply_id,
            "location_id": location_id,
            "sku": sku,
            "quantity": quantity,
            "expected_at": days_ahead(days),
        },
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def supply_of(client: httpx.AsyncClient, supply_id: str) -> dict[str, Any]:
    response = await client.get(f"/incoming-stock/{supply_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def receive(
    client: httpx.AsyncClient, supply_id: str, quantity: int | None = None, **headers: str
) -> httpx.Response:
    body = {} if quantity is None else {"quantity": quantity}
    return await client.post(f"/incoming-stock/{supply_id}/receive", json=body, headers=headers)
