"""The order saga end to end, with only Kafka between orders and inventory."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from services.contracts.inventory import (
    AvailabilityChanged,
    LocationType,
    RejectionReason,
    StockLine,
    StockReservationRejected,
    StockReserved,
)
from services.infrastructure.database import create_engine
from services.orders.settings import OrdersSettings
from tests.integration.inventory.conftest import assert_ledger_reconciles
from tests.support.kafka import Producer, eventually
from tests.support.network import Network

pytestmark = pytest.mark.integration


async def test_delivery_from_the_warehouse(network: Network) -> None:
    sku = network.id("TEE")
    await network.price(sku, 2000)
    await network.stock(network.warehouse, sku, 10)
    await network.stock(network.store_ams, sku, 10)
    await network.sees(sku, network.warehouse, 10)

    order_id = await network.place({sku: 2}, network.deliver())
    order = await network.until(order_id, "confirmed")
    (fulfillment,) = order["fulfillments"]
    assert (fulfillment["location_id"], fulfillment["status"]) == (network.warehouse, "reserved")
    assert order["totals"]["total"] == {"amount": 4000, "currency": "EUR"}
    assert (await network.level(network.warehouse, sku))["reserved"] == 2

    shipped = await network.act(
        fulfillment["fulfillment_id"], "ship", {"carrier": "PostNL", "tracking_number": "3S123"}
    )
    assert shipped["status"] == "shipped"
    await network.until(order_id, "completed")

    async def committed() -> bool:
        level = await network.level(network.warehouse, sku)
        return (level["on_hand"], level["reserved"]) == (8, 0)

    await eventually(committed)
    routing = (await network.orders.get(f"/orders/{order_id}/routing")).json()
    (attempt,) = routing["attempts"]
    assert attempt["chosen"][0]["location_id"] == network.warehouse
    assert {c["location_id"] for c in attempt["candidates"]} >= {
        network.warehouse,
        network.store_ams,
        network.store_utr,
        network.partner_location,
    }
    assert attempt["explanation"]


async def test_click_and_collect(network: Network) -> None:
    sku = network.id("CAP")
    await network.price(sku, 1500)
    await network.stock(network.store_utr, sku, 3)
    await network.sees(sku, network.store_utr, 3)

    order_id = await network.place({sku: 1}, network.collect(network.store_utr))
    order = await network.until(order_id, "confirmed")
    (fulfillment,) = order["fulfillments"]
    assert fulfillment["location_id"] == network.store_utr
    assert fulfillment["method"] == "pickup"

    queue = (
        await network.orders.get(
            f"/stores/{network.store_utr}/fulfillments", params={"status": "reserved"}
        )
    ).json()
    assert [f["fulfillment_id"] for f in queue["items"]] == [fulfillment["fulfillment_id"]]

    assert (await network.act(fulfillment["fulfillment_id"], "ready"))[
        "status"
    ] == "ready_for_pickup"
    assert (await network.act(fulfillment["fulfillment_id"], "handover"))["status"] == "picked_up"
    await network.until(order_id, "completed")
    repeated = await network.orders.post(f"/fulfillments/{fulfillment['fulfillment_id']}/handover")
    assert repeated.status_code == 200  # a retried step changes nothing
    assert repeated.json()["status"] == "picked_up"
    refused = await network.orders.post(f"/fulfillments/{fulfillment['fulfillment_id']}/ready")
    assert refused.status_code == 409
    assert "picked_up" in refused.json()["detail"]


async def test_click_and_reserve_collected_in_time(network: Network) -> None:
    sku = network.id("COAT")
    await network.price(sku, 12900)
    await network.stock(network.store_utr, sku, 2)
    await network.sees(sku, network.store_utr, 2)

    hold = datetime.now(UTC) + timedelta(hours=24)
    order_id = await network.place({sku: 1}, network.hold(hold, network.store_utr))
    order = await network.until(order_id, "reserved")
    (fulfillment,) = order["fulfillments"]
    assert fulfillment["method"] == "reserve"
    assert datetime.fromisoformat(fulfillment["hold_until"]) == hold.replace(
        microsecond=hold.microsecond
    )
    await network.act(fulfillment["fulfillment_id"], "ready")
    await network.act(fulfillment["fulfillment_id"], "handover")  # paid in store and taken home
    await network.until(order_id, "completed")

    async def committed() -> bool:
        level = await network.level(network.store_utr, sku)
        return (level["on_hand"], level["reserved"]) == (1, 0)

    await eventually(committed)


async def test_click_and_reserve_expires_and_the_stock_returns(network: Network) -> None:
    sku = network.id("BOOT")
    await network.price(sku, 9000)
    await network.stock(network.store_ams, sku, 1)
    await network.sees(sku, network.store_ams, 1)

    order_id = await network.place({sku: 1}, network.hold(datetime.now(UTC) + timedelta(seconds=2)))
    await network.until(order_id, "reserved")
    assert (await network.level(network.store_ams, sku))["available"] == 0

    expired = await network.until(order_id, "expired", timeout=20)
    assert expired["fulfillments"][0]["status"] == "expired"
    assert (await network.level(network.store_ams, sku))["available"] == 1


async def test_a_rejected_reservation_routes_again(network: Network, producer: Producer) -> None:
    sku = network.id("JEANS")
    await network.price(sku, 6000)
    await network.stock(network.warehouse, sku, 0)
    await network.stock(network.store_ams, sku, 2)
    await network.sees(sku, network.store_ams, 2)
    # Orders' view of the warehouse goes stale: it believes 5 are there, inventory has none.
    await producer.send_event(
        AvailabilityChanged(
            sku=sku,
            location_id=network.warehouse,
            location_type=LocationType.WAREHOUSE,
            on_hand=5,
            reserved=0,
            safety_stock=0,
            available=5,
            version=10**6,
            changed_at=datetime.now(UTC),
        )
    )
    await network.sees(sku, network.warehouse, 5)

    order_id = await network.place({sku: 2}, network.deliver())
    order = await network.until(order_id, "confirmed")
    statuses = {(f["location_id"], f["status"]) for f in order["fulfillments"]}
    assert statuses == {(network.warehouse, "rejected"), (network.store_ams, "reserved")}

    attempts = (await network.orders.get(f"/orders/{order_id}/routing")).json()["attempts"]
    assert [a["chosen"][0]["location_id"] for a in attempts] == [
        network.warehouse,
        network.store_ams,
    ]
    assert attempts[1]["trigger"].startswith(f"reservation rejected at {network.warehouse}")
    assert attempts[1]["excluded"] == [network.warehouse]


async def test_ship_from_store_when_the_warehouse_lacks_stock(network: Network) -> None:
    sku = network.id("HOODIE")
    await network.price(sku, 5000)
    await network.stock(network.store_utr, sku, 4)
    await network.sees(sku, network.store_utr, 4)

    order_id = await network.place({sku: 1}, network.deliver())
    order = await network.until(order_id, "confirmed")
    (fulfillment,) = order["fulfillments"]
    assert (fulfillment["location_id"], fulfillment["location_type"]) == (
        network.store_utr,
        "store",
    )
    assert fulfillment["method"] == "delivery"


async def test_a_split_delivery(network: Network) -> None:
    tee, mug = network.id("TEE"), network.id("MUG")
    for sku in (tee, mug):
        await network.price(sku, 1000)
    await network.stock(network.warehouse, tee, 5)
    await network.stock(network.store_ams, mug, 5)
    await network.sees(mug, network.store_ams, 5)
    await network.sees(tee, network.warehouse, 5)

    order_id = await network.place({tee: 2, mug: 1}, network.deliver())
    order = await network.until(order_id, "confirmed")
    plan = {f["location_id"]: f["lines"] for f in order["fulfillments"]}
    assert plan == {
        network.warehouse: [{"sku": tee, "quantity": 2}],
        network.store_ams: [{"sku": mug, "quantity": 1}],
    }


async def test_dropship_accept_ship_and_a_partner_reject_routes_again(network: Network) -> None:
    kayak = network.id("KAYAK")
    await network.price(kayak, 49900)
    await network.stock(network.partner_location, kayak, 2)
    await network.sees(kayak, network.partner_location, 2)

    shipped_order = await network.place({kayak: 1}, network.deliver())
    order = await network.until(shipped_order, "confirmed")
    (fulfillment,) = order["fulfillments"]
    assert fulfillment["location_type"] == "dropship"
    queue = (await network.orders.get(f"/partners/{network.partner}/fulfillments")).json()
    assert fulfillment["fulfillment_id"] in [f["fulfillment_id"] for f in queue["items"]]
    assert (await network.act(fulfillment["fulfillment_id"], "accept"))["status"] == "accepted"
    await network.act(
        fulfillment["fulfillment_id"], "ship", {"carrier": "DHL", "tracking_number": "JD01"}
    )
    await network.until(shipped_order, "completed")

    # The partner refuses the next one; meanwhile a store has received one.
    refused_order = await network.place({kayak: 1}, network.deliver())
    order = await network.until(refused_order, "confirmed")
    (first,) = order["fulfillments"]
    assert first["location_id"] == network.partner_location
    await network.stock(network.store_utr, kayak, 1)
    await network.sees(kayak, network.store_utr, 1)
    await network.act(first["fulfillment_id"], "reject", {"reason": "damaged in our warehouse"})
    order = await network.settled(refused_order)
    live = [f for f in order["fulfillments"] if f["status"] == "reserved"]
    assert [f["location_id"] for f in live] == [network.store_utr]


async def test_a_short_pick_at_the_pickup_store_transfers_from_the_warehouse(
    network: Network,
) -> None:
    sku = network.id("SCARF")
    await network.price(sku, 3000)
    await network.stock(network.store_ams, sku, 1)
    await network.stock(network.warehouse, sku, 3)
    await network.sees(sku, network.warehouse, 3)
    await network.sees(sku, network.store_ams, 1)

    order_id = await network.place({sku: 1}, network.collect(network.store_ams))
    order = await network.until(order_id, "confirmed")
    (first,) = order["fulfillments"]
    await network.act(first["fulfillment_id"], "reject", {"reason": "not on the shelf"})

    order = await network.settled(order_id)
    assert order["status"] == "confirmed"
    transfer = next(f for f in order["fulfillments"] if f["status"] == "reserved")
    assert transfer["location_id"] == network.warehouse
    assert (transfer["pickup_store_id"], transfer["transfer"]) == (network.store_ams, True)
    queue = (
        await network.orders.get(
            f"/stores/{network.store_ams}/fulfillments", params={"status": "reserved"}
        )
    ).json()
    assert transfer["fulfillment_id"] in [f["fulfillment_id"] for f in queue["items"]]

    async def released() -> bool:
        return (await network.level(network.store_ams, sku))["reserved"] == 0

    await eventually(released)


async def test_cancel_releases_the_stock(network: Network) -> None:
    sku = network.id("BOTTLE")
    await network.price(sku, 2500)
    await network.stock(network.warehouse, sku, 3)
    await network.sees(sku, network.warehouse, 3)

    order_id = await network.place({sku: 3}, network.deliver())
    await network.until(order_id, "confirmed")
    assert (await network.level(network.warehouse, sku))["available"] == 0
    cancelled = await network.orders.post(
        f"/orders/{order_id}/cancel", json={"reason": "changed my mind"}
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"

    async def back() -> bool:
        return (await network.level(network.warehouse, sku))["available"] == 3

    await eventually(back)
    again = await network.orders.post(f"/orders/{order_id}/cancel")
    assert again.status_code == 200  # cancelling twice is harmless
    (fulfillment,) = (await network.order(order_id))["fulfillments"]
    refused = await network.orders.post(
        f"/fulfillments/{fulfillment['fulfillment_id']}/ship",
        json={"carrier": "x", "tracking_number": "y"},
    )
    assert refused.status_code == 409


async def test_returning_one_unit_of_a_three_for_two(network: Network) -> None:
    tee = network.id("TEE3")
    await network.price(tee, 1999)
    response = await network.pricing.post(
        "/promotions",
        json={
            "promotion_id": network.id("3for2"),
            "name": "3 for 2",
            "kind": "buy_n_pay_m",
            "skus": [tee],
            "params": {"buy": 3, "pay": 2},
        },
    )
    assert response.status_code == 200
    await network.stock(network.store_ams, tee, 5)
    await network.sees(tee, network.store_ams, 5)

    order_id = await network.place({tee: 3}, network.collect())
    order = await network.until(order_id, "confirmed")
    assert order["totals"]["total"]["amount"] == 3998
    (line,) = order["lines"]
    assert line["unit_net_prices"] == [1333, 1333, 1332]
    (fulfillment,) = order["fulfillments"]
    await network.act(fulfillment["fulfillment_id"], "ready")
    await network.act(fulfillment["fulfillment_id"], "handover")
    await network.until(order_id, "completed")

    async def committed() -> bool:
        return (await network.level(network.store_ams, tee))["on_hand"] == 2

    await eventually(committed)
    body = {
        "order_id": order_id,
        "store_id": network.store_ams,
        "reason": "too big",
        "lines": [{"sku": tee, "quantity": 1, "condition": "resellable"}],
    }
    first = await network.orders.post(
        "/returns", json=body, headers={"Idempotency-Key": network.id("ret")}
    )
    assert first.status_code == 201, first.text
    assert first.json()["refund"] == {"amount": 1333, "currency": "EUR"}
    replay = await network.orders.post(
        "/returns", json=body, headers={"Idempotency-Key": network.id("ret")}
    )
    assert replay.json() == first.json()

    async def restocked() -> bool:
        return (await network.level(network.store_ams, tee))["on_hand"] == 3

    await eventually(restocked)
    rest = await network.orders.post(
        "/returns",
        json={**body, "lines": [{"sku": tee, "quantity": 2, "condition": "damaged"}]},
    )
    assert rest.json()["refund"]["amount"] == 1333 + 1332  # all three together: exactly 3998
    too_many = await network.orders.post("/returns", json=body)
    assert too_many.status_code == 422
    assert "already returned" in too_many.json()["detail"]
    order = await network.order(order_id)
    assert order["totals"]["refunded"]["amount"] == 3998
    assert (await network.level(network.store_ams, tee))["on_hand"] == 3  # damaged units stay out


async def test_an_uncollected_order_expires_after_the_pickup_window(network: Network) -> None:
    sku = network.id("SOCK")
    await network.price(sku, 900)
    await network.stock(network.store_ams, sku, 2)
    await network.sees(sku, network.store_ams, 2)

    order_id = await network.place({sku: 2}, network.collect())
    (fulfillment,) = (await network.until(order_id, "confirmed"))["fulfillments"]
    await network.act(fulfillment["fulfillment_id"], "ready")  # the test window is 3 seconds
    expired = await network.until(order_id, "expired", timeout=20)
    assert expired["status_reason"] == "not collected within the pickup window"

    async def back() -> bool:
        return (await network.level(network.store_ams, sku))["available"] == 2

    await eventually(back)


async def test_concurrent_orders_for_the_last_units(network: Network) -> None:
    sku = network.id("LAST")
    await network.price(sku, 1000)
    await network.stock(network.warehouse, sku, 3)
    await network.stock(network.store_ams, sku, 2)
    await network.sees(sku, network.store_ams, 2)
    await network.sees(sku, network.warehouse, 3)

    quotes = [await network.quote({sku: 1}) for _ in range(12)]
    responses = await asyncio.gather(
        *(
            network.orders.post("/orders", json=network.order_body(q, network.deliver()))
            for q in quotes
        )
    )
    assert all(r.status_code == 202 for r in responses)
    order_ids = [r.json()["order_id"] for r in responses]
    final = [await network.until(o, "confirmed", "rejected", timeout=40) for o in order_ids]
    # Routing may have aimed several orders at the same last unit; inventory's conditional
    # reservation lets exactly as many through as there are units, the rest route again or fail.
    settled = [await network.settled(o["order_id"]) for o in final]
    assert sorted(o["status"] for o in settled) == ["confirmed"] * 5 + ["rejected"] * 7
    for location in (network.warehouse, network.store_ams):
        level = await network.level(location, sku)
        assert level["available"] == 0
        assert 0 <= level["reserved"] <= level["on_hand"]
    await assert_ledger_reconciles(network.inventory)


async def test_intake_refuses_what_was_not_quoted(network: Network) -> None:
    sku, other = network.id("A"), network.id("B")
    await network.price(sku, 1000)
    await network.price(other, 500)
    await network.stock(network.warehouse, sku, 10)
    await network.sees(sku, network.warehouse, 10)
    quote = await network.quote({sku: 2})
    body = network.order_body(quote, network.deliver())

    more = {**body, "lines": [{"sku": sku, "quantity": 3}]}
    refused = await network.orders.post("/orders", json=more)
    assert refused.status_code == 422
    assert f"{sku}: ordered 3, quoted 2" in refused.json()["detail"]

    header, payload, signature = quote["quote_token"].split(".")
    forged = {**body, "quote_token": f"{header}.{payload}x.{signature}"}
    assert (await network.orders.post("/orders", json=forged)).status_code == 422

    key = {"Idempotency-Key": network.id("key")}
    first = await network.orders.post("/orders", json=body, headers=key)
    again = await network.orders.post("/orders", json=body, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json()["order_id"] == again.json()["order_id"]
    changed = await network.orders.post(
        "/orders", json={**body, "customer": {"id": "x", "email": "x@example.com"}}, headers=key
    )
    assert changed.status_code == 422
    assert "Idempotency-Key" in changed.json()["detail"]
    reused = await network.orders.post("/orders", json=body)
    assert reused.status_code == 409
    assert "already used" in reused.json()["detail"]

    bad = [
        ({**body, "fulfillment": {"method": "delivery"}}, "address"),
        ({**body, "fulfillment": {"method": "pickup"}}, "store_id"),
        (
            {**body, "fulfillment": {"method": "reserve", "store_id": network.store_ams}},
            "hold_until",
        ),
        ({**body, "lines": [{"sku": sku, "quantity": -1}]}, "greater than 0"),
        ({**body, "gift": True}, "gift"),
    ]
    for payload_, fragment in bad:
        response = await network.orders.post("/orders", json=payload_)
        assert response.status_code == 422, payload_
        assert fragment in response.json()["detail"]


async def test_duplicated_and_reordered_events_have_no_second_effect(
    network: Network, producer: Producer, orders_settings: OrdersSettings
) -> None:
    sku = network.id("DUP")
    await network.price(sku, 700)
    await network.stock(network.warehouse, sku, 5)
    await network.sees(sku, network.warehouse, 5)
    order_id = await network.place({sku: 1}, network.deliver())
    order = await network.until(order_id, "confirmed")
    (fulfillment,) = order["fulfillments"]
    fid = fulfillment["fulfillment_id"]

    reserved = StockReserved(
        order_id=order_id,
        fulfillment_id=fid,
        reservation_id=fid,
        location_id=network.warehouse,
        lines=(StockLine(sku=sku, quantity=1),),
    )
    rejected = StockReservationRejected(
        order_id=order_id,
        fulfillment_id=fid,
        reservation_id=fid,
        location_id=network.warehouse,
        reason=RejectionReason.INSUFFICIENT_STOCK,
        detail="late and out of order",
    )
    # A redelivered answer, a late contradicting one, and one for a reservation nobody made.
    sent = [
        await producer.send_event(reserved),
        await producer.send_event(rejected),
        await producer.send_event(reserved.model_copy(update={"reservation_id": f"{fid}-ghost"})),
        # An answer about an order this service never placed: skipped at once, not retried.
        await producer.send_event(reserved.model_copy(update={"order_id": network.id("stranger")})),
    ]
    engine = create_engine(orders_settings.database_url)

    async def consumed() -> bool:
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM inbox WHERE event_id = ANY(:ids)"), {"ids": sent}
            )
        return found == len(sent)

    await eventually(consumed)
    async with engine.connect() as conn:
        parked = await conn.scalar(text("SELECT count(*) FROM dead_letters"))
    await engine.dispose()
    assert parked == 0
    # An availability version older than the projection's; the marker order's reservation then
    # changes the same level (same key, same partition), so once the projection shows the
    # marker's effect it has read past the stale version too.
    await producer.send_event(
        AvailabilityChanged(
            sku=sku,
            location_id=network.warehouse,
            location_type=LocationType.WAREHOUSE,
            on_hand=0,
            reserved=0,
            safety_stock=0,
            available=0,
            version=1,
            changed_at=datetime.now(UTC),
        )
    )
    marker = await network.place({sku: 1}, network.deliver())
    await network.until(marker, "confirmed")

    order = await network.order(order_id)
    assert order["status"] == "confirmed"
    assert [f["status"] for f in order["fulfillments"]] == ["reserved"]
    assert len((await network.orders.get(f"/orders/{order_id}/routing")).json()["attempts"]) == 1
    await network.sees(sku, network.warehouse, 3)  # the stale version 1 did not win
