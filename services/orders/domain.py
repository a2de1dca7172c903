"""Order rules, pure: the fulfillment state machine, how an order's status follows from its
fulfillments, what a return refunds, and whether an order matches its quote."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from services.contracts.orders import FulfillmentMethod, FulfillmentStatus, OrderStatus

F = FulfillmentStatus

# Where each fulfillment status may go next. Anything else is refused, so a late or repeated
# action (a second handover, a ship after a cancel) can never move an order backwards.
TRANSITIONS: Mapping[FulfillmentStatus, frozenset[FulfillmentStatus]] = {
    F.PENDING: frozenset({F.RESERVED, F.REJECTED, F.CANCELLED}),
    F.RESERVED: frozenset(
        {F.ACCEPTED, F.READY_FOR_PICKUP, F.SHIPPED, F.PICKED_UP, F.REJECTED, F.CANCELLED, F.EXPIRED}
    ),
    F.ACCEPTED: frozenset({F.SHIPPED, F.REJECTED, F.CANCELLED}),
    F.READY_FOR_PICKUP: frozenset({F.PICKED_UP, F.CANCELLED, F.EXPIRED}),
    F.SHIPPED: frozenset({F.DELIVERED}),
    F.PICKED_UP: frozenset(),
    F.DELIVERED: frozenset(),
    F.REJECTED: frozenset(),
    F.CANCELLED: frozenset(),
    F.EXPIRED: frozenset(),
}

DONE = frozenset({F.SHIPPED, F.PICKED_UP, F.DELIVERED})
"""The goods left the building: stock is committed, nothing can be cancelled any more."""

CLOSED = frozenset({F.REJECTED, F.CANCELLED, F.EXPIRED})
"""No longer part of the order's plan."""

HOLDING = frozenset({F.PENDING, F.RESERVED, F.ACCEPTED, F.READY_FOR_PICKUP})
"""Holds (or is about to hold) stock that a cancel or an expiry must release."""

TERMINAL_ORDER = frozenset(
    {OrderStatus.COMPLETED, OrderStatus.EXPIRED, OrderStatus.CANCELLED, OrderStatus.REJECTED}
)


class IllegalTransition(ValueError):
    """The fulfillment cannot take this step from where it is; the message says why."""


def transition(
    current: FulfillmentStatus, target: FulfillmentStatus, what: str
) -> FulfillmentStatus:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing"
        raise IllegalTransition(
            f"cannot {what}: the fulfillment is {current.value} (from there: {allowed})"
        )
    return target


def status_after(
    fulfillments: Sequence[FulfillmentStatus], method: FulfillmentMethod
) -> OrderStatus | None:
    """The order status its live fulfillments imply, or None while some are still pending."""
    live = [status for status in fulfillments if status not in CLOSED]
    if not live:
        return None
    if all(status in DONE for status in live):
        return OrderStatus.COMPLETED
    if any(status is F.PENDING for status in live):
        return None
    return OrderStatus.RESERVED if method is FulfillmentMethod.RESERVE else OrderStatus.CONFIRMED


def can_cancel(statuses: Iterable[FulfillmentStatus]) -> bool:
    return not any(status in DONE for status in statuses)


def refund_for(unit_net_prices: Sequence[int], already_returned: int, quantity: int) -> int:
    """A return pays back the next `quantity` units' net prices (most expensive first), so all
    returns of a line together repay exactly what the line cost."""
    if quantity < 1 or already_returned + quantity > len(unit_net_prices):
        raise ValueError(
            f"cannot return {quantity} more: {len(unit_net_prices)} bought, "
            f"{already_returned} already returned"
        )
    return sum(unit_net_prices[already_returned : already_returned + quantity])


def quote_mismatch(ordered: Mapping[str, int], quoted: Mapping[str, int]) -> str | None:
    """None when the order asks for exactly what was quoted; otherwise what differs."""
    if ordered == quoted:
        return None
    problems = []
    for sku in sorted(set(ordered) | set(quoted)):
        if ordered.get(sku, 0) != quoted.get(sku, 0):
            problems.append(f"{sku}: ordered {ordered.get(sku, 0)}, quoted {quoted.get(sku, 0)}")
    return "the lines differ from the quote (" + "; ".join(problems) + "); ask for a new quote"
