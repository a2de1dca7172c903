"""Order rules, pure: the `Order` aggregate with its lines and fulfillments.

Every change goes through a method of `Order` that checks the rule, moves a status only along the
transition tables below (nothing else writes a status), and records the messages the change
causes: events for everyone (`OrderConfirmed`, ...) and commands for inventory (`ReserveStock`,
...). The repository saves the order and the unit of work puts those messages in the outbox in the
same transaction. No I/O here: routing results come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.contracts.base import Message
from services.contracts.inventory import (
    CommitStock,
    LocationType,
    PromiseStock,
    ReleaseStock,
    ReserveStock,
    RestockReturn,
    StockCorrection,
    StockLine,
)
from services.contracts.orders import (
    FulfillmentAccepted,
    FulfillmentAssigned,
    FulfillmentCancelled,
    FulfillmentMethod,
    FulfillmentPickedUp,
    FulfillmentReady,
    FulfillmentRejected,
    FulfillmentShipped,
    FulfillmentStatus,
    ItemCondition,
    OrderBackordered,
    OrderCancelled,
    OrderCompleted,
    OrderConfirmed,
    OrderExpired,
    OrderLinesCancelled,
    OrderPlaced,
    OrderRejected,
    OrderStatus,
    PickupStoreChanged,
    RefundIssued,
    RejectCode,
    ReturnAccepted,
    ReturnLine,
)
from services.contracts.pricing import Channel, Money
from services.orders.routing import BackorderPlan, PlannedFulfillment
from services.retail.refunds import RefundError, refund_of_units

F = FulfillmentStatus
O = OrderStatus  # noqa: E741 (a table reads better with one-letter names)

# Where each fulfillment status may go next. Anything else is refused, so a late or repeated
# action (a second handover, a ship after a cancel) can never move an order backwards.
TRANSITIONS: Mapping[FulfillmentStatus, frozenset[FulfillmentStatus]] = {
    F.PENDING: frozenset({F.RESERVED, F.REJECTED, F.CANCELLED, F.EXPIRED}),
    F.RESERVED: frozenset(
        {F.ACCEPTED, F.READY_FOR_PICKUP, F.SHIPPED, F.PICKED_UP, F.REJECTED, F.CANCELLED, F.EXPIRED}
    ),
    F.ACCEPTED: frozenset({F.SHIPPED, F.REJECTED, F.CANCELLED, F.EXPIRED}),
    F.READY_FOR_PICKUP: frozenset({F.PICKED_UP, F.CANCELLED, F.EXPIRED}),
    F.SHIPPED: frozenset({F.DELIVERED}),
    F.PICKED_UP: frozenset(),
    F.DELIVERED: frozenset(),
    F.REJECTED: frozenset(),
    F.CANCELLED: frozenset(),
    F.EXPIRED: frozenset(),
}

# The order's own status follows its fulfillments (`status_after`), or ends by a decision
# (rejected, cancelled, expired); an ended order never moves again.
ORDER_TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    O.PENDING: frozenset(
        {O.BACKORDERED, O.CONFIRMED, O.RESERVED, O.REJECTED, O.CANCELLED, O.EXPIRED}
    ),
    O.BACKORDERED: frozenset({O.CONFIRMED, O.RESERVED, O.REJECTED, O.CANCELLED}),
    O.CONFIRMED: frozenset({O.COMPLETED, O.REJECTED, O.CANCELLED, O.EXPIRED}),
    O.RESERVED: frozenset({O.COMPLETED, O.REJECTED, O.CANCELLED, O.EXPIRED}),
    O.COMPLETED: frozenset(),
    O.EXPIRED: frozenset(),
    O.CANCELLED: frozenset(),
    O.REJECTED: frozenset(),
}

DONE = frozenset({F.SHIPPED, F.PICKED_UP, F.DELIVERED})
"""The goods left the building: stock is committed, nothing can be cancelled any more."""

CLOSED = frozenset({F.REJECTED, F.CANCELLED, F.EXPIRED})
"""No longer part of the order's plan."""

