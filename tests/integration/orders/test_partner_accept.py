"""A partner that does not accept a dropship fulfillment in time loses it: withdrawn, its stock
released, FulfillmentCancelled published with the partner, and the lines routed elsewhere.

The session's orders app keeps the default window (60 minutes), so the partner flows of other
tests are never cut short; here the sweep runs as the app's job runs it, on the app's database
and outbox, with a window of one second."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

import pytest
from fastapi import FastAPI

from services.orders import handlers
from services.orders.repository import OrdersUnitOfWork
from tests.support.kafka import TopicWatcher, eventually, of_type
from tests.support.network import Network

pytestmark = pytest.mark.integration

WINDOW = timedelta(seconds=1)


def sweep(orders_app: FastAPI) -> Callable[[], Any]:
    """The partner-accept sweep of the running app, with a window of one second."""
    unit_of_work = cast(Callable[[], OrdersUnitOfWork], orders_app.state.runtime.unit_of_work)
    policy = replace(orders_app.state.policy, partner_accept_window=WINDOW)
    return lambda: handlers.withdraw_unaccepted_fulfillments(unit_of_work, policy)


async def partner_order(network: Network, sku: str) -> tuple[str, dict[str, Any]]:
    """A delivery only the partner can serve, reserved there and waiting for its accept."""
    order_id = await network.place({sku: 1}, network.deliver())
    (fulfillment,) = (await network.until(order_id, "confirmed"))["fulfillments"]
    assert (fulfillment["location_id"], fulfillment["partner_id"]) == (
        network.partner_location,
        network.partner,
    )
    return order_id, fulfillment


async def test_an_unaccepted_partner_fulfillment_is_withdrawn_and_routed_elsewhere(
    network: Network, orders_app: FastAPI, order_events: TopicWatcher
) -> None:
    kayak = network.id("KAYAK")
    await network.price(kayak, 49900)
    await network.stock(network.partner_location, kayak, 3)
    await network.sees(kayak, network.partner_location, 3)
    order_id, first = await partner_order(network, kayak)
    fid = first["fulfillment_id"]
    await order_events.wait_for(
        of_type("fulfillment_assigned", fulfillment_id=fid, partner_id=network.partner)
    )
    # Meanwhile a store received one: the re-route finds it.
    await network.stock(network.store_utr, kayak, 1)
    await network.sees(kayak, network.store_utr, 1)

    await asyncio.sleep(WINDOW.total_seconds() + 0.2)
    assert await sweep(orders_app)() >= 1

    order = await network.settled(order_id)
    assert order["status"] == "confirmed"
    withdrawn, rerouted = order["fulfillments"]
    assert (withdrawn["fulfillment_id"], withdrawn["status"]) == (fid, "cancelled")
    assert withdrawn["status_reason"] == "withdrawn: not accepted within 1 second"
    assert (rerouted["location_id"], rerouted["status"]) == (network.store_utr, "reserved")
    (cancelled,) = await order_events.wait_for(of_type("fulfillment_cancelled", fulfillment_id=fid))
    assert cancelled["data"] == {
        "order_id": order_id,
        "fulfillment_id": fid,
        "location_id": network.partner_location,
        "partner_id": network.partner,
        "reason": withdrawn["status_reason"],
    }
    attempts = (await network.orders.get(f"/orders/{order_id}/routing")).json()["attempts"]
    assert attempts[-1]["trigger"] == (
        f"not accepted at {network.partner_location} within 1 second"
    )
    assert attempts[-1]["excluded"] == [network.partner_location]

    async def released() -> bool:
        return (await network.level(network.partner_location, kayak))["reserved"] == 0

    await eventually(released)
    late = await network.orders.post(f"/fulfillments/{fid}/accept")
    assert late.status_code == 409


async def test_with_nowhere_else_to_go_the_order_is_rejected(
    network: Network, orders_app: FastAPI, order_events: TopicWatcher
) -> None:
    canoe = network.id("CANOE")
    await network.price(canoe, 89900)
    await network.stock(network.partner_location, canoe, 1)
    await network.sees(canoe, network.partner_location, 1)
    order_id, fulfillment = await partner_order(network, canoe)

    await asyncio.sleep(WINDOW.total_seconds() + 0.2)
    await sweep(orders_app)()

    order = await network.until(order_id, "rejected")
    assert [f["status"] for f in order["fulfillments"]] == ["cancelled"]
    # Published in the order they were recorded (one key, one partition): the rejection last.
    await order_events.wait_for(of_type("order_rejected", order_id=order_id))
    cancelled = order_events.matching(
        of_type(
            "fulfillment_cancelled",
            fulfillment_id=fulfillment["fulfillment_id"],
            partner_id=network.partner,
        )
    )
    assert len(cancelled) == 1  # withdrawn once; the rejection had nothing left to cancel


async def test_an_accept_racing_the_sweep_is_either_kept_or_refused(
    network: Network, orders_app: FastAPI
) -> None:
    paddle = network.id("PADDLE")
    await network.price(paddle, 2900)
    await network.stock(network.partner_location, paddle, 4)
    await network.sees(paddle, network.partner_location, 4)
    accepted_id, accepted = await partner_order(network, paddle)
    await network.act(accepted["fulfillment_id"], "accept")
    racing_id, racing = await partner_order(network, paddle)

    await asyncio.sleep(WINDOW.total_seconds() + 0.2)
    accept, _ = await asyncio.gather(
        network.orders.post(f"/fulfillments/{racing['fulfillment_id']}/accept"),
        sweep(orders_app)(),
    )

    kept = (await network.order(accepted_id))["fulfillments"]
    assert [f["status"] for f in kept] == ["accepted"]  # accepted in time: never withdrawn
    first = (await network.order(racing_id))["fulfillments"][0]
    if accept.status_code == 200:
        assert first["status"] == "accepted"
    else:
        assert accept.status_code == 409
        assert first["status"] == "cancelled"
