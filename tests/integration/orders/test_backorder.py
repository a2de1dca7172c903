"""Pre-orders against incoming stock (DESIGN.md §8.1): an order nothing can serve now waits as
`backordered` for stock on its way, promised first come first served and never beyond what is
incoming; when the stock is received, the waiting orders are reserved in promise order and
confirmed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.kafka import eventually
from tests.support.network import Network

pytestmark = pytest.mark.integration


async def expect(network: Network, supply_id: str, sku: str, units: int, days: int) -> datetime:
    """A purchase order of `units` on its way to the warehouse, due in `days` days."""
    due = (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)
    response = await network.inventory.post(
        "/incoming-stock",
        json={
            "supply_id": supply_id,
            "location_id": network.warehouse,
            "sku": sku,
            "quantity": units,
            "expected_at": due.isoformat(),
        },
    )
    assert response.status_code == 200, response.text
    return due


async def receive(network: Network, supply_id: str, units: int) -> dict[str, Any]:
    response = await network.inventory.post(
        f"/incoming-stock/{supply_id}/receive", json={"quantity": units}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def preorder(network: Network, sku: str, units: int) -> str:
    body = network.order_body(await network.quote({sku: units}), network.deliver())
    body["allow_backorder"] = True
    response = await network.orders.post("/orders", json=body)
    assert response.status_code == 202, response.text
    return response.json()["order_id"]  # type: ignore[no-any-return]


async def test_a_preorder_waits_for_incoming_stock_and_is_confirmed_when_it_arrives(
    network: Network,
) -> None:
    sku = network.id("KAYAK")
    await network.price(sku, 89900)
    due = await expect(network, network.id("po-1"), sku, 3, days=4)

    order_id = await preorder(network, sku, 2)

    waiting = await network.until(order_id, "backordered")
    assert datetime.fromisoformat(waiting["promised_at"]) == due
    (fulfillment,) = waiting["fulfillments"]
    assert (fulfillment["location_id"], fulfillment["backorder"]) == (network.warehouse, True)
    assert fulfillment["status"] == "pending"

    await receive(network, network.id("po-1"), 3)
    confirmed = await network.until(order_id, "confirmed")
    assert confirmed["fulfillments"][0]["status"] == "reserved"
    level = await network.level(network.warehouse, sku)
    assert (level["on_hand"], level["reserved"]) == (3, 2)


async def test_the_last_incoming_units_are_promised_once_and_a_partial_receipt_confirms_some(
    network: Network,
) -> None:
    sku = network.id("LAST")
    await network.price(sku, 4900)
    await expect(network, network.id("po-last"), sku, 5, days=2)

    orders = await asyncio.gather(*(preorder(network, sku, 1) for _ in range(8)))

    # Orders takes each as a pre-order at once; inventory, which holds the promises, answers
    # the three it cannot promise, and those are rejected (nothing else is incoming).
    async def answered() -> list[dict[str, Any]] | None:
        found = [await network.order(order_id) for order_id in orders]
        rejected = [o for o in found if o["status"] == "rejected"]
        return found if len(rejected) == 3 else None

    found = await eventually(answered, timeout=30)
    promised = [o for o in found if o["status"] == "backordered"]
    assert len(promised) == 5  # never more than is incoming
    supply = (await network.inventory.get("/incoming-stock", params={"sku": sku})).json()
    assert [(s["promised"], s["promisable"]) for s in supply] == [(5, 0)]

    # A partial receipt confirms as many as it covers (in promise order: inventory's tests
    # check which ones), the rest when the remainder arrives.
    await receive(network, network.id("po-last"), 3)
    await eventually(
        lambda: _with_status(network, [o["order_id"] for o in promised], "confirmed", 3)
    )
    await receive(network, network.id("po-last"), 2)
    await eventually(
        lambda: _with_status(network, [o["order_id"] for o in promised], "confirmed", 5)
    )
    level = await network.level(network.warehouse, sku)
    assert (level["on_hand"], level["reserved"]) == (5, 5)


async def _with_status(
    network: Network, order_ids: list[str], status: str, count: int
) -> list[str] | None:
    matching = [o for o in order_ids if (await network.order(o))["status"] == status]
    return matching if len(matching) == count else None


async def test_a_cancelled_preorder_frees_its_promise(network: Network) -> None:
    sku = network.id("TENT")
    await network.price(sku, 19900)
    await expect(network, network.id("po-tent"), sku, 1, days=3)
    order_id = await preorder(network, sku, 1)
    await network.until(order_id, "backordered")

    async def promisable(units: int) -> bool:
        supply = (await network.inventory.get("/incoming-stock", params={"sku": sku})).json()
        return [s["promisable"] for s in supply] == [units]

    # The order is backordered as soon as it is placed; wait for inventory to have promised the
    # unit too, or "freed" below could be seen before the promise was even taken.
    await eventually(lambda: promisable(0))
    response = await network.orders.post(f"/orders/{order_id}/cancel", json={"reason": "no"})
    assert response.status_code == 200, response.text

    await eventually(lambda: promisable(1))
    again = await preorder(network, sku, 1)  # the unit can be promised to someone else now
    await network.until(again, "backordered")