HOLDING = frozenset({F.PENDING, F.RESERVED, F.ACCEPTED, F.READY_FOR_PICKUP})
"""Holds (or is about to hold) stock that a cancel or an expiry must release."""

TERMINAL_ORDER = frozenset({O.COMPLETED, O.EXPIRED, O.CANCELLED, O.REJECTED})

CORRECTIONS: Mapping[RejectCode, StockCorrection] = {
    RejectCode.NOT_IN_STOCK: StockCorrection.NOT_IN_STOCK,
    RejectCode.DAMAGED: StockCorrection.DAMAGED,
}
"""Reject codes that say the location's stock is wrong: inventory corrects it as it releases."""

WITHDRAWN = "withdrawn: "
"""How the status reason of a fulfillment taken from a partner that did not accept it in time
begins: the mark (kept with the fulfillment, no column of its own) that its location failed the
order, so re-routes leave it out like a location that rejected."""


class IllegalTransition(ValueError):
    """The fulfillment or order cannot take this step from where it is; the message says why."""


class RuleViolation(ValueError):
    """The change conflicts with the order as it is now (a 409 to a client)."""


class InvalidChange(ValueError):
    """The change asks for something the order never had (a 422 to a client)."""


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
        return O.COMPLETED
    if any(status is F.PENDING for status in live):
        return None
    return O.RESERVED if method is FulfillmentMethod.RESERVE else O.CONFIRMED


def quote_mismatch(ordered: Mapping[str, int], quoted: Mapping[str, int]) -> str | None:
    """None when the order asks for exactly what was quoted; otherwise what differs."""
    if ordered == quoted:
        return None
    problems = []
    for sku in sorted(set(ordered) | set(quoted)):
        if ordered.get(sku, 0) != quoted.get(sku, 0):
            problems.append(f"{sku}: ordered {ordered.get(sku, 0)}, quoted {quoted.get(sku, 0)}")
    return "the lines differ from the quote (" + "; ".join(problems) + "); ask for a new quote"


def address_key(customer_address: Mapping[str, Any] | None) -> str | None:
    """Where a delivery goes, as consolidation compares it: `line1`, `postal_code` and
    `country`, case and surrounding spaces ignored."""
    if not customer_address:
        return None
    parts = (customer_address.get(k) or "" for k in ("line1", "postal_code", "country"))
    return "|".join(" ".join(str(part).split()).casefold() for part in parts)


def stock_lines(quantities: Mapping[str, int]) -> tuple[StockLine, ...]:
    return tuple(StockLine(sku=sku, quantity=q) for sku, q in sorted(quantities.items()))


@dataclass
class OrderLine:
    """What was bought of one sku, with every unit's net price from the quote."""

    sku: str
    quantity: int
    unit_price: int
    unit_net_prices: list[int]
    returned_quantity: int = 0
    cancelled_quantity: int = 0

    @property
    def total(self) -> int:
        return sum(self.unit_net_prices)

    @property
    def given_back(self) -> int:
        """Units already refunded, returned or cancelled: the next refund starts after them."""
        return self.returned_quantity + self.cancelled_quantity


@dataclass
class Fulfillment:
    """The part of an order served from one location."""

    fulfillment_id: str
    location_id: str
    location_type: str
    method: FulfillmentMethod
    status: FulfillmentStatus
    attempt: int
    lines: dict[str, int]
    pickup_store_id: str | None = None
    transfer: bool = False
    backorder: bool = False  # waits for incoming stock promised to it
    replaces: tuple[str, ...] = ()  # a new pickup store's: these are released once it holds
    shipment_id: str | None = None  # the parcel it ships in; shared when consolidated
    hold_until: datetime | None = None
    pickup_deadline: datetime | None = None
    ready_at: datetime | None = None  # when it became ready for pickup: the stores' time to ready
    status_reason: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    partner_id: str | None = None  # of its location (read with it, or from the plan); not stored

    @property
    def withdrawn(self) -> bool:
        """Cancelled because its partner did not accept it in time."""
        return self.status is F.CANCELLED and (self.status_reason or "").startswith(WITHDRAWN)

    def step(self, target: FulfillmentStatus, what: str, reason: str | None = None) -> bool:
        """Move to `target`; False if it is there already (a repeated request is answered with
        the fulfillment as it is); IllegalTransition when the table forbids it."""
        if self.status is target:
            return False
        self.status = transition(self.status, target, what)
        if reason is not None:
            self.status_reason = reason
        return True


