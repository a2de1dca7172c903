"""Orders use cases: intake, routing, and the saga that follows inventory's answers. Each runs in
one unit of work and locks the order row first, so the steps of one order never interleave."""

from services.orders.handlers.actions import (
    accept,
    cancel,
    change_pickup_store,
    hand_over,
    mark_ready,
    reject,
    ship,
)
from services.orders.handlers.common import Policy
from services.orders.handlers.intake import place_order
from services.orders.handlers.returns import accept_return
from services.orders.handlers.saga import (
    expire_overdue_pickups,
    on_commit_rejected,
    on_promise_rejected,
    on_reservation_expired,
    on_reservation_rejected,
    on_stock_promised,
    on_stock_reserved,
    project_availability,
    project_location,
    withdraw_unaccepted,
    withdraw_unaccepted_fulfillments,
)

__all__ = [
    "Policy",
    "accept",
    "accept_return",
    "cancel",
    "change_pickup_store",
    "expire_overdue_pickups",
    "hand_over",
    "mark_ready",
    "on_commit_rejected",
    "on_promise_rejected",
    "on_reservation_expired",
    "on_reservation_rejected",
    "on_stock_promised",
    "on_stock_reserved",
    "place_order",
    "project_availability",
    "project_location",
    "reject",
    "ship",
    "withdraw_unaccepted",
    "withdraw_unaccepted_fulfillments",
]
