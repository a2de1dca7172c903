"""Orders' contract: order intake, fulfillments, routing decisions, returns, and its events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from services.contracts import topics
from services.contracts.base import Contract, Event, Identifier, Instant, Sku, Text
from services.contracts.inventory import LocationType, Quantity, StockLine
from services.contracts.pricing import Channel, Money

# No spaces or control characters, spelled out: `\s` means more in pydantic's regex engine than
# in JSON Schema's (U+0085), so the document would promise addresses the API refuses.
Email = Annotated[
    str,
    StringConstraints(
        pattern=r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+\.[^@\x00-\x20\x7f]+$", max_length=254
    ),
]


class FulfillmentMethod(StrEnum):
    DELIVERY = "delivery"
    PICKUP = "pickup"
    RESERVE = "reserve"


class OrderStatus(StrEnum):
    PENDING = "pending"
    BACKORDERED = "backordered"
    CONFIRMED = "confirmed"
    RESERVED = "reserved"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class FulfillmentStatus(StrEnum):
    PENDING = "pending"
    RESERVED = "reserved"
    ACCEPTED = "accepted"
    READY_FOR_PICKUP = "ready_for_pickup"
    SHIPPED = "shipped"
    PICKED_UP = "picked_up"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ItemCondition(StrEnum):
    RESELLABLE = "resellable"
    DAMAGED = "damaged"


# Intake


class Customer(Contract):
    id: Identifier
    email: Email


class Address(Contract):
    line1: Text = Field(min_length=1, max_length=200)
    line2: Text | None = Field(default=None, max_length=200)
    postal_code: Text = Field(min_length=1, max_length=20)
    city: Text = Field(min_length=1, max_length=100)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


_FIELDS_OF_METHOD: dict[FulfillmentMethod, tuple[frozenset[str], frozenset[str]]] = {
    FulfillmentMethod.DELIVERY: (frozenset({"address"}), frozenset({"store_id", "hold_until"})),
    FulfillmentMethod.PICKUP: (frozenset({"store_id"}), frozenset({"hold_until"})),
    FulfillmentMethod.RESERVE: (frozenset({"store_id", "hold_until"}), frozenset()),
}
"""Per method, the fields a fulfillment request needs and those it may not have."""


def _fields_by_method(schema: dict[str, Any]) -> None:
    """The schema says what `FulfillmentRequest._fits_method` enforces, one branch per method."""
    schema["oneOf"] = [
        {
            "properties": {
                "method": {"const": method.value},
                **{name: {"not": {"type": "null"}} for name in sorted(needed)},
                **{name: {"type": "null"} for name in sorted(excluded)},
            },
            "required": sorted(needed),
        }
        for method, (needed, excluded) in _FIELDS_OF_METHOD.items()
    ]


class FulfillmentRequest(Contract):
    """`delivery` needs an `address`; `pickup` (click & collect) and `reserve` (click & reserve)
    need a `store_id`; `reserve` also a `hold_until`, at most 7 days ahead."""

    model_config = ConfigDict(json_schema_extra=_fields_by_method)

    method: FulfillmentMethod
    store_id: Identifier | None = None
    address: Address | None = None
    hold_until: Instant | None = None

    @model_validator(mode="after")
    def _fits_method(self) -> FulfillmentRequest:
        if self.method is FulfillmentMethod.DELIVERY:
            if self.address is None:
                raise ValueError("a delivery needs an address (with lat and lon)")
            if self.store_id is not None:
                raise ValueError("store_id is for pickup and reserve, not delivery")
        elif self.store_id is None:
            raise ValueError(f"{self.method.value} needs the store_id where the customer collects")
        if (self.method is FulfillmentMethod.RESERVE) != (self.hold_until is not None):
            raise ValueError("hold_until is required for reserve, and only for reserve")
        return self


class OrderLineIn(Contract):
    sku: Sku
    quantity: Quantity


class PlaceOrder(Contract):
    """An order for what a quote priced: the lines must be exactly the quote's."""

    quote_token: str = Field(min_length=10, max_length=20_000)
    customer: Customer
    fulfillment: FulfillmentRequest
    lines: tuple[OrderLineIn, ...] = Field(min_length=1, max_length=200)
    allow_backorder: bool = Field(
        default=False,
        description="When nothing is in stock for it now but incoming stock can cover it, accept "
        "the order as `backordered` (a pre-order) with a `promised_at`, instead of rejecting it.",
    )

    @model_validator(mode="after")
    def _unique(self) -> PlaceOrder:
        skus = [line.sku for line in self.lines]
        if len(skus) != len(set(skus)):
            raise ValueError("each sku may appear only once; add the quantities up instead")
        return self


class OrderAccepted(Contract):
    """The receipt for an order: always `pending`. Routing and the reservation follow within
    moments; the order's own status (`GET /orders/{id}`) tells how it went."""

    order_id: Identifier
    status: OrderStatus = Field(examples=["pending"])


# Views