@dataclass(frozen=True)
class TakenBack:
    """A return as the order accepted it: what each line refunds."""

    return_id: str
    store_id: str
    reason: str
    lines: tuple[ReturnLine, ...]
    refund: Money


@dataclass
class Order:
    """An order with its lines and fulfillments: the only writer of their statuses."""

    order_id: str
    status: OrderStatus
    channel: Channel
    customer_id: str
    customer_email: str
    quote_id: str
    method: FulfillmentMethod
    currency: str
    subtotal: int
    discount_total: int
    total: int
    lines: dict[str, OrderLine]
    fulfillments: list[Fulfillment] = field(default_factory=list)
    store_id: str | None = None
    address: dict[str, Any] | None = None
    hold_until: datetime | None = None
    status_reason: str | None = None
    refunded: int = 0
    allow_backorder: bool = False
    promised_at: datetime | None = None
    consolidated_with: list[str] = field(default_factory=list)
    cancellations: dict[str, int] = field(default_factory=dict)
    """Partial cancels applied, by id, with what each refunded: a repeat applies nothing."""
    idempotency_key: str | None = None
    request_hash: str | None = None
    attempts: int = 0
    """Routing attempts so far, the new ones in `decisions` included."""
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """Routing decisions made since the order was loaded, to be stored with it."""
    messages: list[Message] = field(default_factory=list)
    """Events and commands recorded since the order was loaded, for the outbox."""

    @classmethod
    def place(
        cls,
        *,
        order_id: str,
        channel: Channel,
        customer_id: str,
        customer_email: str,
        quote_id: str,
        method: FulfillmentMethod,
        currency: str,
        subtotal: int,
        discount_total: int,
        total: int,
        lines: Iterable[OrderLine],
        store_id: str | None = None,
        address: dict[str, Any] | None = None,
        hold_until: datetime | None = None,
        allow_backorder: bool = False,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Order:
        order = cls(
            order_id=order_id,
            status=O.PENDING,
            channel=channel,
            customer_id=customer_id,
            customer_email=customer_email,
            quote_id=quote_id,
            method=method,
            currency=currency,
            subtotal=subtotal,
            discount_total=discount_total,
            total=total,
            lines={line.sku: line for line in lines},
            store_id=store_id,
            address=address,
            hold_until=hold_until,
            allow_backorder=allow_backorder,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        order._record(
            OrderPlaced(
                order_id=order_id,
                channel=channel,
                customer_id=customer_id,
                quote_id=quote_id,
                method=method,
                lines=stock_lines(order.quantities()),
                total=Money(amount=total, currency=currency),
            )
        )
        return order

    # Reading

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_ORDER

    def quantities(self) -> dict[str, int]:
        return {sku: line.quantity for sku, line in sorted(self.lines.items())}

    def fulfillment(self, fulfillment_id: str) -> Fulfillment | None:
        return next((f for f in self.fulfillments if f.fulfillment_id == fulfillment_id), None)

    def outstanding(self) -> dict[str, int]:
        """Units ordered that no live fulfillment covers yet."""
        covered: dict[str, int] = {}
        for f in self.fulfillments:
            if f.status not in CLOSED:
                for sku, quantity in f.lines.items():
                    covered[sku] = covered.get(sku, 0) + quantity
        missing = {
            sku: line.quantity - covered.get(sku, 0) for sku, line in sorted(self.lines.items())
        }
        return {sku: units for sku, units in missing.items() if units > 0}

    def failed_locations(self) -> frozenset[str]:
        """Locations that turned (part of) this order down, or did not accept it in time: never
        planned again."""
        return frozenset(
            f.location_id for f in self.fulfillments if f.status is F.REJECTED or f.withdrawn
        )

    # Routing

    def start_routing(self) -> int:
        """The number of the routing attempt about to be made."""
        self.attempts += 1
        return self.attempts

    def record_decision(self, decision: dict[str, Any]) -> None:
        self.decisions.append(decision)

    def assign(
        self,
        attempt: int,
        planned: Sequence[PlannedFulfillment],
        replacing: Sequence[str] = (),
    ) -> list[Fulfillment]:
        """Take on a routing plan: a fulfillment per location, each asking inventory to reserve.
        `replacing`: fulfillments these take over once they hold (a change of pickup store)."""
        assigned = []
        for n, plan in enumerate(planned, start=1):
            f = self._take_on(attempt, n, plan, replacing=replacing)
            if plan.ships_with is not None:
                f.shipment_id = plan.ships_with.shipment_id
                if plan.ships_with.order_id not in self.consolidated_with:
                    self.consolidated_with.append(plan.ships_with.order_id)
            assigned.append(f)
            self._record(
                ReserveStock(
                    order_id=self.order_id,
                    fulfillment_id=f.fulfillment_id,
                    reservation_id=f.fulfillment_id,
                    location_id=f.location_id,
                    lines=stock_lines(f.lines),
                    hold_until=self.hold_until
                    if self.method is FulfillmentMethod.RESERVE
                    else None,
                )
            )
        return assigned

    def promise(self, attempt: int, plan: BackorderPlan) -> Fulfillment:
        """Nothing is in stock for these lines now: wait for incoming stock, promised to this
        fulfillment by inventory (first come, first served) and reserved when it arrives."""
        f = self._take_on(attempt, 1, plan.fulfillment, backorder=True)
        self._record(
            PromiseStock(
                order_id=self.order_id,
                fulfillment_id=f.fulfillment_id,
                promise_id=f.fulfillment_id,
                location_id=f.location_id,
                lines=stock_lines(f.lines),
            )
        )
        self.promised_at = plan.promised_at
        if self.status is O.PENDING:
            self._become(O.BACKORDERED)
            self._record(OrderBackordered(order_id=self.order_id, promised_at=plan.promised_at))
        return f

    def _take_on(
        self,
        attempt: int,
        n: int,
        plan: PlannedFulfillment,
        *,
        backorder: bool = False,
        replacing: Sequence[str] = (),
    ) -> Fulfillment:
        """The `n`th fulfillment of a routing attempt, in its own parcel until it joins one."""
        fulfillment_id = f"{self.order_id}.{attempt}.{n}"
        f = Fulfillment(
            fulfillment_id=fulfillment_id,
            location_id=plan.location_id,
            location_type=plan.location_type,
            method=FulfillmentMethod(plan.method),
            status=F.PENDING,
            attempt=attempt,
            lines=dict(plan.lines),
            pickup_store_id=plan.pickup_store_id,
            transfer=plan.transfer,
            backorder=backorder,
            hold_until=self.hold_until,
            replaces=tuple(replacing),
            shipment_id=fulfillment_id,
            partner_id=plan.partner_id,
        )
        self.fulfillments.append(f)
        self._record(
            FulfillmentAssigned(
                order_id=self.order_id,
                fulfillment_id=f.fulfillment_id,
                location_id=f.location_id,
                location_type=LocationType(f.location_type),
                method=f.method,
                lines=stock_lines(f.lines),
                attempt=attempt,
                backorder=backorder,
                partner_id=f.partner_id,
            )
        )
        return f

    # Inventory's answers

    def reservation_confirmed(self, fulfillment_id: str) -> None:
        f = self.fulfillment(fulfillment_id)
        if f is None or f.status is not F.PENDING:
            # Cancelled while the reservation was in flight: its ReleaseStock is already queued
            # behind the ReserveStock on the same partition, so inventory gives the stock back.
            return
        f.step(F.RESERVED, "confirm its reservation")
        if f.replaces:
            self._take_over(f)
        self.settle()

    def promise_kept(self, fulfillment_id: str, promised_at: datetime) -> None:
        """Inventory promised the incoming stock: its date is the one the order shows."""
        f = self.fulfillment(fulfillment_id)
        if f is not None and f.backorder and f.status is F.PENDING:
            self.promised_at = promised_at

    def reservation_failed(self, fulfillment_id: str, detail: str) -> dict[str, int] | None:
        """Inventory could not reserve (or promise): the lines to route again, or None (nothing
        to do)."""
        f = self.fulfillment(fulfillment_id)
        if f is None or f.status is not F.PENDING:
            return None
        what = "promise" if f.backorder else "reservation"
        f.step(F.REJECTED, f"reject its {what}", detail)
        self._record(
            FulfillmentRejected(
                order_id=self.order_id,
                fulfillment_id=f.fulfillment_id,
                location_id=f.location_id,
                reason=f"{what} rejected: {detail}",
            )
        )
        if f.replaces:
            return None  # a change of pickup store that did not hold: the old one stays
        return None if self.ended else dict(f.lines)

    def hold_expired(self, fulfillment_id: str) -> None:
        """Inventory let a click & reserve hold go: the order expires."""
        f = self.fulfillment(fulfillment_id)
        if f is None or f.status not in HOLDING:
            return
        f.step(F.EXPIRED, "expire its hold", "hold expired")
        self.expire("the hold expired before collection")

    def pickup_overdue(self, fulfillment_id: str) -> None:
        """Not collected within the pickup window: the stock goes back."""
        f = self.fulfillment(fulfillment_id)
        if f is not None and f.status is F.READY_FOR_PICKUP:
            self.expire("not collected within the pickup window")

    # The customer

    def pickup_store_change(self, store_id: str) -> list[str] | None:
        """The fulfillments a move to `store_id` would replace, or None when the order is
        already collected there; refused once anything is ready, has left, or is still being
        routed."""
        if self.method is FulfillmentMethod.DELIVERY:
            raise RuleViolation("a delivery has no pickup store; it is shipped to its address")
        if self.ended:
            raise RuleViolation(f"the order is already {self.status.value}")
        live = [f for f in self.fulfillments if f.status not in CLOSED]
        if any(f.status not in {F.RESERVED, F.ACCEPTED} for f in live) or not live:
            raise RuleViolation(
                "the pickup store can change only while the order is reserved and nothing is "
                "ready for pickup or still being routed"
            )
        if self.store_id == store_id:
            return None
        return [f.fulfillment_id for f in live]

    # Staff and partners

    def mark_ready(self, fulfillment_id: str, now: datetime, pickup_window: timedelta) -> bool:
        f = self._fulfillment(fulfillment_id)
        if f.method is FulfillmentMethod.DELIVERY:
            raise RuleViolation("a delivery is shipped, not made ready for pickup")
        if not self._step(f, F.READY_FOR_PICKUP, "mark it ready"):
            return False
        f.ready_at = now
        f.pickup_deadline = now + pickup_window if f.method is FulfillmentMethod.PICKUP else None
        self._record(
            FulfillmentReady(
                order_id=self.order_id, fulfillment_id=f.fulfillment_id, location_id=f.location_id
            )
        )
        return True

    def hand_over(self, fulfillment_id: str) -> bool:
        """The customer collected: the stock is committed."""
        f = self._fulfillment(fulfillment_id)
        if f.method is FulfillmentMethod.DELIVERY:
            raise RuleViolation("a delivery is shipped, not handed over")
        if not self._step(f, F.PICKED_UP, "hand it over"):
            return False
        self._record(CommitStock(order_id=self.order_id, reservation_id=f.fulfillment_id))
        self._record(
            FulfillmentPickedUp(
                order_id=self.order_id, fulfillment_id=f.fulfillment_id, location_id=f.location_id
            )
        )
        self.settle()
        return True

    def ship(self, fulfillment_id: str, carrier: str, tracking_number: str) -> bool:
        """Handed to the carrier: the stock is committed."""
        f = self._fulfillment(fulfillment_id)
        if f.method is not FulfillmentMethod.DELIVERY:
            raise RuleViolation(
                f"a {f.method.value} fulfillment is collected in store, not shipped"
            )
        if not self._step(f, F.SHIPPED, "ship it"):
            return False
        f.carrier, f.tracking_number = carrier, tracking_number
        self._record(CommitStock(order_id=self.order_id, reservation_id=f.fulfillment_id))
        self._record(
            FulfillmentShipped(
                order_id=self.order_id,
                fulfillment_id=f.fulfillment_id,
                location_id=f.location_id,
                carrier=carrier,
                tracking_number=tracking_number,
            )
        )
        self.settle()
        return True

    def accept(self, fulfillment_id: str) -> bool:
        """A partner takes the fulfillment on."""
        f = self._fulfillment(fulfillment_id)
        if f.location_type != "dropship":
            raise RuleViolation("only dropship fulfillments are accepted by a partner")
        if not self._step(f, F.ACCEPTED, "accept it"):
            return False
        self._record(
            FulfillmentAccepted(
                order_id=self.order_id, fulfillment_id=f.fulfillment_id, location_id=f.location_id
            )
        )
        return True

    def turn_down(
        self, fulfillment_id: str, reason: str, code: RejectCode = RejectCode.OTHER
    ) -> dict[str, int] | None:
        """A short pick or a partner's refusal: the stock goes back (corrected, when the units
        are not there or damaged), and the lines to route again (None when the step was taken
        already or the order has ended)."""
        f = self._fulfillment(fulfillment_id)
        if not self._step(f, F.REJECTED, "reject it", f"{code.value}: {reason}"):
            return None
        self._record(
            ReleaseStock(
                order_id=self.order_id,
                reservation_id=f.fulfillment_id,
                reason=f"rejected ({code.value}): {reason}"[:200],
                correction=CORRECTIONS.get(code),
            )
        )
        self._record(
            FulfillmentRejected(
                order_id=self.order_id,
                fulfillment_id=f.fulfillment_id,
                location_id=f.location_id,
                reason=reason,
            )
        )
        return None if self.ended else dict(f.lines)

    def withdraw(self, fulfillment_id: str, reason: str) -> dict[str, int] | None:
        """The partner did not accept in time: the fulfillment is cancelled, its stock goes back,
        and the lines to route again without that location (None when the partner accepted, or
        it closed otherwise, before the order was locked: that outcome stands)."""
        f = self._fulfillment(fulfillment_id)
        if f.location_type != "dropship":
            raise RuleViolation("only a partner's (dropship) fulfillment waits for an accept")
        if f.status is not F.RESERVED:
            return None
        self._close(f, F.CANCELLED, "withdraw it", WITHDRAWN + reason)
        return None if self.ended else dict(f.lines)

    # Ending

    def settle(self) -> None:
        """Move the order to the status its fulfillments now imply, and say so."""
        target = status_after([f.status for f in self.fulfillments], self.method)
        if target is None or target is self.status or self.ended:
            return
        self._become(target)
        if target is O.COMPLETED:
            self._record(OrderCompleted(order_id=self.order_id))
        else:
            self._record(OrderConfirmed(order_id=self.order_id, status=target))

    def reject(self, reason: str) -> None:
        """No location can serve the order: it ends, and whatever it holds goes back."""
        self._release(F.CANCELLED, f"order rejected: {reason}")
        self._become(O.REJECTED, reason)
        self._record(OrderRejected(order_id=self.order_id, reason=reason))

    def cancel(self, reason: str) -> bool:
        """Cancel before anything left a location: every held unit goes back."""
        if self.status is O.CANCELLED:
            return False
        if self.ended:
            raise RuleViolation(f"the order is already {self.status.value}")
        if any(f.status in DONE for f in self.fulfillments):
            raise RuleViolation(
                "part of the order has already shipped or been collected; return it instead"
            )
        self._release(F.CANCELLED, reason)
        self._become(O.CANCELLED, reason)
        self._record(OrderCancelled(order_id=self.order_id, reason=reason))
        return True

    def expire(self, reason: str) -> None:
        if self.ended:
            return
        self._release(F.EXPIRED, reason)
        self._become(O.EXPIRED, reason)
        self._record(OrderExpired(order_id=self.order_id, reason=reason))

    def cancel_lines(self, cancellation_id: str, lines: Mapping[str, int], reason: str) -> Money:
        """Cancel some units before they leave: their stock goes back and they are refunded
        at what they were paid (the same per-unit rule as returns). Cancelling the last units
        cancels the order."""
        if cancellation_id in self.cancellations:
            return self._money(self.cancellations[cancellation_id])
        if self.ended:
            raise RuleViolation(f"the order is already {self.status.value}")
        refund = 0
        for sku, quantity in sorted(lines.items()):
            line = self.lines.get(sku)
            if line is None:
                raise InvalidChange(f"{sku} is not part of order {self.order_id}")
            holding = [f for f in reversed(self.fulfillments) if f.status in HOLDING]
            if any(f.backorder and sku in f.lines for f in holding):
                # Inventory holds a promise whole: a pre-order is cancelled as a whole order.
                raise RuleViolation(
                    f"{sku} is promised from incoming stock; cancel the whole order instead"
                )
            cancellable = sum(f.lines.get(sku, 0) for f in holding)
            if quantity > cancellable:
                raise RuleViolation(
                    f"only {cancellable} of {sku} can still be cancelled; the rest has left or "
                    "been cancelled: return it instead"
                )
            try:
                refund += refund_of_units(line.unit_net_prices, line.given_back, quantity)
            except RefundError as exc:
                raise InvalidChange(f"{sku}: {exc}") from None
            line.cancelled_quantity += quantity
            left = quantity
            for f in holding:  # the newest fulfillments give their units back first
                take = min(left, f.lines.get(sku, 0))
                if take:
                    self._give_back(f, sku, take, reason)
                    left -= take
        amount = self._money(refund)
        self.refunded += refund
        self.cancellations[cancellation_id] = refund
        self._record(
            OrderLinesCancelled(
                order_id=self.order_id,
                cancellation_id=cancellation_id,
                lines=stock_lines(lines),
                refund=amount,
                reason=reason,
            )
        )
        self._record(
            RefundIssued(order_id=self.order_id, cancellation_id=cancellation_id, amount=amount)
        )
        if all(line.cancelled_quantity >= line.quantity for line in self.lines.values()):
            self._become(O.CANCELLED, reason)
            self._record(OrderCancelled(order_id=self.order_id, reason=reason))
        else:
            self.settle()
        return amount

    # Returns

    def take_back(
        self,
        return_id: str,
        store_id: str,
        lines: Sequence[tuple[str, int, ItemCondition]],
        reason: str,
    ) -> TakenBack:
        """Units back in a store: refund exactly what they were paid; restock resellable ones."""
        if self.status is not O.COMPLETED:
            raise RuleViolation(
                "only a collected or delivered order can be returned; "
                f"this one is {self.status.value}"
            )
        returned: dict[str, int] = {}
        restock: dict[str, int] = {}
        taken: list[ReturnLine] = []
        for sku, quantity, condition in lines:
            sold = self.lines.get(sku)
            if sold is None:
                raise InvalidChange(f"{sku} is not part of order {self.order_id}")
            already = sold.given_back + returned.get(sku, 0)
            try:
                refund = refund_of_units(sold.unit_net_prices, already, quantity)
            except RefundError as exc:
                raise InvalidChange(f"{sku}: {exc}") from None
            returned[sku] = returned.get(sku, 0) + quantity
            if condition is ItemCondition.RESELLABLE:
                restock[sku] = restock.get(sku, 0) + quantity
            taken.append(
                ReturnLine(
                    sku=sku, quantity=quantity, condition=condition, refund=self._money(refund)
                )
            )
        for sku, quantity in returned.items():
            self.lines[sku].returned_quantity += quantity
        total = sum(line.refund.amount for line in taken)
        self.refunded += total
        if restock:
            self._record(
                RestockReturn(
                    order_id=self.order_id,
                    return_id=return_id,
                    location_id=store_id,
                    lines=stock_lines(restock),
                )
            )
        self._record(
            ReturnAccepted(
                order_id=self.order_id, return_id=return_id, store_id=store_id, lines=tuple(taken)
            )
        )
        self._record(
            RefundIssued(order_id=self.order_id, return_id=return_id, amount=self._money(total))
        )
        return TakenBack(return_id, store_id, reason, tuple(taken), self._money(total))

    # Inside

    def _record(self, message: Message) -> None:
        self.messages.append(message)

    def _money(self, amount: int) -> Money:
        return Money(amount=amount, currency=self.currency)

    def _fulfillment(self, fulfillment_id: str) -> Fulfillment:
        f = self.fulfillment(fulfillment_id)
        if f is None:
            raise InvalidChange(
                f"fulfillment {fulfillment_id} is not part of order {self.order_id}"
            )
        return f

    @staticmethod
    def _step(
        f: Fulfillment, target: FulfillmentStatus, what: str, reason: str | None = None
    ) -> bool:
        try:
            return f.step(target, what, reason)
        except IllegalTransition as exc:
            raise RuleViolation(str(exc)) from None

    def _become(self, target: OrderStatus, reason: str | None = None) -> None:
        if target not in ORDER_TRANSITIONS[self.status]:
            raise IllegalTransition(
                f"an order cannot go from {self.status.value} to {target.value}"
            )
        self.status = target
        self.status_reason = reason

    def _take_over(self, new: Fulfillment) -> None:
        """The new pickup store's reservation holds: only now let the old ones go."""
        for old_id in new.replaces:
            old = self.fulfillment(old_id)
            if old is not None and old.status in HOLDING:
                self._close(
                    old, F.CANCELLED, "move the pickup", f"pickup moved to {new.pickup_store_id}"
                )
        previous, self.store_id = self.store_id, new.pickup_store_id
        self._record(
            PickupStoreChanged(
                order_id=self.order_id,
                from_store_id=previous,
                to_store_id=new.pickup_store_id or "",
                fulfillment_id=new.fulfillment_id,
            )
        )

    def _give_back(self, f: Fulfillment, sku: str, units: int, reason: str) -> None:
        """Units of one fulfillment go back: all of it (cancelled) or part (it goes on smaller)."""
        if units == sum(f.lines.values()):
            self._close(f, F.CANCELLED, "cancel it", reason)
            return
        f.lines[sku] -= units
        if not f.lines[sku]:
            del f.lines[sku]
        self._record(
            ReleaseStock(
                order_id=self.order_id,
                reservation_id=f.fulfillment_id,
                reason=reason,
                lines=(StockLine(sku=sku, quantity=units),),
            )
        )

    def _release(self, to: FulfillmentStatus, reason: str) -> None:
        """Close every fulfillment still holding stock and give that stock back."""
        for f in self.fulfillments:
            if f.status in HOLDING:
                self._close(f, to, "release it", reason)

    def _close(self, f: Fulfillment, to: FulfillmentStatus, what: str, reason: str) -> None:
        """Close a fulfillment that holds stock and give the stock back. Every way to cancel one
        comes here, so the store or partner it was assigned to always hears that it stops."""
        f.step(to, what, reason)
        # A client's cancel reason may run to 500 characters; the command to inventory takes 200.
        self._record(
            ReleaseStock(
                order_id=self.order_id, reservation_id=f.fulfillment_id, reason=reason[:200]
            )
        )
        if to is F.CANCELLED:
            self._record(
                FulfillmentCancelled(
                    order_id=self.order_id,
                    fulfillment_id=f.fulfillment_id,
                    location_id=f.location_id,
                    partner_id=f.partner_id,
                    reason=reason,
                )
            )
