"""Orders across channels against the real PostgreSQL and broker (DESIGN.md §8.1): one buyer's
deliveries consolidated into one parcel, a change of pickup store, reject codes that correct the
location's stock."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kafka import eventually
from tests.support.network import Network

pytestmark = pytest.mark.integration


async def place(network: Network, lines: dict[str, int], fulfillment: dict[str, Any], **extra: Any) -> str:  # fmt: skip
    body = network.order_body(await network.quote(lines, **extra), fulfillment)
    body["customer"]["id"] = network.id("buyer")
    response = await network.orders.post("/orders", json=body)
    assert response.status_code == 202, response.text
    return response.json()["order_id"]  # type: ignore[no-any-return]


async def test_a_second_delivery_from_another_channel_ships_with_the_first(
    network: Network,
) -> None:
    tent, stove = network.id("TENT"), network.id("STOVE")
    for sku in (tent, stove):
        await network.price(sku, 9900)
    await network.stock(network.store_utr, tent, 1)  # the first order can only come from here
    await network.stock(network.warehouse, stove, 3)
    await network.stock(network.store_utr, stove, 3)
    # Routing reads the projection: it must know the store has stoves too, or the warehouse
    # (nearer, and in stock) is all it can see.
    await network.sees(stove, network.store_utr, 3)
    await network.sees(stove, network.warehouse, 3)

    first = await place(network, {tent: 1}, network.deliver())
    await network.until(first, "confirmed")
    # The app, the address typed another way: the same buyer and door.
    door = {**network.customer_address, "line1": " LONG street 1 "}
    second = await place(
        network, {stove: 1}, {"method": "delivery", "address": door}, channel="app"
    )

    joined = await network.until(second, "confirmed")
    (parcel,) = (await network.order(first))["fulfillments"]
    (fulfillment,) = joined["fulfillments"]
    assert fulfillment["location_id"] == network.store_utr  # not the nearer warehouse
    assert fulfillment["shipment_id"] == parcel["shipment_id"]
    assert joined["consolidated_with"] == [first]
    attempts = (await network.orders.get(f"/orders/{second}/routing")).json()["attempts"]
    assert "consolidation" in attempts[0]["rules_applied"]
    assert first in attempts[0]["explanation"]

    await network.act(
        fulfillment["fulfillment_id"], "ship", {"carrier": "PostNL", "tracking_number": "3SOMN1"}
    )
    for order_id in (first, second):
        done = await network.until(order_id, "completed")
        assert done["fulfillments"][0]["tracking_number"] == "3SOMN1"


async def test_a_waiting_customer_moves_the_pickup_to_another_store(network: Network) -> None:
    boots = network.id("BOOTS")
    await network.price(boots, 12900)
    await network.stock(network.store_ams, boots, 1)
    await network.stock(network.store_utr, boots, 1)
    await network.sees(boots, network.store_utr, 1)
    order_id = await place(network, {boots: 1}, network.collect(network.store_ams))
    await network.until(order_id, "confirmed")

    response = await network.orders.post(
        f"/orders/{order_id}/pickup-store", json={"store_id": network.store_utr}
    )
    assert response.status_code == 200, response.text

    async def moved() -> dict[str, Any] | None:
        order = await network.order(order_id)
        statuses = {f["location_id"]: f["status"] for f in order["fulfillments"]}
        done = statuses == {network.store_ams: "cancelled", network.store_utr: "reserved"}
        return order if done else None

    await eventually(moved)

    async def released() -> bool:
        ams = await network.level(network.store_ams, boots)
        utr = await network.level(network.store_utr, boots)
        return (ams["reserved"], utr["reserved"]) == (0, 1)

    await eventually(released)

    # A store without the boots (and no transfer source left): refused, the order stays.
    third = network.id("store-3")
    await network.inventory.post(
        "/locations",
        json={
            "location_id": third, "name": third, "type": "store", "lat": -33.6, "lon": 18.6,
            "capabilities": ["pickup"], "priority": 50, "ship_capacity": 10,
        },
    )  # fmt: skip
    refused = await network.orders.post(
        f"/orders/{order_id}/pickup-store", json={"store_id": third}
    )
    assert refused.status_code == 409, refused.text
    assert f"{third} cannot serve this order" in refused.json()["detail"]
    assert (await network.level(network.store_utr, boots))["reserved"] == 1


async def test_a_not_in_stock_reject_corrects_the_store_and_never_returns_there(
    network: Network,
) -> None:
    lamp = network.id("LAMP")
    await network.price(lamp, 2900)
    await network.stock(network.store_ams, lamp, 4)
    await network.stock(network.store_utr, lamp, 4)
    await network.sees(lamp, network.store_utr, 4)
    order_id = await place(network, {lamp: 2}, network.collect(network.store_ams))
    order = await network.until(order_id, "confirmed")
    (at_ams,) = order["fulfillments"]

    await network.act(
        at_ams["fulfillment_id"], "reject", {"reason": "shelf is empty", "code": "not_in_stock"}
    )

    async def corrected() -> dict[str, Any] | None:
        level = await network.level(network.store_ams, lamp)
        return level if (level["on_hand"], level["reserved"]) == (0, 0) else None

    await eventually(corrected)
    rerouted = await network.settled(order_id)
    assert network.store_ams not in {
        f["location_id"] for f in rerouted["fulfillments"] if f["status"] != "rejected"
    }
    reconciliation = (await network.inventory.get("/reconciliation")).json()
    assert reconciliation["mismatches"] == []


async def test_a_partial_cancel_releases_and_refunds_exactly_those_units(network: Network) -> None:
    tee = network.id("PTEE")
    await network.price(tee, 1999)
    await network.stock(network.store_ams, tee, 5)
    await network.sees(tee, network.store_ams, 5)
    order_id = await place(network, {tee: 3}, network.collect(network.store_ams))
    await network.until(order_id, "confirmed")

    one = {"reason": "one too many", "lines": [{"sku": tee, "quantity": 1}]}
    key = {"Idempotency-Key": network.id("cancel-1")}
    answer = await network.orders.post(f"/orders/{order_id}/cancel", json=one, headers=key)
    assert answer.status_code == 200, answer.text
    again = await network.orders.post(f"/orders/{order_id}/cancel", json=one, headers=key)
    assert again.json()["refund"] == answer.json()["refund"]  # applied once
    assert again.json()["lines"][0]["cancelled_quantity"] == 1
    assert answer.json()["refund"] == {"amount": 1999, "currency": "EUR"}
    assert answer.json()["fulfillments"][0]["lines"] == [{"sku": tee, "quantity": 2}]

    async def reserved(units: int) -> bool:
        return (await network.level(network.store_ams, tee))["reserved"] == units

    await eventually(lambda: reserved(2))
    too_many = await network.orders.post(
        f"/orders/{order_id}/cancel", json={"lines": [{"sku": tee, "quantity": 3}]}
    )
    assert too_many.status_code == 409, too_many.text
    rest = await network.orders.post(
        f"/orders/{order_id}/cancel", json={"lines": [{"sku": tee, "quantity": 2}]}
    )
    assert rest.json()["status"] == "cancelled"
    await eventually(lambda: reserved(0))
    assert (await network.inventory.get("/reconciliation")).json()["mismatches"] == []