class OrderLine(Contract):
    """The price snapshot: what each unit was charged, from the quote token."""

    sku: Sku
    quantity: int
    unit_price: Money
    unit_net_prices: tuple[int, ...]
    total: Money
    returned_quantity: int = 0
    cancelled_quantity: int = Field(default=0, description="Units cancelled before they left.")


class Fulfillment(Contract):
    fulfillment_id: Identifier
    order_id: Identifier
    location_id: Identifier
    location_type: LocationType
    method: FulfillmentMethod
    status: FulfillmentStatus
    lines: tuple[StockLine, ...]
    pickup_store_id: Identifier | None = None
    partner_id: Identifier | None = Field(
        default=None, description="The dropship partner whose location serves it, if any."
    )
    transfer: bool = False
    backorder: bool = Field(
        default=False,
        description="It waits (`pending`) for incoming stock promised to it; reserved on receipt.",
    )
    shipment_id: Identifier | None = Field(
        default=None,
        description="The parcel it ships in: fulfillments of one buyer's orders to one address "
        "share one (consolidation), and shipping one ships them all.",
    )
    hold_until: datetime | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    status_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class Totals(Contract):
    subtotal: Money
    discount_total: Money
    total: Money
    refunded: Money


class Order(Contract):
    order_id: Identifier
    status: OrderStatus
    status_reason: str | None = None
    channel: Channel
    customer: Customer
    quote_id: Identifier
    method: FulfillmentMethod
    lines: tuple[OrderLine, ...]
    fulfillments: tuple[Fulfillment, ...]
    totals: Totals
    promised_at: datetime | None = Field(
        default=None,
        description="A backordered order: when the incoming stock promised to it is expected.",
    )
    consolidated_with: tuple[Identifier, ...] = Field(
        default=(),
        description="Earlier orders of the same buyer and address whose parcel this one joined.",
    )
    created_at: datetime
    updated_at: datetime


class RoutingCandidate(Contract):
    location_id: Identifier
    type: LocationType
    distance_km: float | None
    score: float | None
    eligible: bool
    covers: dict[str, int]
    reasons: tuple[str, ...]


class RoutingChoice(Contract):
    location_id: Identifier
    location_type: LocationType
    method: FulfillmentMethod
    lines: dict[str, int]
    pickup_store_id: Identifier | None = None
    transfer: bool = False


class RoutingAttempt(Contract):
    attempt: int
    at: datetime
    trigger: str
    lines: dict[str, int]
    excluded: tuple[Identifier, ...]
    candidates: tuple[RoutingCandidate, ...]
    rules_applied: tuple[str, ...]
    chosen: tuple[RoutingChoice, ...]
    explanation: str
    rejected_reason: str | None = None
    alternatives: tuple[Identifier, ...] = ()
    stock_checked_with_inventory: bool = Field(
        default=False,
        description="Orders' projection of availability could not place these lines, so routing "
        "asked inventory for the current levels and routed with those.",
    )


class RoutingDecision(Contract):
    """Every routing of an order: the first, and each re-route after a failure."""

    order_id: Identifier
    attempts: tuple[RoutingAttempt, ...]


QueueCursor = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,16}~[A-Za-z0-9][A-Za-z0-9._\-:]{0,63}$"),
    Field(
        description="A place in a work queue, the `next_cursor` of a page: the page after it "
        "starts behind that place (a creation time in microseconds since 1970, `~`, a "
        "fulfillment id).",
        examples=["1795256100000000~ful_8c1d2e3f4a5b6c7d8e9f"],
    ),
]


class FulfillmentPage(Contract):
    items: tuple[Fulfillment, ...]
    next_cursor: QueueCursor | None


class ShipIn(Contract):
    carrier: Text = Field(min_length=1, max_length=100)
    tracking_number: Text = Field(min_length=1, max_length=100)


class RejectCode(StrEnum):
    """Why a location turns a fulfillment down. `not_in_stock` corrects its stock of those skus
    down to what other reservations hold; `damaged` writes the units off; either way the
    re-route never picks that location again for those lines."""

    NOT_IN_STOCK = "not_in_stock"
    DAMAGED = "damaged"
    NO_CAPACITY = "no_capacity"
    OTHER = "other"


class RejectIn(Contract):
    reason: Text = Field(min_length=1, max_length=500)
    code: RejectCode = RejectCode.OTHER


class PickupStoreIn(Contract):
    """Collect at another store: routed again there; the old reservation is released only once
    the new one holds."""

    store_id: Identifier


class CancelLineIn(Contract):
    sku: Sku
    quantity: Quantity


class CancelIn(Contract):
    """Without `lines`, the whole order; with them, only those units (before they are shipped
    or handed over), refunded at what they were paid. Cancelling the last units cancels the
    order."""

    reason: Text = Field(default="cancelled by request", min_length=1, max_length=500)
    lines: tuple[CancelLineIn, ...] | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique(self) -> CancelIn:
        skus = [line.sku for line in self.lines or ()]
        if len(skus) != len(set(skus)):
            raise ValueError("each sku may appear only once; add the quantities up instead")
        return self


