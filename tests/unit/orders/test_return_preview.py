"""A return's preview: the refund the return would give, by the same rule and with the same
refusals, and nothing stored or sent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.contracts.inventory import StockReserved
from services.contracts.orders import PlaceOrder, ReturnIn
from services.infrastructure.errors import Conflict, InvalidRequest, NotFound
from services.orders import handlers, routing
from services.orders.handlers.common import Policy
from services.orders.handlers.returns import preview_return
from tests.unit.orders.fakes import (
    KEYS,
    FakeInventory,
    FakeNetwork,
    FakeOrderRepository,
    FakeOrdersUnitOfWork,
    FakeSite,
    quote_token,
)


@pytest.fixture
def policy() -> Policy:
    return Policy(
        keys=KEYS,
        rules=routing.RoutingRules(),
        max_attempts=4,
        pickup_window=timedelta(hours=72),
        stock=FakeInventory(),
    )


@pytest.fixture
def uow() -> FakeOrdersUnitOfWork:
    network = FakeNetwork(
        [
            FakeSite("store-ams", "store", 52.37, 4.89, priority=50),
            FakeSite("wh", "warehouse", 52.30, 4.80, ("ship",), priority=10),
        ]
    )
    return FakeOrdersUnitOfWork(FakeOrderRepository(), network)


def order_body(lines: dict[str, tuple[int, int]], fulfillment: dict[str, str]) -> PlaceOrder:
    return PlaceOrder.model_validate(
        {
            "quote_token": quote_token(lines),
            "customer": {"id": "c1", "email": "ada@example.com"},
            "fulfillment": fulfillment,
            "lines": [{"sku": sku, "quantity": q} for sku, (q, _) in lines.items()],
        }
    )


async def collected(uow: FakeOrdersUnitOfWork, policy: Policy, units: int) -> str:
    """An order of `units` tees at 19.99, collected at store-ams (so it can be returned)."""
    uow.network.available["TEE", "store-ams"] = units
    body = order_body({"TEE": (units, 1999)}, {"method": "pickup", "store_id": "store-ams"})
    async with uow:
        order_id = (await handlers.place_order(body, None, uow, policy)).order_id
    (f,) = uow.orders.stored[order_id].fulfillments
    async with uow:
        held = StockReserved(
            order_id=order_id,
            fulfillment_id=f.fulfillment_id,
            reservation_id=f.fulfillment_id,
            location_id=f.location_id,
            lines=(),
        )
        await handlers.on_stock_reserved(held, uow)
        await uow.commit()
    async with uow:
        await handlers.hand_over(f.fulfillment_id, uow)
    return order_id


def return_of(order_id: str, quantity: int, store_id: str = "store-ams") -> ReturnIn:
    return ReturnIn.model_validate(
        {
            "order_id": order_id,
            "store_id": store_id,
            "lines": [{"sku": "TEE", "quantity": quantity, "condition": "resellable"}],
            "reason": "too small",
        }
    )


async def test_the_preview_is_the_refund_of_the_return_and_changes_nothing(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    order_id = await collected(uow, policy, 3)
    commits, published = uow.commits, len(uow.published)

    async with uow:
        preview = await preview_return(return_of(order_id, 2), uow)

    assert (preview.order_id, preview.store_id) == (order_id, "store-ams")
    assert preview.refund.amount == 2 * 1999
    assert [(line.sku, line.quantity, line.refund.amount) for line in preview.lines] == [
        ("TEE", 2, 2 * 1999)
    ]
    assert (uow.commits, len(uow.published)) == (commits, published)
    stored = uow.orders.stored[order_id]
    assert (stored.lines["TEE"].returned_quantity, stored.refunded) == (0, 0)
    assert uow.returns.rows == {}

    async with uow:
        taken = await handlers.accept_return(return_of(order_id, 2), None, uow)
    assert (taken.refund, taken.lines) == (preview.refund, preview.lines)


async def test_the_preview_refuses_what_the_return_refuses(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    order_id = await collected(uow, policy, 1)
    refusals = [
        (return_of("ord-nowhere", 1), NotFound),
        (return_of(order_id, 2), InvalidRequest),  # more than was bought
        (return_of(order_id, 1, store_id="wh"), InvalidRequest),  # takes no returns
    ]
    for body, problem in refusals:
        with pytest.raises(problem) as previewed:
            async with uow:
                await preview_return(body, uow)
        with pytest.raises(problem) as returned:
            async with uow:
                await handlers.accept_return(body, None, uow)
        assert str(previewed.value) == str(returned.value)

    pending = {"TEE": (1, 1999)}
    async with uow:
        placed = await handlers.place_order(
            order_body(pending, {"method": "pickup", "store_id": "store-ams"}), None, uow, policy
        )
    with pytest.raises(Conflict, match="only a collected or delivered order can be returned"):
        async with uow:
            await preview_return(return_of(placed.order_id, 1), uow)
