"""The Order aggregate, pure: statuses move only along the transition tables, each change records
its messages, and a repeated step is answered as it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.contracts.inventory import CommitStock, ReleaseStock, ReserveStock
from services.contracts.orders import FulfillmentMethod, FulfillmentStatus, OrderStatus
from services.contracts.pricing import Channel
from services.orders import domain
from services.orders.domain import Order, OrderLine
from services.orders.routing import PlannedFulfillment

F = FulfillmentStatus
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def order(method: FulfillmentMethod = FulfillmentMethod.PICKUP, **lines: int) -> Order:
    placed = Order.place(
        order_id="ord_1",
        channel=Channel.WEB,
        customer_id="c1",
        customer_email="ada@example.com",
        quote_id="q1",
        method=method,
        currency="EUR",
        subtotal=6000,
        discount_total=0,
        total=6000,
        lines=[OrderLine(sku, q, 2000, [2000] * q) for sku, q in (lines or {"TEE": 3}).items()],
        store_id="store-ams",
    )
    placed.messages.clear()
    return placed


def assigned(o: Order, location_id: str = "store-ams", **lines: int) -> str:
    attempt = o.start_routing()
    (f,) = o.assign(
        attempt,
        [
            PlannedFulfillment(
                location_id=location_id,
                location_type="store",
                method=o.method.value,
                lines=lines or o.quantities(),
                pickup_store_id="store-ams",
            )
        ],
    )
    return f.fulfillment_id


def test_placing_records_the_order_and_assigning_asks_for_a_reservation() -> None:
    o = order()
    fid = assigned(o)
    assert [type(m).__name__ for m in o.messages] == ["FulfillmentAssigned", "ReserveStock"]
    reserve = o.messages[1]
    assert isinstance(reserve, ReserveStock)
    assert (reserve.reservation_id, reserve.location_id) == (fid, "store-ams")
    assert o.outstanding() == {}


def test_the_order_follows_its_fulfillments_to_confirmed_and_completed() -> None:
    o = order()
    fid = assigned(o)
    o.reservation_confirmed(fid)
    assert o.status is OrderStatus.CONFIRMED
    assert o.mark_ready(fid, NOW, timedelta(hours=1))
    assert o.fulfillment(fid).pickup_deadline == NOW + timedelta(hours=1)
    assert o.hand_over(fid)
    assert o.status is OrderStatus.COMPLETED
    assert [type(m).__name__ for m in o.messages][-4:] == [
        "FulfillmentReady",
        "CommitStock",
        "FulfillmentPickedUp",
        "OrderCompleted",
    ]


def test_a_repeated_step_changes_nothing_and_an_illegal_one_is_refused() -> None:
    o = order()
    fid = assigned(o)
    o.reservation_confirmed(fid)
    o.hand_over(fid)
    recorded = len(o.messages)
    assert o.hand_over(fid) is False
    assert len(o.messages) == recorded
    with pytest.raises(
        domain.RuleViolation, match="cannot mark it ready: the fulfillment is picked_up"
    ):
        o.mark_ready(fid, NOW, timedelta(hours=1))
    with pytest.raises(domain.RuleViolation, match="a pickup fulfillment is collected in store"):
        o.ship(fid, "PostNL", "3S")


def test_an_ended_order_never_moves_again() -> None:
    o = order()
    fid = assigned(o)
    o.reject("nothing anywhere")
    assert o.status is OrderStatus.REJECTED
    assert o.fulfillment(fid).status is F.CANCELLED
    assert any(isinstance(m, ReleaseStock) for m in o.messages)
    o.reservation_confirmed(fid)  # a late answer
    o.settle()
    o.expire("late")
    assert o.status is OrderStatus.REJECTED
    with pytest.raises(domain.RuleViolation, match="already rejected"):
        o.cancel("too late")
    with pytest.raises(domain.IllegalTransition):
        o._become(OrderStatus.CONFIRMED)


def test_cancel_releases_what_is_held_but_not_what_left() -> None:
    o = order(FulfillmentMethod.DELIVERY, TEE=1, CAP=1)
    kept = assigned(o, "wh", TEE=1)
    shipped = assigned(o, "store-utr", CAP=1)
    o.reservation_confirmed(kept)
    o.reservation_confirmed(shipped)
    o.ship(shipped, "PostNL", "3S")
    assert any(isinstance(m, CommitStock) for m in o.messages)
    with pytest.raises(domain.RuleViolation, match="already shipped"):
        o.cancel("changed my mind")


def test_a_hold_that_runs_out_expires_the_order_and_gives_the_stock_back() -> None:
    o = order(FulfillmentMethod.RESERVE)
    fid = assigned(o)
    o.reservation_confirmed(fid)
    assert o.status is OrderStatus.RESERVED
    o.hold_expired(fid)
    assert o.status is OrderStatus.EXPIRED
    assert o.fulfillment(fid).status is F.EXPIRED
    assert type(o.messages[-1]).__name__ == "OrderExpired"


def test_a_failed_reservation_gives_its_lines_back_to_route() -> None:
    o = order(FulfillmentMethod.DELIVERY, TEE=2)
    fid = assigned(o, "wh")
    assert o.reservation_failed(fid, "short") == {"TEE": 2}
    assert o.failed_locations() == {"wh"}
    assert o.outstanding() == {"TEE": 2}
    assert o.reservation_failed(fid, "short") is None  # answered once


def test_every_status_change_goes_through_the_tables() -> None:
    for current, targets in domain.ORDER_TRANSITIONS.items():
        if current in domain.TERMINAL_ORDER:
            assert not targets
    for current, targets in domain.TRANSITIONS.items():
        for target in FulfillmentStatus:
            if target is not current and target not in targets:
                with pytest.raises(domain.IllegalTransition):
                    domain.transition(current, target, "test")
