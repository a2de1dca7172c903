"""A return's preview at the counter, against the real database: it answers exactly what the
return that follows refunds, refuses what that return would refuse, and leaves no trace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.infrastructure.database import create_engine
from services.orders.settings import OrdersSettings
from tests.support.network import Network

pytestmark = pytest.mark.integration


@pytest.fixture
async def orders_database(orders_settings: OrdersSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(orders_settings.database_url)
    yield engine
    await engine.dispose()


async def traces(engine: AsyncEngine, order_id: str) -> tuple[int, int, int]:
    """The order's returns, its messages in the outbox, and what it refunded."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM returns WHERE order_id = :id),"
                    " (SELECT count(*) FROM outbox WHERE message_key = :id),"
                    " (SELECT refunded FROM orders WHERE order_id = :id)"
                ),
                {"id": order_id},
            )
        ).one()
    return row[0], row[1], row[2]


async def three_for_two(network: Network) -> tuple[str, str]:
    """A "3 for 2" of tees collected at the Amsterdam store: the units cost 1333, 1333, 1332."""
    tee = network.id("TEE3P")
    await network.price(tee, 1999)
    response = await network.pricing.post(
        "/promotions",
        json={
            "promotion_id": network.id("3for2p"),
            "name": "3 for 2",
            "kind": "buy_n_pay_m",
            "skus": [tee],
            "params": {"buy": 3, "pay": 2},
        },
    )
    assert response.status_code == 200, response.text
    await network.stock(network.store_ams, tee, 5)
    await network.sees(tee, network.store_ams, 5)
    order_id = await network.place({tee: 3}, network.collect())
    order = await network.until(order_id, "confirmed")
    (fulfillment,) = order["fulfillments"]
    await network.act(fulfillment["fulfillment_id"], "ready")
    await network.act(fulfillment["fulfillment_id"], "handover")
    await network.until(order_id, "completed")
    return order_id, tee


def a_return(order_id: str, store_id: str, *lines: tuple[str, int, str]) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "store_id": store_id,
        "reason": "changed their mind",
        "lines": [{"sku": s, "quantity": q, "condition": c} for s, q, c in lines],
    }


async def test_the_preview_is_what_the_return_then_refunds_and_stores_nothing(
    network: Network, orders_database: AsyncEngine
) -> None:
    order_id, tee = await three_for_two(network)
    before = await traces(orders_database, order_id)
    body = a_return(order_id, network.store_ams, (tee, 1, "resellable"), (tee, 1, "damaged"))

    previews = [await network.orders.post("/return-previews", json=body) for _ in range(2)]
    for preview in previews:
        assert preview.status_code == 200, preview.text
    assert previews[0].json() == previews[1].json()  # the first changed nothing
    assert await traces(orders_database, order_id) == before
    shown = previews[0].json()
    assert shown["refund"] == {"amount": 1333 + 1333, "currency": "EUR"}

    taken = await network.orders.post("/returns", json=body)
    assert taken.status_code == 201, taken.text
    returned = taken.json()
    assert {key: returned[key] for key in shown} == shown
    assert await traces(orders_database, order_id) != before

    # What is left to give back, previewed after the first return: the last unit, at 1332.
    rest = a_return(order_id, network.store_ams, (tee, 1, "resellable"))
    last = await network.orders.post("/return-previews", json=rest)
    assert last.json()["refund"]["amount"] == 1332
    assert (await network.orders.post("/returns", json=rest)).json()["refund"]["amount"] == 1332


async def test_the_preview_refuses_what_the_return_would_refuse(network: Network) -> None:
    order_id, tee = await three_for_two(network)
    pending_id = await network.place({tee: 1}, network.collect())
    cases = [
        (a_return("ord-nowhere", network.store_ams, (tee, 1, "resellable")), 404),
        (a_return(pending_id, network.store_ams, (tee, 1, "resellable")), 409),
        (a_return(order_id, network.store_ams, (tee, 4, "resellable")), 422),
        (a_return(order_id, network.store_ams, ("NOT-BOUGHT", 1, "resellable")), 422),
        (a_return(order_id, network.partner_location, (tee, 1, "resellable")), 422),
    ]
    for body, status in cases:
        previewed = await network.orders.post("/return-previews", json=body)
        returned = await network.orders.post("/returns", json=body)
        assert (previewed.status_code, returned.status_code) == (status, status), body
        assert previewed.headers["content-type"] == "application/problem+json"
        assert previewed.json()["detail"] == returned.json()["detail"]
