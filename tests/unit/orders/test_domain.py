"""The Order aggregate, pure: statuses move only along the transition tables, each change records
its messages, and a repeated step is answered as it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.contracts.inventory import CommitStock, ReleaseStock, ReserveStock
from services.contracts.orders import (
    FulfillmentAssigned,
    FulfillmentCancelled,
    FulfillmentMethod,
    FulfillmentStatus,
    OrderStatus,
)
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


def assigned(
    o: Order,
    location_id: str = "store-ams",
    *,
    partner_id: str | None = None,
    replacing: tuple[str, ...] = (),
    **lines: int,
) -> str:
    attempt = o.start_routing()
    (f,) = o.assign(
        attempt,
        [
            PlannedFulfillment(
                location_id=location_id,
                location_type="store" if partner_id is None else "dropship",
                method=o.method.value,
                lines=lines or o.quantities(),
                pickup_store_id=None if partner_id else "store-ams",
                partner_id=partner_id,
            )
        ],
        replacing,
    )
    return f.fulfillment_id


def dropshipped(**lines: int) -> tuple[Order, str]:
    """A delivery from a partner's location, reserved and waiting for the partner's accept."""
    o = order(FulfillmentMethod.DELIVERY, **lines)
    fid = assigned(o, "ds-1", partner_id="p-1")
    o.reservation_confirmed(fid)
    o.messages.clear()
    return o, fid


def cancelled(o: Order) -> list[FulfillmentCancelled]:
    return [m for m in o.messages if isinstance(m, FulfillmentCancelled)]


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


def test_a_partners_fulfillment_is_assigned_to_the_partner() -> None:
    o = order(FulfillmentMethod.DELIVERY)
    fid = assigned(o, "ds-1", partner_id="p-1")
    (event,) = [m for m in o.messages if isinstance(m, FulfillmentAssigned)]
    assert (event.fulfillment_id, event.location_type, event.partner_id) == (
        fid,
        "dropship",
        "p-1",
    )
    assert o.fulfillment(fid).partner_id == "p-1"
    other = order()
    assigned(other)
    assert [m.partner_id for m in other.messages if isinstance(m, FulfillmentAssigned)] == [None]


def test_cancelling_the_order_cancels_each_held_fulfillment_once() -> None:
    o, fid = dropshipped()
    assert o.cancel("changed my mind")
    (event,) = cancelled(o)
    assert (event.fulfillment_id, event.location_id, event.partner_id, event.reason) == (
        fid,
        "ds-1",
        "p-1",
        "changed my mind",
    )
    assert not o.cancel("again")
    assert len(cancelled(o)) == 1


def test_a_rejected_order_cancels_what_it_still_held() -> None:
    o = order(FulfillmentMethod.DELIVERY, TEE=1, CAP=1)
    held = assigned(o, "wh", TEE=1)
    failed = assigned(o, "store-utr", CAP=1)
    o.reservation_confirmed(held)
    o.reservation_failed(failed, "short")
    o.reject("no location left")
    assert [(e.fulfillment_id, e.reason) for e in cancelled(o)] == [
        (held, "order rejected: no location left")
    ]  # the failed one was rejected, not cancelled


def test_cancelling_a_fulfillments_last_units_cancels_it_and_part_of_them_does_not() -> None:
    o = order(FulfillmentMethod.DELIVERY, TEE=2, CAP=1)
    tees = assigned(o, "wh", TEE=2)
    cap = assigned(o, "ds-1", partner_id="p-1", CAP=1)
    o.reservation_confirmed(tees)
    o.reservation_confirmed(cap)
    o.cancel_lines("cnl_1", {"TEE": 1}, "one is enough")
    assert cancelled(o) == []
    o.cancel_lines("cnl_2", {"CAP": 1}, "no cap")
    (event,) = cancelled(o)
    assert (event.fulfillment_id, event.partner_id, event.reason) == (cap, "p-1", "no cap")
    assert o.status is OrderStatus.CONFIRMED


def test_a_new_pickup_store_cancels_the_old_fulfillment_once_it_holds() -> None:
    o = order(FulfillmentMethod.PICKUP)
    old = assigned(o)
    o.reservation_confirmed(old)
    new = assigned(o, "store-utr", replacing=(old,))
    assert cancelled(o) == []
    o.reservation_confirmed(new)
    (event,) = cancelled(o)
    assert (event.fulfillment_id, event.location_id, event.partner_id) == (old, "store-ams", None)


def test_an_expiry_expires_fulfillments_rather_than_cancelling_them() -> None:
    o = order(FulfillmentMethod.RESERVE)
    fid = assigned(o)
    o.reservation_confirmed(fid)
    o.hold_expired(fid)
    assert cancelled(o) == []


def test_a_long_cancel_reason_still_fits_the_release() -> None:
    o, _ = dropshipped()
    o.cancel("x" * 500)
    (release,) = [m for m in o.messages if isinstance(m, ReleaseStock)]
    assert release.reason == "x" * 200
    assert cancelled(o)[0].reason == "x" * 500


def test_a_partner_that_does_not_accept_in_time_loses_the_fulfillment() -> None:
    o, fid = dropshipped(TEE=2)
    assert o.withdraw(fid, "not accepted within 60 minutes") == {"TEE": 2}
    f = o.fulfillment(fid)
    assert f.status is F.CANCELLED
    assert f.status_reason == "withdrawn: not accepted within 60 minutes"
    assert f.withdrawn
    assert [type(m).__name__ for m in o.messages] == ["ReleaseStock", "FulfillmentCancelled"]
    (event,) = cancelled(o)
    assert (event.partner_id, event.reason) == ("p-1", f.status_reason)
    assert o.failed_locations() == {"ds-1"}  # routed again without it
    assert o.outstanding() == {"TEE": 2}
    assert o.status is OrderStatus.CONFIRMED  # until the re-route settles it
    assert o.withdraw(fid, "again") is None  # once
    with pytest.raises(domain.RuleViolation, match="the fulfillment is cancelled"):
        o.accept(fid)  # too late
    assert len(o.messages) == 2


def test_an_accepted_or_unreserved_fulfillment_is_not_withdrawn() -> None:
    o, fid = dropshipped()
    assert o.accept(fid)
    o.messages.clear()
    assert o.withdraw(fid, "not accepted within 60 minutes") is None  # the accept won the race
    assert o.fulfillment(fid).status is F.ACCEPTED
    assert o.messages == []

    waiting = order(FulfillmentMethod.DELIVERY)
    pending = assigned(waiting, "ds-1", partner_id="p-1")  # its reservation not held yet
    assert waiting.withdraw(pending, "late") is None
    with pytest.raises(domain.RuleViolation, match="dropship"):
        waiting.withdraw(assigned(waiting, "wh"), "late")


def test_only_a_withdrawal_marks_a_cancelled_location_as_failed() -> None:
    o = order(FulfillmentMethod.DELIVERY, TEE=2)
    fid = assigned(o, "ds-1", partner_id="p-1")
    o.reservation_confirmed(fid)
    o.cancel_lines("cnl_1", {"TEE": 2}, "not needed")
    assert o.fulfillment(fid).status is F.CANCELLED
    assert not o.fulfillment(fid).withdrawn
    assert o.failed_locations() == frozenset()