class OrderAfterCancel(Order):
    """The order after a cancel, with what the cancelled units refund (null for a whole-order
    cancel of an order nothing was charged back for yet)."""

    refund: Money | None = None


class ReturnLineIn(Contract):
    sku: Sku
    quantity: Quantity
    condition: ItemCondition


class ReturnIn(Contract):
    order_id: Identifier
    store_id: Identifier
    lines: tuple[ReturnLineIn, ...] = Field(min_length=1, max_length=200)
    reason: Text = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _unique(self) -> ReturnIn:
        keys = [(line.sku, line.condition) for line in self.lines]
        if len(keys) != len(set(keys)):
            raise ValueError("each sku and condition may appear only once")
        return self


class ReturnLine(Contract):
    sku: Sku
    quantity: int
    condition: ItemCondition
    refund: Money


class Return(Contract):
    return_id: Identifier
    order_id: Identifier
    store_id: Identifier
    refund: Money
    lines: tuple[ReturnLine, ...]
    reason: str
    created_at: datetime


class ReturnPreview(Contract):
    """What a return would refund if it were taken now, by the same rules as the return itself;
    nothing is stored."""

    order_id: Identifier
    store_id: Identifier
    refund: Money
    lines: tuple[ReturnLine, ...]


# Events (orders.events.v1, key: order_id)


class _OrderEvent(Event):
    TOPIC: ClassVar[str] = topics.ORDERS_EVENTS.name
    order_id: Identifier


class OrderPlaced(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.order_placed.v1"
    channel: Channel
    customer_id: Identifier
    quote_id: Identifier
    method: FulfillmentMethod
    lines: tuple[StockLine, ...]
    total: Money


class FulfillmentAssigned(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.fulfillment_assigned.v1"
    fulfillment_id: Identifier
    location_id: Identifier
    location_type: LocationType
    method: FulfillmentMethod
    lines: tuple[StockLine, ...]
    attempt: int
    backorder: bool = Field(
        default=False, description="It waits for incoming stock promised to it (a pre-order)."
    )
    partner_id: Identifier | None = Field(
        default=None, description="The dropship partner whose location serves it, if any."
    )


class FulfillmentCancelled(_OrderEvent):
    """An assigned fulfillment will not be served any more: the order was cancelled or rejected,
    its last units were cancelled, the pickup moved to another store, or the partner did not
    accept it in time (withdrawn; its lines are routed again elsewhere). Its stock goes back."""

    TYPE: ClassVar[str] = "omniroute.orders.fulfillment_cancelled.v1"
    fulfillment_id: Identifier
    location_id: Identifier
    partner_id: Identifier | None = Field(
        default=None, description="The dropship partner whose location was to serve it, if any."
    )
    reason: str


class PickupStoreChanged(_OrderEvent):
    """The customer collects at another store: its reservation holds, the old one is released."""

    TYPE: ClassVar[str] = "omniroute.orders.pickup_store_changed.v1"
    from_store_id: Identifier | None
    to_store_id: Identifier
    fulfillment_id: Identifier


class OrderBackordered(_OrderEvent):
    """Nothing was in stock for the order, so it waits for incoming stock promised to it."""

    TYPE: ClassVar[str] = "omniroute.orders.order_backordered.v1"
    promised_at: datetime


class OrderConfirmed(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.order_confirmed.v1"
    status: OrderStatus


class OrderRejected(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.order_rejected.v1"
    reason: str


class FulfillmentAccepted(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.fulfillment_accepted.v1"
    fulfillment_id: Identifier
    location_id: Identifier


class FulfillmentReady(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.fulfillment_ready.v1"
    fulfillment_id: Identifier
    location_id: Identifier


class FulfillmentShipped(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.fulfillment_shipped.v1"
    fulfillment_id: Identifier
    location_id: Identifier
    carrier: str
    tracking_number: str


class FulfillmentPickedUp(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.fulfillment_picked_up.v1"
    fulfillment_id: Identifier
    location_id: Identifier


class FulfillmentRejected(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.fulfillment_rejected.v1"
    fulfillment_id: Identifier
    location_id: Identifier
    reason: str


class OrderCompleted(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.order_completed.v1"


class OrderCancelled(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.order_cancelled.v1"
    reason: str


class OrderExpired(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.order_expired.v1"
    reason: str


class ReturnAccepted(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.orders.return_accepted.v1"
    return_id: Identifier
    store_id: Identifier
    lines: tuple[ReturnLine, ...]


class RefundIssued(_OrderEvent):
    """Money back: for a return (`return_id`) or for units cancelled before they left
    (`cancellation_id`)."""

    TYPE: ClassVar[str] = "omniroute.orders.refund_issued.v1"
    return_id: Identifier | None = None
    cancellation_id: Identifier | None = None
    amount: Money


class OrderLinesCancelled(_OrderEvent):
    """Some units of the order were cancelled before they left; the rest goes on."""

    TYPE: ClassVar[str] = "omniroute.orders.order_lines_cancelled.v1"
    cancellation_id: Identifier
    lines: tuple[StockLine, ...]
    refund: Money
    reason: str
