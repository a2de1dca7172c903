"""Orders' use cases against in-memory fakes (tests/unit/orders/fakes.py): load, call the
aggregate, save, and the messages that leave with the commit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.contracts.inventory import (
    CommitStock,
    PromiseStock,
    ReleaseStock,
    ReserveStock,
    RestockReturn,
    StockCorrection,
    StockLine,
    StockPromised,
    StockPromiseRejected,
    StockReservationRejected,
    StockReserved,
)
from services.contracts.orders import (
    CancelIn,
    FulfillmentAssigned,
    FulfillmentCancelled,
    FulfillmentStatus,
    OrderStatus,
    PlaceOrder,
    RefundIssued,
    RejectCode,
    ReturnIn,
    ShipIn,
)
from services.infrastructure.errors import Conflict, InvalidRequest, ServiceUnavailable
from services.orders import handlers, routing
from services.orders.handlers.common import Policy
from tests.unit.orders.fakes import (
    KEYS,
    FakeInventory,
    FakeNetwork,
    FakeOrderRepository,
    FakeOrdersUnitOfWork,
    FakeSite,
    quote_token,
)

HOME = {"line1": "Damrak 1", "postal_code": "1012", "city": "Amsterdam", "country": "NL"}
HOME_AT = {**HOME, "lat": 52.3731, "lon": 4.8922}


@pytest.fixture
def inventory() -> FakeInventory:
    return FakeInventory()


@pytest.fixture
def policy(inventory: FakeInventory) -> Policy:
    return Policy(
        keys=KEYS,
        rules=routing.RoutingRules(),
        max_attempts=4,
        pickup_window=timedelta(hours=72),
        stock=inventory,
    )


@pytest.fixture
def uow() -> FakeOrdersUnitOfWork:
    network = FakeNetwork(
        [
            FakeSite("wh", "warehouse", 52.30, 4.80, ("ship", "returns"), priority=10),
            FakeSite("store-ams", "store", 52.37, 4.89, priority=50),
            FakeSite("store-utr", "store", 52.09, 5.12, priority=50),
            FakeSite("ds-1", "dropship", 52.50, 5.50, ("ship",), priority=80, partner_id="p-1"),
        ]
    )
    return FakeOrdersUnitOfWork(FakeOrderRepository(), network)


def order_body(lines: dict[str, tuple[int, int]], fulfillment: dict[str, Any]) -> PlaceOrder:
    return PlaceOrder.model_validate(
        {
            "quote_token": quote_token(lines),
            "customer": {"id": "c1", "email": "ada@example.com"},
            "fulfillment": fulfillment,
            "lines": [{"sku": sku, "quantity": q} for sku, (q, _) in lines.items()],
        }
    )


DELIVERY = {"method": "delivery", "address": HOME_AT}


def reserved(order_id: str, f: Any) -> StockReserved:
    return StockReserved(
        order_id=order_id,
        fulfillment_id=f.fulfillment_id,
        reservation_id=f.fulfillment_id,
        location_id=f.location_id,
        lines=(),
    )


async def place(
    uow: FakeOrdersUnitOfWork, policy: Policy, lines: dict[str, tuple[int, int]], **kw: Any
) -> str:
    body = order_body(lines, kw.pop("fulfillment", DELIVERY))
    if kw.pop("allow_backorder", False):
        body = body.model_copy(update={"allow_backorder": True})
    async with uow:
        accepted = await handlers.place_order(body, kw.pop("key", None), uow, policy)
    return accepted.order_id


async def test_an_order_is_routed_and_asks_inventory_to_reserve(
    uow: FakeOrdersUnitOfWork, policy: Policy, inventory: FakeInventory
) -> None:
    uow.network.available["TEE", "wh"] = 5

    order_id = await place(uow, policy, {"TEE": (2, 1999)})

    order = uow.orders.stored[order_id]
    assert order.status is OrderStatus.PENDING
    (fulfillment,) = order.fulfillments
    assert (fulfillment.location_id, fulfillment.lines) == ("wh", {"TEE": 2})
    assert uow.types() == ["OrderPlaced", "FulfillmentAssigned", "ReserveStock"]
    reserve = uow.published[-1]
    assert isinstance(reserve, ReserveStock)
    assert reserve.reservation_id == fulfillment.fulfillment_id
    assert uow.network.load == {"wh": 1}
    assert inventory.asked == []  # the projection could place it: inventory was not asked


async def test_stock_the_projection_does_not_show_yet_is_found_with_inventory(
    uow: FakeOrdersUnitOfWork, policy: Policy, inventory: FakeInventory
) -> None:
    inventory.levels_by_key["TEE", "store-utr"] = 3  # set a moment ago

    order_id = await place(uow, policy, {"TEE": (1, 1999)})

    order = uow.orders.stored[order_id]
    assert [f.location_id for f in order.fulfillments] == ["store-utr"]
    assert inventory.asked == [["TEE"]]
    assert uow.network.available["TEE", "store-utr"] == 3  # the projection caught up


async def test_a_real_shortage_is_rejected_once_inventory_agrees(
    uow: FakeOrdersUnitOfWork, policy: Policy, inventory: FakeInventory
) -> None:
    order_id = await place(uow, policy, {"TEE": (1, 1999)})

    order = uow.orders.stored[order_id]
    assert order.status is OrderStatus.REJECTED
    assert inventory.asked == [["TEE"]]
    assert uow.types() == ["OrderPlaced", "OrderRejected"]


async def test_when_inventory_cannot_be_asked_nothing_is_taken(
    uow: FakeOrdersUnitOfWork, policy: Policy, inventory: FakeInventory
) -> None:
    inventory.away = True
    with pytest.raises(ServiceUnavailable):
        await place(uow, policy, {"TEE": (1, 1999)})
    assert uow.orders.stored == {}
    assert uow.published == []


async def test_a_repeated_key_gives_the_same_order_and_another_body_is_refused(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    uow.network.available["TEE", "wh"] = 5
    body = order_body({"TEE": (1, 1999)}, DELIVERY)
    async with uow:
        first = await handlers.place_order(body, "k1", uow, policy)
    async with uow:
        again = await handlers.place_order(body, "k1", uow, policy)
    assert again.order_id == first.order_id
    assert len(uow.orders.stored) == 1
    other = order_body({"TEE": (2, 1999)}, DELIVERY)
    with pytest.raises(InvalidRequest, match="different order"):
        await handlers.place_order(other, "k1", uow, policy)


async def test_a_quote_buys_one_order(uow: FakeOrdersUnitOfWork, policy: Policy) -> None:
    uow.network.available["TEE", "wh"] = 5
    body = order_body({"TEE": (1, 1999)}, DELIVERY)
    async with uow:
        await handlers.place_order(body, None, uow, policy)
    with pytest.raises(Conflict, match="already used"):
        async with uow:
            await handlers.place_order(body, None, uow, policy)


async def test_reserved_stock_confirms_the_order_once(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    uow.network.available["TEE", "wh"] = 5
    order_id = await place(uow, policy, {"TEE": (1, 1999)})
    (f,) = uow.orders.stored[order_id].fulfillments
    for _ in range(2):  # a repeated answer changes nothing
        async with uow:
            await handlers.on_stock_reserved(reserved(order_id, f), uow)
            await uow.commit()

    order = uow.orders.stored[order_id]
    assert order.status is OrderStatus.CONFIRMED
    assert order.fulfillments[0].status is FulfillmentStatus.RESERVED
    assert uow.types().count("OrderConfirmed") == 1


async def test_a_rejected_reservation_routes_again_without_that_location(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    uow.network.available["TEE", "wh"] = 5
    uow.network.available["TEE", "store-ams"] = 5
    order_id = await place(uow, policy, {"TEE": (1, 1999)})
    (first,) = uow.orders.stored[order_id].fulfillments
    assert first.location_id == "wh"

    rejected = StockReservationRejected(
        order_id=order_id,
        fulfillment_id=first.fulfillment_id,
        reservation_id=first.fulfillment_id,
        location_id="wh",
        reason="insufficient_stock",
        detail="short",
    )
    async with uow:
        await handlers.on_reservation_rejected(rejected, uow, policy)
        await uow.commit()

    order = uow.orders.stored[order_id]
    assert [(f.location_id, f.status) for f in order.fulfillments] == [
        ("wh", FulfillmentStatus.REJECTED),
        ("store-ams", FulfillmentStatus.PENDING),
    ]
    assert order.attempts == 2


async def test_a_store_reject_releases_and_routes_again(
    uow: FakeOrdersUnitOfWork, policy: Policy, inventory: FakeInventory
) -> None:
    uow.network.available["TEE", "store-ams"] = 1
    pickup = {"method": "pickup", "store_id": "store-ams"}
    order_id = await place(uow, policy, {"TEE": (1, 1999)}, fulfillment=pickup)
    (f,) = uow.orders.stored[order_id].fulfillments
    uow.network.available["TEE", "store-ams"] = 0
    uow.network.available["TEE", "wh"] = 4
    async with uow:
        await handlers.reject(f.fulfillment_id, "short pick", uow, policy)

    order = uow.orders.stored[order_id]
    assert order.fulfillments[0].status is FulfillmentStatus.REJECTED
    assert order.fulfillments[1].transfer  # the warehouse sends it to the store
    released = [m for m in uow.published if isinstance(m, ReleaseStock)]
    assert [m.reservation_id for m in released] == [f.fulfillment_id]


async def test_cancel_releases_everything_held_but_not_once_shipped(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    uow.network.available["TEE", "wh"] = 5
    first = await place(uow, policy, {"TEE": (1, 1999)})
    async with uow:
        await handlers.cancel(first, CancelIn(reason="changed my mind"), uow)
    assert uow.orders.stored[first].status is OrderStatus.CANCELLED
    assert isinstance(uow.published[-3], ReleaseStock)
    assert isinstance(uow.published[-2], FulfillmentCancelled)

    second = await place(uow, policy, {"TEE": (1, 1999)})
    (f,) = uow.orders.stored[second].fulfillments
    async with uow:
        await handlers.on_stock_reserved(reserved(second, f), uow)
        await uow.commit()
    async with uow:
        await handlers.ship(f.fulfillment_id, ShipIn(carrier="PostNL", tracking_number="3S1"), uow)
    assert uow.orders.stored[second].status is OrderStatus.COMPLETED
    assert isinstance(uow.published[-3], CommitStock)
    with pytest.raises(Conflict, match="already completed"):
        async with uow:
            await handlers.cancel(second, CancelIn(reason="too late"), uow)


async def test_a_return_refunds_what_the_units_cost(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    uow.network.available["TEE", "store-ams"] = 3
    pickup = {"method": "pickup", "store_id": "store-ams"}
    order_id = await place(uow, policy, {"TEE": (3, 1999)}, fulfillment=pickup)
    (f,) = uow.orders.stored[order_id].fulfillments
    async with uow:
        await handlers.on_stock_reserved(reserved(order_id, f), uow)
        await uow.commit()
    async with uow:
        await handlers.hand_over(f.fulfillment_id, uow)

    body = ReturnIn.model_validate(
        {
            "order_id": order_id,
            "store_id": "store-ams",
            "lines": [{"sku": "TEE", "quantity": 1, "condition": "resellable"}],
            "reason": "too small",
        }
    )
    async with uow:
        taken = await handlers.accept_return(body, "r1", uow)
    assert taken.refund.amount == 1999
    assert uow.orders.stored[order_id].lines["TEE"].returned_quantity == 1
    assert uow.orders.stored[order_id].refunded == 1999
    restock, accepted, refund = uow.published[-3:]
    assert isinstance(restock, RestockReturn)
    assert restock.location_id == "store-ams"
    assert isinstance(refund, RefundIssued)
    assert refund.amount.amount == 1999
    assert type(accepted).__name__ == "ReturnAccepted"

    too_many = body.model_copy(
        update={"lines": (body.lines[0].model_copy(update={"quantity": 3}),)}
    )
    with pytest.raises(
        InvalidRequest, match=r"only 2 of 3 units are left to give back \(1 already returned"
    ):
        async with uow:
            await handlers.accept_return(too_many, None, uow)


async def test_a_preorder_waits_for_incoming_stock_and_is_confirmed_on_receipt(
    uow: FakeOrdersUnitOfWork, policy: Policy, inventory: FakeInventory
) -> None:
    due = datetime(2026, 12, 10, 9, tzinfo=UTC)
    inventory.expect("wh", "KAYAK", 4, due)

    order_id = await place(uow, policy, {"KAYAK": (2, 89900)}, allow_backorder=True)

    order = uow.orders.stored[order_id]
    assert order.status is OrderStatus.BACKORDERED
    assert order.promised_at == due
    (f,) = order.fulfillments
    assert (f.location_id, f.backorder, f.status) == ("wh", True, FulfillmentStatus.PENDING)
    assert uow.types()[-3:] == ["FulfillmentAssigned", "PromiseStock", "OrderBackordered"]
    promise = uow.published[-2]
    assert isinstance(promise, PromiseStock)
    assert promise.promise_id == f.fulfillment_id

    later = due.replace(day=12)  # inventory's own date wins
    async with uow:
        await handlers.on_stock_promised(
            StockPromised(
                order_id=order_id,
                fulfillment_id=f.fulfillment_id,
                promise_id=f.fulfillment_id,
                location_id="wh",
                lines=(StockLine(sku="KAYAK", quantity=2),),
                promised_at=later,
            ),
            uow,
        )
        await uow.commit()
    assert uow.orders.stored[order_id].promised_at == later

    async with uow:  # received: inventory reserves the promise
        await handlers.on_stock_reserved(reserved(order_id, f), uow)
        await uow.commit()
    assert uow.orders.stored[order_id].status is OrderStatus.CONFIRMED


async def test_without_allow_backorder_or_incoming_stock_the_order_is_rejected(
    uow: FakeOrdersUnitOfWork, policy: Policy, inventory: FakeInventory
) -> None:
    inventory.expect("wh", "KAYAK", 1, datetime(2026, 12, 10, tzinfo=UTC))
    plain = await place(uow, policy, {"KAYAK": (1, 89900)})
    too_many = await place(uow, policy, {"KAYAK": (2, 89900)}, allow_backorder=True)
    assert uow.orders.stored[plain].status is OrderStatus.REJECTED
    assert uow.orders.stored[too_many].status is OrderStatus.REJECTED


async def test_a_rejected_promise_routes_again_and_a_cancelled_backorder_frees_its_promise(
    uow: FakeOrdersUnitOfWork, policy: Policy, inventory: FakeInventory
) -> None:
    inventory.expect("wh", "KAYAK", 2, datetime(2026, 12, 10, tzinfo=UTC))
    inventory.expect("store-utr", "KAYAK", 2, datetime(2026, 12, 20, tzinfo=UTC))
    order_id = await place(uow, policy, {"KAYAK": (1, 89900)}, allow_backorder=True)
    (first,) = uow.orders.stored[order_id].fulfillments
    assert first.location_id == "wh"

    async with uow:  # others were promised the warehouse's kayaks first
        await handlers.on_promise_rejected(
            StockPromiseRejected(
                order_id=order_id,
                fulfillment_id=first.fulfillment_id,
                promise_id=first.fulfillment_id,
                location_id="wh",
                detail="only 0 of 1 KAYAK left to promise",
            ),
            uow,
            policy,
        )
        await uow.commit()
    order = uow.orders.stored[order_id]
    assert [(f.location_id, f.status) for f in order.fulfillments] == [
        ("wh", FulfillmentStatus.REJECTED),
        ("store-utr", FulfillmentStatus.PENDING),
    ]
    assert order.status is OrderStatus.BACKORDERED

    async with uow:
        await handlers.cancel(order_id, CancelIn(reason="no longer needed"), uow)
    released = [m for m in uow.published if isinstance(m, ReleaseStock)]
    assert [m.reservation_id for m in released] == [order.fulfillments[1].fulfillment_id]
    assert uow.orders.stored[order_id].status is OrderStatus.CANCELLED


@pytest.mark.parametrize(
    ("code", "correction"),
    [
        (RejectCode.NOT_IN_STOCK, StockCorrection.NOT_IN_STOCK),
        (RejectCode.DAMAGED, StockCorrection.DAMAGED),
        (RejectCode.NO_CAPACITY, None),
        (RejectCode.OTHER, None),
    ],
)
async def test_a_reject_code_tells_inventory_how_to_correct_the_stock(
    uow: FakeOrdersUnitOfWork, policy: Policy, code: RejectCode, correction: Any
) -> None:
    uow.network.available["TEE", "wh"] = 5
    uow.network.available["TEE", "store-ams"] = 5
    order_id = await place(uow, policy, {"TEE": (1, 1999)})
    (f,) = uow.orders.stored[order_id].fulfillments
    async with uow:
        await handlers.reject(f.fulfillment_id, "shelf empty", uow, policy, code)

    (released,) = [m for m in uow.published if isinstance(m, ReleaseStock)]
    assert released.correction == correction
    order = uow.orders.stored[order_id]
    assert order.fulfillments[0].status_reason == f"{code.value}: shelf empty"
    assert [f.location_id for f in order.fulfillments] == ["wh", "store-ams"]  # never wh again


async def reserved_pickup(uow: FakeOrdersUnitOfWork, policy: Policy) -> tuple[str, Any]:
    uow.network.available["TEE", "store-ams"] = 2
    pickup = {"method": "pickup", "store_id": "store-ams"}
    order_id = await place(uow, policy, {"TEE": (2, 1999)}, fulfillment=pickup)
    (f,) = uow.orders.stored[order_id].fulfillments
    async with uow:
        await handlers.on_stock_reserved(reserved(order_id, f), uow)
        await uow.commit()
    return order_id, f


async def test_a_new_pickup_store_holds_before_the_old_one_lets_go(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    order_id, old = await reserved_pickup(uow, policy)
    uow.network.available["TEE", "store-utr"] = 5

    async with uow:
        await handlers.change_pickup_store(order_id, "store-utr", uow, policy)
    order = uow.orders.stored[order_id]
    new = order.fulfillments[1]
    assert (new.location_id, new.status, new.replaces) == (
        "store-utr",
        FulfillmentStatus.PENDING,
        (old.fulfillment_id,),
    )
    assert order.fulfillments[0].status is FulfillmentStatus.RESERVED  # still held
    assert not any(isinstance(m, ReleaseStock) for m in uow.published)
    assert order.store_id == "store-ams"

    async with uow:
        await handlers.on_stock_reserved(reserved(order_id, new), uow)
        await uow.commit()
    order = uow.orders.stored[order_id]
    assert order.fulfillments[0].status is FulfillmentStatus.CANCELLED
    assert order.store_id == "store-utr"
    assert order.status is OrderStatus.CONFIRMED
    (released,) = [m for m in uow.published if isinstance(m, ReleaseStock)]
    assert released.reservation_id == old.fulfillment_id
    assert "PickupStoreChanged" in uow.types()


async def test_a_store_that_cannot_serve_it_is_refused_and_the_order_keeps_its_own(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    order_id, _ = await reserved_pickup(uow, policy)
    published = len(uow.published)
    with pytest.raises(Conflict, match="store-utr cannot serve this order"):
        async with uow:
            await handlers.change_pickup_store(order_id, "store-utr", uow, policy)
    order = uow.orders.stored[order_id]
    assert len(order.fulfillments) == 1
    assert order.store_id == "store-ams"
    assert len(uow.published) == published  # nothing left with a refused change


async def test_a_change_that_inventory_refuses_leaves_the_old_reservation(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    order_id, _ = await reserved_pickup(uow, policy)
    uow.network.available["TEE", "store-utr"] = 5  # the projection was wrong
    async with uow:
        await handlers.change_pickup_store(order_id, "store-utr", uow, policy)
    new = uow.orders.stored[order_id].fulfillments[1]
    rejected = StockReservationRejected(
        order_id=order_id,
        fulfillment_id=new.fulfillment_id,
        reservation_id=new.fulfillment_id,
        location_id="store-utr",
        reason="insufficient_stock",
        detail="short",
    )
    async with uow:
        await handlers.on_reservation_rejected(rejected, uow, policy)
        await uow.commit()
    order = uow.orders.stored[order_id]
    assert [f.status for f in order.fulfillments] == [
        FulfillmentStatus.RESERVED,
        FulfillmentStatus.REJECTED,
    ]
    assert order.store_id == "store-ams"
    assert len(order.fulfillments) == 2  # no re-route of a refused change


async def test_the_pickup_store_cannot_change_once_ready(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    order_id, old = await reserved_pickup(uow, policy)
    async with uow:
        await handlers.mark_ready(old.fulfillment_id, uow, policy)
    with pytest.raises(Conflict, match="only while the order is reserved"):
        async with uow:
            await handlers.change_pickup_store(order_id, "store-utr", uow, policy)


async def test_a_buyers_second_delivery_to_the_same_address_ships_with_the_first(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    uow.network.available["TEE", "store-utr"] = 5  # the first order's only source
    uow.network.available["CAP", "wh"] = 5
    uow.network.available["CAP", "store-utr"] = 5
    first = await place(uow, policy, {"TEE": (1, 1999)})
    (parcel,) = uow.orders.stored[first].fulfillments
    assert parcel.location_id == "store-utr"

    # Another channel, the address written differently: still the same buyer and door.
    same_door = {
        "method": "delivery",
        "address": {**HOME_AT, "line1": "  DAMRAK 1 ", "postal_code": "1012 "},
    }
    second = await place(uow, policy, {"CAP": (1, 999)}, fulfillment=same_door)
    (joined,) = uow.orders.stored[second].fulfillments
    assert joined.location_id == "store-utr"  # not the nearer warehouse: it ships with the first
    assert joined.shipment_id == parcel.shipment_id
    assert uow.orders.stored[second].consolidated_with == [first]

    for order_id, f in ((first, parcel), (second, joined)):
        async with uow:
            await handlers.on_stock_reserved(reserved(order_id, f), uow)
            await uow.commit()
    async with uow:  # one call ships the whole parcel
        await handlers.ship(
            joined.fulfillment_id, ShipIn(carrier="PostNL", tracking_number="3S9"), uow
        )
    for order_id in (first, second):
        order = uow.orders.stored[order_id]
        assert order.status is OrderStatus.COMPLETED
        assert order.fulfillments[0].tracking_number == "3S9"


async def test_another_address_or_a_shipped_parcel_never_joins(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    uow.network.available["TEE", "store-utr"] = 5
    uow.network.available["CAP", "wh"] = 5
    uow.network.available["CAP", "store-utr"] = 5
    first = await place(uow, policy, {"TEE": (1, 1999)})
    elsewhere = {"method": "delivery", "address": {**HOME_AT, "line1": "Damrak 2"}}
    other = await place(uow, policy, {"CAP": (1, 999)}, fulfillment=elsewhere)
    assert uow.orders.stored[other].fulfillments[0].location_id == "wh"
    assert uow.orders.stored[other].consolidated_with == []

    (f,) = uow.orders.stored[first].fulfillments
    async with uow:
        await handlers.on_stock_reserved(reserved(first, f), uow)
        await uow.commit()
    async with uow:
        await handlers.ship(f.fulfillment_id, ShipIn(carrier="DHL", tracking_number="1"), uow)
    later = await place(uow, policy, {"CAP": (1, 999)})
    assert uow.orders.stored[later].fulfillments[0].location_id == "wh"
    decision = uow.orders.stored[later].fulfillments[0]
    assert decision.shipment_id == decision.fulfillment_id


async def test_cancelling_some_units_refunds_exactly_those_and_the_rest_goes_on(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    uow.network.available["TEE", "wh"] = 5
    uow.network.available["CAP", "wh"] = 5
    order_id = await place(uow, policy, {"TEE": (3, 1999), "CAP": (1, 999)})
    (f,) = uow.orders.stored[order_id].fulfillments
    async with uow:
        await handlers.on_stock_reserved(reserved(order_id, f), uow)
        await uow.commit()

    some = CancelIn.model_validate({"lines": [{"sku": "TEE", "quantity": 2}], "reason": "too many"})
    async with uow:
        refund = await handlers.cancel(order_id, some, uow)
    assert refund is not None
    assert refund.amount == 2 * 1999
    order = uow.orders.stored[order_id]
    assert order.status is OrderStatus.CONFIRMED
    assert order.fulfillments[0].lines == {"CAP": 1, "TEE": 1}
    assert order.lines["TEE"].cancelled_quantity == 2
    assert order.refunded == 2 * 1999
    (released,) = [m for m in uow.published if isinstance(m, ReleaseStock)]
    assert released.lines == (StockLine(sku="TEE", quantity=2),)

    with pytest.raises(Conflict, match="only 1 of TEE can still be cancelled"):
        async with uow:
            await handlers.cancel(order_id, some, uow)

    rest = CancelIn.model_validate(
        {"lines": [{"sku": "TEE", "quantity": 1}, {"sku": "CAP", "quantity": 1}]}
    )
    async with uow:
        refund = await handlers.cancel(order_id, rest, uow)
    assert refund is not None
    assert refund.amount == 1999 + 999
    order = uow.orders.stored[order_id]
    assert order.status is OrderStatus.CANCELLED  # the last units cancel the order
    assert order.fulfillments[0].status is FulfillmentStatus.CANCELLED
    assert order.refunded == order.total


async def test_a_repeated_partial_cancel_with_the_same_key_cancels_nothing_more(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    uow.network.available["TEE", "wh"] = 5
    order_id = await place(uow, policy, {"TEE": (3, 1999)})
    one = CancelIn.model_validate({"lines": [{"sku": "TEE", "quantity": 1}]})
    refunds = []
    for _ in range(2):  # a client's or the gateway's retry
        async with uow:
            refunds.append(await handlers.cancel(order_id, one, uow, "k-cancel-1"))
    assert [r.amount for r in refunds if r] == [1999, 1999]
    order = uow.orders.stored[order_id]
    assert order.lines["TEE"].cancelled_quantity == 1
    assert order.refunded == 1999
    assert uow.types().count("OrderLinesCancelled") == 1


# Partners that do not accept in time


async def dropshipped(
    uow: FakeOrdersUnitOfWork, policy: Policy, sku: str = "KAYAK", waited: timedelta | None = None
) -> tuple[str, Any]:
    """An order only the partner's location can serve, reserved there `waited` ago (longer than
    the accept window by default)."""
    uow.network.available[sku, "ds-1"] = 5
    order_id = await place(uow, policy, {sku: (1, 49900)})
    (f,) = uow.orders.stored[order_id].fulfillments
    async with uow:
        await handlers.on_stock_reserved(reserved(order_id, f), uow)
        await uow.commit()
    ago = policy.partner_accept_window + timedelta(seconds=1) if waited is None else waited
    uow.orders.reserved_at[f.fulfillment_id] -= ago
    return order_id, f


def sweep(uow: FakeOrdersUnitOfWork, policy: Policy) -> Any:
    return handlers.withdraw_unaccepted_fulfillments(lambda: uow, policy)


def events(uow: FakeOrdersUnitOfWork, kind: type[Any]) -> list[Any]:
    return [m for m in uow.published if isinstance(m, kind)]


async def test_a_partner_fulfillment_is_assigned_with_the_partner(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    order_id, f = await dropshipped(uow, policy)
    (assigned,) = events(uow, FulfillmentAssigned)
    assert (assigned.fulfillment_id, assigned.location_type, assigned.partner_id) == (
        f.fulfillment_id,
        "dropship",
        "p-1",
    )
    assert uow.orders.stored[order_id].status is OrderStatus.CONFIRMED


async def test_an_unaccepted_partner_fulfillment_is_withdrawn_and_routed_elsewhere(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    order_id, f = await dropshipped(uow, policy)
    uow.network.available["KAYAK", "wh"] = 1  # meanwhile the warehouse has one

    assert await sweep(uow, policy) == 1

    order = uow.orders.stored[order_id]
    withdrawn, rerouted = order.fulfillments
    assert (withdrawn.status, withdrawn.status_reason) == (
        FulfillmentStatus.CANCELLED,
        "withdrawn: not accepted within 60 minutes",
    )
    assert (rerouted.location_id, rerouted.status) == ("wh", FulfillmentStatus.PENDING)
    (released,) = events(uow, ReleaseStock)
    assert released.reservation_id == f.fulfillment_id
    (event,) = events(uow, FulfillmentCancelled)
    assert (event.fulfillment_id, event.location_id, event.partner_id) == (
        f.fulfillment_id,
        "ds-1",
        "p-1",
    )
    assert event.reason == withdrawn.status_reason
    assert order.failed_locations() == {"ds-1"}
    assert await sweep(uow, policy) == 0  # nothing left to withdraw
    assert len(events(uow, FulfillmentCancelled)) == 1


async def test_without_another_location_the_order_is_rejected(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    order_id, f = await dropshipped(uow, policy)
    await sweep(uow, policy)
    order = uow.orders.stored[order_id]
    assert order.status is OrderStatus.REJECTED
    assert [x.status for x in order.fulfillments] == [FulfillmentStatus.CANCELLED]
    assert [e.fulfillment_id for e in events(uow, FulfillmentCancelled)] == [f.fulfillment_id]
    assert uow.types()[-1] == "OrderRejected"


async def test_a_partner_within_the_window_or_one_that_accepted_keeps_it(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    recent, _ = await dropshipped(uow, policy, "CANOE", waited=timedelta(minutes=5))
    accepted, f = await dropshipped(uow, policy)
    async with uow:
        await handlers.accept(f.fulfillment_id, uow)
    assert await sweep(uow, policy) == 0
    # An accept that commits between the sweep's read and its lock on the order wins.
    published = len(uow.published)
    async with uow:
        await handlers.withdraw_unaccepted(accepted, f.fulfillment_id, uow, policy)
    assert len(uow.published) == published
    for order_id in (recent, accepted):
        assert uow.orders.stored[order_id].status is OrderStatus.CONFIRMED
    assert uow.orders.stored[accepted].fulfillments[0].status is FulfillmentStatus.ACCEPTED


async def test_an_accept_after_the_withdrawal_is_refused(
    uow: FakeOrdersUnitOfWork, policy: Policy
) -> None:
    _, f = await dropshipped(uow, policy)
    uow.network.available["KAYAK", "wh"] = 1
    await sweep(uow, policy)
    with pytest.raises(Conflict, match="the fulfillment is cancelled"):
        async with uow:
            await handlers.accept(f.fulfillment_id, uow)


async def test_an_order_that_fails_to_route_again_does_not_hold_back_the_others(
    uow: FakeOrdersUnitOfWork, policy: Policy, inventory: FakeInventory
) -> None:
    stuck, _ = await dropshipped(uow, policy, "KAYAK")  # only the partner has kayaks
    moved, _ = await dropshipped(uow, policy, "CANOE")
    uow.network.available["CANOE", "wh"] = 1
    inventory.away = True  # routing kayaks again needs inventory, which does not answer

    assert await sweep(uow, policy) == 2
    assert uow.orders.stored[stuck].fulfillments[0].status is FulfillmentStatus.RESERVED
    assert uow.orders.stored[moved].fulfillments[-1].location_id == "wh"

    inventory.away = False  # the next sweep tries the stuck one again
    assert await sweep(uow, policy) == 1
    assert uow.orders.stored[stuck].status is OrderStatus.REJECTED


async def test_the_window_is_the_policys(uow: FakeOrdersUnitOfWork, policy: Policy) -> None:
    short = replace(policy, partner_accept_window=timedelta(seconds=2))
    order_id, _ = await dropshipped(uow, short)
    await sweep(uow, short)
    withdrawn = uow.orders.stored[order_id].fulfillments[0]
    assert withdrawn.status_reason == "withdrawn: not accepted within 2 seconds"
