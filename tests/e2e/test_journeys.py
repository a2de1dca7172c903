"""Retail journeys through the gateway only: click & collect, click & reserve, ship-from-store,
split deliveries, dropship, rejects that re-route, a return in store, one price everywhere."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import LISBON, Retail, address, near, ok
from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_click_and_collect_from_order_to_handover_commits_the_stock(retail: Retail) -> None:
    store = await retail.location("store", "store", near(LISBON, 1))
    sku = retail.sku("tee")
    await retail.price(sku, 1000)
    await retail.stock(store, sku, 5)
    await retail.routing_sees(sku, store, 5)
    shop = await retail.key("shop", channel="web")
    staff = await retail.key("store", store_id=store)

    order_id = await retail.place(shop, {sku: 2}, {"method": "pickup", "store_id": store})
    order = await retail.until(shop, order_id, "confirmed")
    (fulfillment,) = order["fulfillments"]
    assert (fulfillment["location_id"], fulfillment["method"]) == (store, "pickup")
    assert fulfillment["status"] == "reserved"
    assert (await retail.available(sku, store))["reserved"] == 2

    queue = ok(await staff.get(f"/v1/stores/{store}/fulfillments", params={"status": "reserved"}))
    assert [item["fulfillment_id"] for item in queue["items"]] == [fulfillment["fulfillment_id"]]
    ready = ok(await staff.post(f"/v1/fulfillments/{fulfillment['fulfillment_id']}/ready"))
    assert ready["status"] == "ready_for_pickup"
    collected = ok(await staff.post(f"/v1/fulfillments/{fulfillment['fulfillment_id']}/handover"))
    assert collected["status"] == "picked_up"

    assert (await retail.until(shop, order_id, "completed"))["status"] == "completed"

    async def committed() -> bool:
        level = await retail.available(sku, store)
        return (level["on_hand"], level["reserved"], level["available"]) == (3, 0, 3)

    await eventually(committed)


async def test_a_click_and_reserve_hold_expires_and_the_stock_comes_back(retail: Retail) -> None:
    store = await retail.location("store", "store", near(LISBON, 2))
    sku = retail.sku("bag")
    await retail.price(sku, 2500)
    await retail.stock(store, sku, 4)
    await retail.routing_sees(sku, store, 4)
    shop = await retail.key("shop", channel="app")

    hold_until = datetime.now(UTC) + timedelta(seconds=4)
    order_id = await retail.place(
        shop,
        {sku: 3},
        {"method": "reserve", "store_id": store, "hold_until": hold_until.isoformat()},
    )
    held = await retail.until(shop, order_id, "reserved")
    assert held["fulfillments"][0]["status"] == "reserved"
    assert (await retail.available(sku, store))["available"] == 1

    expired = await retail.until(shop, order_id, "expired")
    assert expired["fulfillments"][0]["status"] == "expired"

    async def back() -> bool:
        return (await retail.available(sku, store))["available"] == 4

    await eventually(back)


async def test_delivery_ships_from_a_store_when_the_warehouse_lacks_stock(retail: Retail) -> None:
    customer = near(LISBON, -20)
    warehouse = await retail.location(
        "wh", "warehouse", near(customer, 3), capabilities=("ship",), priority=10
    )
    store = await retail.location("store", "store", near(customer, 40))
    sku = retail.sku("lamp")
    await retail.price(sku, 4999)
    await retail.stock(warehouse, sku, 0)
    await retail.stock(store, sku, 2)
    await retail.routing_sees(sku, store, 2)
    await retail.routing_sees(sku, warehouse, 0)
    shop = await retail.key("shop", channel="web")
    staff = await retail.key("store", store_id=store)

    order_id = await retail.place(
        shop, {sku: 1}, {"method": "delivery", "address": address(customer)}
    )
    order = await retail.until(shop, order_id, "confirmed")
    (fulfillment,) = order["fulfillments"]
    assert (fulfillment["location_id"], fulfillment["location_type"]) == (store, "store")

    routing = ok(await staff.get(f"/v1/orders/{order_id}/routing"))
    (attempt,) = routing["attempts"]
    candidates = {c["location_id"]: c for c in attempt["candidates"]}
    assert candidates[warehouse]["eligible"] is False
    assert [choice["location_id"] for choice in attempt["chosen"]] == [store]

    shipped = ok(
        await staff.post(
            f"/v1/fulfillments/{fulfillment['fulfillment_id']}/ship",
            json={"carrier": "CTT", "tracking_number": "LX123"},
        )
    )
    assert shipped["status"] == "shipped"
    await retail.until(shop, order_id, "completed")


async def test_a_delivery_is_split_when_no_single_location_has_everything(retail: Retail) -> None:
    customer = near(LISBON, -40)
    warehouse = await retail.location("wh", "warehouse", near(customer, 2), capabilities=("ship",))
    store = await retail.location("store", "store", near(customer, 10))
    tent, stove = retail.sku("tent"), retail.sku("stove")
    for sku in (tent, stove):
        await retail.price(sku, 8999)
    await retail.stock(warehouse, tent, 3)
    await retail.stock(store, stove, 3)
    await retail.routing_sees(tent, warehouse, 3)
    await retail.routing_sees(stove, store, 3)
    shop = await retail.key("shop", channel="web")

    order_id = await retail.place(
        shop, {tent: 1, stove: 1}, {"method": "delivery", "address": address(customer)}
    )
    order = await retail.until(shop, order_id, "confirmed")
    served = {
        f["location_id"]: {line["sku"]: line["quantity"] for line in f["lines"]}
        for f in order["fulfillments"]
    }
    assert served == {warehouse: {tent: 1}, store: {stove: 1}}


async def test_dropship_partner_accepts_and_ships_and_others_are_kept_out(retail: Retail) -> None:
    customer = near(LISBON, 30)
    partner_id, rival_id = retail.id("partner"), retail.id("rival")
    dropship = await retail.location(
        "dropship", "dropship", near(customer, 60), capabilities=("ship",), partner_id=partner_id
    )
    sku = retail.sku("kayak")
    await retail.price(sku, 59900)
    partner = await retail.key("partner", partner_id=partner_id)
    rival = await retail.key("partner", partner_id=rival_id)
    feed = ok(await partner.put("/v1/partner/stock", json={"items": [{"sku": sku, "on_hand": 2}], "sequence": 1}))  # fmt: skip
    assert feed["applied"] is True
    await retail.routing_sees(sku, dropship, 2)
    shop = await retail.key("shop", channel="web")

    order_id = await retail.place(
        shop, {sku: 1}, {"method": "delivery", "address": address(customer)}
    )
    order = await retail.until(shop, order_id, "confirmed")
    (fulfillment,) = order["fulfillments"]
    fulfillment_id = fulfillment["fulfillment_id"]
    assert (fulfillment["location_id"], fulfillment["partner_id"]) == (dropship, partner_id)

    mine = ok(await partner.get("/v1/partner/fulfillments"))
    assert [item["fulfillment_id"] for item in mine["items"]] == [fulfillment_id]
    assert ok(await rival.get("/v1/partner/fulfillments"))["items"] == []
    for step, body in (("accept", None), ("ship", {"carrier": "DHL", "tracking_number": "1"})):
        denied = await rival.post(f"/v1/partner/fulfillments/{fulfillment_id}/{step}", json=body)
        assert denied.status_code == 403, denied.text
        assert partner_id in denied.json()["detail"] or rival_id in denied.json()["detail"]

    accepted = ok(await partner.post(f"/v1/partner/fulfillments/{fulfillment_id}/accept"))
    assert accepted["status"] == "accepted"
    shipped = ok(
        await partner.post(
            f"/v1/partner/fulfillments/{fulfillment_id}/ship",
            json={"carrier": "DHL", "tracking_number": "JD0001"},
        )
    )
    assert (shipped["status"], shipped["tracking_number"]) == ("shipped", "JD0001")
    await retail.until(shop, order_id, "completed")

    stale = ok(await partner.put("/v1/partner/stock", json={"items": [{"sku": sku, "on_hand": 50}], "sequence": 0}))  # fmt: skip
    assert stale["applied"] is False


async def test_a_partner_reject_routes_the_order_again(retail: Retail) -> None:
    customer = near(LISBON, 50)
    partner_id = retail.id("partner")
    dropship = await retail.location(
        "dropship", "dropship", near(customer, 5), capabilities=("ship",), partner_id=partner_id
    )
    warehouse = await retail.location("wh", "warehouse", near(customer, 80), capabilities=("ship",))
    sku = retail.sku("sup")
    await retail.price(sku, 39900)
    await retail.stock(dropship, sku, 1)
    await retail.routing_sees(sku, dropship, 1)
    shop = await retail.key("shop", channel="web")
    partner = await retail.key("partner", partner_id=partner_id)

    order_id = await retail.place(
        shop, {sku: 1}, {"method": "delivery", "address": address(customer)}
    )
    first = (await retail.until(shop, order_id, "confirmed"))["fulfillments"][0]
    assert first["location_id"] == dropship
    await retail.stock(warehouse, sku, 4)
    await retail.routing_sees(sku, warehouse, 4)

    rejected = ok(
        await partner.post(
            f"/v1/partner/fulfillments/{first['fulfillment_id']}/reject",
            json={"reason": "out of stock at the supplier"},
        )
    )
    assert rejected["status"] == "rejected"

    async def rerouted() -> dict[str, str] | None:
        order = ok(await shop.get(f"/v1/orders/{order_id}"))
        statuses = {f["location_id"]: f["status"] for f in order["fulfillments"]}
        return statuses if statuses.get(warehouse) == "reserved" else None

    assert await eventually(rerouted, timeout=30) == {dropship: "rejected", warehouse: "reserved"}
    assert (await retail.until(shop, order_id, "confirmed"))["status"] == "confirmed"


async def test_a_store_reject_routes_the_order_again_and_releases_its_stock(
    retail: Retail,
) -> None:
    customer = near(LISBON, 70)
    near_store = await retail.location("near", "store", near(customer, 2))
    far_store = await retail.location("far", "store", near(customer, 30))
    sku = retail.sku("vase")
    await retail.price(sku, 2999)
    for store in (near_store, far_store):
        await retail.stock(store, sku, 2)
        await retail.routing_sees(sku, store, 2)
    shop = await retail.key("shop", channel="web")
    near_staff = await retail.key("store", store_id=near_store)
    far_staff = await retail.key("store", store_id=far_store)

    order_id = await retail.place(
        shop, {sku: 1}, {"method": "delivery", "address": address(customer)}
    )
    first = (await retail.until(shop, order_id, "confirmed"))["fulfillments"][0]
    assert first["location_id"] == near_store
    denied = await far_staff.post(
        f"/v1/fulfillments/{first['fulfillment_id']}/reject", json={"reason": "not mine"}
    )
    assert denied.status_code == 403, denied.text
    ok(
        await near_staff.post(
            f"/v1/fulfillments/{first['fulfillment_id']}/reject",
            json={"reason": "short pick: broken"},
        )
    )

    async def rerouted() -> bool:
        order = ok(await shop.get(f"/v1/orders/{order_id}"))
        statuses = {f["location_id"]: f["status"] for f in order["fulfillments"]}
        return statuses == {near_store: "rejected", far_store: "reserved"}

    await eventually(rerouted, timeout=30)

    async def released() -> bool:
        return (await retail.available(sku, near_store))["reserved"] == 0

    await eventually(released)


async def test_a_return_in_store_refunds_what_the_unit_cost_and_restocks_there(
    retail: Retail,
) -> None:
    store = await retail.location("store", "store", near(LISBON, -60))
    sku = retail.sku("sock")
    await retail.price(sku, 1000)
    ok(
        await retail.admin.post(
            "/v1/admin/promotions",
            json={
                "promotion_id": retail.id("3-for-2"),
                "name": "3 for 2",
                "kind": "buy_n_pay_m",
                "skus": [sku],
                "params": {"buy": 3, "pay": 2},
            },
        )
    )
    await retail.stock(store, sku, 10)
    await retail.routing_sees(sku, store, 10)
    shop = await retail.key("shop", channel="web")
    staff = await retail.key("store", store_id=store)

    quote = await retail.quote(shop, {sku: 3})
    assert (quote["total"]["amount"], quote["discount_total"]["amount"]) == (2000, 1000)
    order = ok(
        await shop.post(
            "/v1/orders", json=retail.order_body(quote, {"method": "pickup", "store_id": store})
        )
    )
    order_id = order["order_id"]
    fulfillment_id = (await retail.until(shop, order_id, "confirmed"))["fulfillments"][0][
        "fulfillment_id"
    ]
    ok(await staff.post(f"/v1/fulfillments/{fulfillment_id}/ready"))
    ok(await staff.post(f"/v1/fulfillments/{fulfillment_id}/handover"))
    completed = await retail.until(shop, order_id, "completed")
    assert completed["lines"][0]["unit_net_prices"] == [667, 667, 666]

    async def committed() -> bool:
        return (await retail.available(sku, store))["on_hand"] == 7

    await eventually(committed)

    returned = await staff.post(
        "/v1/returns",
        json={
            "order_id": order_id,
            "store_id": store,
            "lines": [{"sku": sku, "quantity": 1, "condition": "resellable"}],
            "reason": "one pair too many",
        },
    )
    assert returned.status_code == 201, returned.text
    refund = returned.json()
    assert refund["refund"] == {"amount": 667, "currency": "EUR"}
    assert [(line["sku"], line["refund"]["amount"]) for line in refund["lines"]] == [(sku, 667)]

    async def restocked() -> bool:
        return (await retail.available(sku, store))["on_hand"] == 8

    await eventually(restocked)
    after = ok(await shop.get(f"/v1/orders/{order_id}"))
    assert after["totals"]["refunded"]["amount"] == 667


async def test_the_same_cart_costs_the_same_for_web_app_and_store_keys(retail: Retail) -> None:
    store = await retail.location("store", "store", near(LISBON, 5))
    cup, plate = retail.sku("cup"), retail.sku("plate")
    await retail.price(cup, 450)
    await retail.price(plate, 1299)
    ok(
        await retail.admin.post(
            "/v1/admin/promotions",
            json={
                "promotion_id": retail.id("volume"),
                "name": "10% from 4, 20% from 8",
                "kind": "tiered",
                "skus": [cup],
                "params": {
                    "tiers": [
                        {"min_quantity": 4, "percent": 10},
                        {"min_quantity": 8, "percent": 20},
                    ]
                },
            },
        )
    )
    keys = [
        await retail.key("shop", channel="web"),
        await retail.key("shop", channel="app"),
        await retail.key("store", store_id=store),
    ]
    quotes = [await retail.quote(key, {cup: 9, plate: 2}) for key in keys]

    assert [quote["channel"] for quote in quotes] == ["web", "app", "store"]
    priced = {
        (
            tuple(
                (line["sku"], line["total"]["amount"], tuple(line["unit_net_prices"]))
                for line in q["lines"]
            ),
            q["subtotal"]["amount"],
            q["discount_total"]["amount"],
            q["total"]["amount"],
        )
        for q in quotes
    }
    assert len(priced) == 1
    (_, subtotal, discount, total) = priced.pop()
    assert (subtotal, discount, total) == (9 * 450 + 2 * 1299, 810, 9 * 450 + 2 * 1299 - 810)


async def test_many_concurrent_orders_for_the_last_units_never_oversell(retail: Retail) -> None:
    warehouse = await retail.location("wh", "warehouse", near(LISBON, -80), capabilities=("ship",))
    sku = retail.sku("last")
    await retail.price(sku, 999)
    await retail.stock(warehouse, sku, 5)
    await retail.routing_sees(sku, warehouse, 5)
    shop = await retail.key("shop", channel="web")
    fulfillment = {"method": "delivery", "address": address(near(LISBON, -81))}
    quotes = [await retail.quote(shop, {sku: 1}) for _ in range(12)]

    responses = await asyncio.gather(
        *(shop.post("/v1/orders", json=retail.order_body(q, fulfillment)) for q in quotes)
    )
    order_ids = [ok(response)["order_id"] for response in responses]
    finals = [
        (await retail.until(shop, order_id, "confirmed", "rejected"))["status"]
        for order_id in order_ids
    ]
    assert finals.count("confirmed") == 5
    assert finals.count("rejected") == 7
    level = await retail.available(sku, warehouse)
    assert (level["on_hand"], level["reserved"], level["available"]) == (5, 5, 0)
