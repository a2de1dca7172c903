"""Orders across channels through the gateway, one test per line of DESIGN.md §8.1: a pre-order
against incoming stock, consolidation, a partial cancel, a change of pickup store, and reject
codes that correct the stock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LISBON, Retail, address, is_problem, near, ok
from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def order(
    retail: Retail,
    shop: httpx.AsyncClient,
    lines: dict[str, int],
    fulfillment: dict[str, Any],
    **extra: Any,
) -> str:
    body = {**retail.order_body(await retail.quote(shop, lines), fulfillment), **extra}
    body["customer"]["id"] = retail.id("buyer")
    response = await shop.post("/v1/orders", json=body)
    assert response.status_code == 202, response.text
    return response.json()["order_id"]  # type: ignore[no-any-return]


async def test_a_preorder_against_incoming_stock_is_confirmed_when_it_arrives(
    retail: Retail,
) -> None:
    customer = near(LISBON, 60)
    warehouse = await retail.location("pre-wh", "warehouse", near(customer, 5), capabilities=("ship",))  # fmt: skip
    sku = retail.sku("kayak")
    await retail.price(sku, 89900)
    due = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    supply = {"supply_id": retail.id("po"), "location_id": warehouse, "sku": sku, "quantity": 3, "expected_at": due.isoformat()}  # fmt: skip
    ok(await retail.admin.post("/v1/admin/incoming-stock", json=supply))
    shop = await retail.key("shop", channel="web")

    seen = ok(await shop.get("/v1/availability", params={"sku": sku}))["items"][0]
    assert datetime.fromisoformat(seen["next_available_at"]) == due
    assert [(i["location_id"], i["quantity"]) for i in seen["incoming"]] == [(warehouse, 3)]

    deliver = {"method": "delivery", "address": address(customer)}
    without = await order(retail, shop, {sku: 1}, deliver)
    assert (await retail.until(shop, without, "rejected"))["status"] == "rejected"
    order_id = await order(retail, shop, {sku: 2}, deliver, allow_backorder=True)
    waiting = await retail.until(shop, order_id, "backordered")
    assert datetime.fromisoformat(waiting["promised_at"]) == due

    received = ok(await retail.admin.post(f"/v1/admin/incoming-stock/{retail.id('po')}/receive", json={}))  # fmt: skip
    assert received["received"] == 3
    confirmed = await retail.until(shop, order_id, "confirmed")
    assert confirmed["fulfillments"][0]["status"] == "reserved"


async def test_a_buyers_orders_from_two_channels_ship_as_one_parcel(retail: Retail) -> None:
    customer = near(LISBON, 70)
    near_wh = await retail.location("c-wh", "warehouse", near(customer, 2), capabilities=("ship",), priority=10)  # fmt: skip
    store = await retail.location("c-store", "store", near(customer, 25))
    tent, cap = retail.sku("ctent"), retail.sku("ccap")
    for sku in (tent, cap):
        await retail.price(sku, 2500)
    await retail.stock(store, tent, 2)
    await retail.stock(store, cap, 2)
    await retail.stock(near_wh, cap, 2)
    web = await retail.key("shop", channel="web")
    app = await retail.key("shop", channel="app")
    staff = await retail.key("store", store_id=store)
    deliver = {"method": "delivery", "address": address(customer)}

    first = await order(retail, web, {tent: 1}, deliver)
    await retail.until(web, first, "confirmed")
    other_case = {**address(customer), "line1": "  RUA AUGUSTA 1"}
    second = await order(retail, app, {cap: 1}, {"method": "delivery", "address": other_case})
    joined = await retail.until(app, second, "confirmed")
    parcel = (await retail.until(web, first, "confirmed"))["fulfillments"][0]
    (fulfillment,) = joined["fulfillments"]
    assert fulfillment["location_id"] == store
    assert fulfillment["shipment_id"] == parcel["shipment_id"]
    assert joined["consolidated_with"] == [first]
    queue = ok(await staff.get(f"/v1/stores/{store}/fulfillments", params={"status": "reserved"}))
    assert {item["shipment_id"] for item in queue["items"]} == {parcel["shipment_id"]}

    ok(await staff.post(f"/v1/fulfillments/{parcel['fulfillment_id']}/ship", json={"carrier": "CTT", "tracking_number": "LX9"}))  # fmt: skip
    await retail.until(web, first, "completed")
    await retail.until(app, second, "completed")


async def test_cancelling_some_units_refunds_them_and_the_last_ones_cancel_the_order(
    retail: Retail,
) -> None:
    store = await retail.location("pc-store", "store", near(LISBON, 80))
    sku = retail.sku("pctee")
    await retail.price(sku, 1999)
    await retail.stock(store, sku, 5)
    shop = await retail.key("shop", channel="web")
    order_id = await order(retail, shop, {sku: 3}, {"method": "pickup", "store_id": store})
    await retail.until(shop, order_id, "confirmed")

    one = {"reason": "one too many", "lines": [{"sku": sku, "quantity": 1}]}
    answer = ok(await shop.post(f"/v1/orders/{order_id}/cancel", json=one))
    assert answer["refund"] == {"amount": 1999, "currency": "EUR"}
    assert answer["status"] == "confirmed"
    assert answer["lines"][0]["cancelled_quantity"] == 1

    async def released() -> bool:
        return (await retail.available(sku, store))["reserved"] == 2

    await eventually(released)
    rest = {"lines": [{"sku": sku, "quantity": 2}]}
    answer = ok(await shop.post(f"/v1/orders/{order_id}/cancel", json=rest))
    assert answer["status"] == "cancelled"
    assert answer["totals"]["refunded"]["amount"] == 3 * 1999


async def test_a_waiting_customer_collects_at_another_store(retail: Retail) -> None:
    here = await retail.location("ps-a", "store", near(LISBON, 90))
    there = await retail.location("ps-b", "store", near(LISBON, 92))
    empty = await retail.location("ps-c", "store", near(LISBON, 94))
    sku = retail.sku("psbag")
    await retail.price(sku, 3900)
    await retail.stock(here, sku, 1)
    await retail.stock(there, sku, 1)
    shop = await retail.key("shop", channel="web")
    order_id = await order(retail, shop, {sku: 1}, {"method": "pickup", "store_id": here})
    await retail.until(shop, order_id, "confirmed")

    # Staff of another store may not move it; staff of the store it waits at may.
    elsewhere = await retail.key("store", store_id=there)
    not_theirs = await elsewhere.post(
        f"/v1/orders/{order_id}/pickup-store", json={"store_id": there}
    )
    is_problem(not_theirs, 403)
    staff = await retail.key("store", store_id=here)
    refused = await staff.post(f"/v1/orders/{order_id}/pickup-store", json={"store_id": empty})
    assert "cannot serve this order" in is_problem(refused, 409)["detail"]
    ok(await shop.post(f"/v1/orders/{order_id}/pickup-store", json={"store_id": there}))

    async def moved() -> bool:
        found = ok(await shop.get(f"/v1/orders/{order_id}"))
        live = [f["location_id"] for f in found["fulfillments"] if f["status"] == "reserved"]
        return live == [there] and (await retail.available(sku, here))["reserved"] == 0

    await eventually(moved)


async def test_a_not_in_stock_reject_corrects_the_store_and_routes_elsewhere(
    retail: Retail,
) -> None:
    store = await retail.location("rj-store", "store", near(LISBON, 100))
    warehouse = await retail.location("rj-wh", "warehouse", near(LISBON, 104), capabilities=("ship",))  # fmt: skip
    sku = retail.sku("rjlamp")
    await retail.price(sku, 2900)
    await retail.stock(store, sku, 3)
    await retail.stock(warehouse, sku, 3)
    shop = await retail.key("shop", channel="web")
    staff = await retail.key("store", store_id=store)
    order_id = await order(retail, shop, {sku: 1}, {"method": "pickup", "store_id": store})
    placed = await retail.until(shop, order_id, "confirmed")
    (at_store,) = placed["fulfillments"]
    assert at_store["location_id"] == store

    reject = {"reason": "not on the shelf", "code": "not_in_stock"}
    ok(await staff.post(f"/v1/fulfillments/{at_store['fulfillment_id']}/reject", json=reject))

    async def corrected() -> bool:
        level = await retail.available(sku, store)
        return (level["on_hand"], level["available"]) == (0, 0)

    await eventually(corrected)

    async def rerouted() -> dict[str, Any] | None:
        found = ok(await shop.get(f"/v1/orders/{order_id}"))
        live = [f for f in found["fulfillments"] if f["status"] not in ("rejected", "pending")]
        return found if live else None

    found = await eventually(rerouted)
    assert [f["location_id"] for f in found["fulfillments"] if f["status"] == "reserved"] == [warehouse]  # fmt: skip
