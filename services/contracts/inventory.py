"""Inventory's contract: the commands it obeys, the events it publishes, and its HTTP schemas."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field, model_validator

from services.contracts import topics
from services.contracts.base import Contract, Event, Identifier, Sku


class LocationType(StrEnum):
    WAREHOUSE = "warehouse"
    STORE = "store"
    DROPSHIP = "dropship"


class Capability(StrEnum):
    SHIP = "ship"
    PICKUP = "pickup"
    RETURNS = "returns"


class ReservationStatus(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


class AdjustmentReason(StrEnum):
    RECEIPT = "receipt"
    POS_SALE = "pos_sale"
    COUNT_CORRECTION = "count_correction"
    DAMAGE = "damage"


Quantity = Annotated[int, Field(gt=0, le=100_000, description="Units, at least 1.")]


class StockLine(Contract):
    sku: Sku
    quantity: Quantity


def _unique_skus(lines: tuple[StockLine, ...]) -> tuple[StockLine, ...]:
    skus = [line.sku for line in lines]
    if len(skus) != len(set(skus)):
        raise ValueError("each sku may appear only once; add the quantities up instead")
    return lines


class _Lines(Contract):
    lines: tuple[StockLine, ...] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _check_lines(self) -> _Lines:
        _unique_skus(self.lines)
        return self


# Commands (inventory.commands.v1, key: order_id)


class ReserveStock(_Lines, Event):
    """Hold all lines of one fulfillment at one location, or none of them."""

    TYPE: ClassVar[str] = "omniroute.inventory.reserve_stock.v1"
    TOPIC: ClassVar[str] = topics.INVENTORY_COMMANDS.name

    order_id: Identifier
    fulfillment_id: Identifier
    reservation_id: Identifier
    location_id: Identifier
    hold_until: AwareDatetime | None = Field(
        default=None,
        description="When set (with a time zone, at most 7 days ahead), the hold expires by "
        "itself at this instant.",
    )

    @property
    def message_key(self) -> str:
        return self.order_id


class ReleaseStock(Event):
    """Give a held reservation's units back (cancel, re-route, uncollected pickup)."""

    TYPE: ClassVar[str] = "omniroute.inventory.release_stock.v1"
    TOPIC: ClassVar[str] = topics.INVENTORY_COMMANDS.name

    order_id: Identifier
    reservation_id: Identifier
    reason: str = Field(default="released", max_length=200)

    @property
    def message_key(self) -> str:
        return self.order_id


class CommitStock(Event):
    """The reserved units left the building (handed over or shipped): take them off on_hand."""

    TYPE: ClassVar[str] = "omniroute.inventory.commit_stock.v1"
    TOPIC: ClassVar[str] = topics.INVENTORY_COMMANDS.name

    order_id: Identifier
    reservation_id: Identifier

    @property
    def message_key(self) -> str:
        return self.order_id


class RestockReturn(_Lines, Event):
    """Returned resellable units go back on the shelf of the location that took them back."""

    TYPE: ClassVar[str] = "omniroute.inventory.restock_return.v1"
    TOPIC: ClassVar[str] = topics.INVENTORY_COMMANDS.name

    order_id: Identifier
    return_id: Identifier
    location_id: Identifier

    @property
    def message_key(self) -> str:
        return self.order_id


INVENTORY_COMMANDS: tuple[type[Event], ...] = (
    ReserveStock,
    ReleaseStock,
    CommitStock,
    RestockReturn,
)


# Events (inventory.events.v1, key: order_id)


class _OrderEvent(Event):
    TOPIC: ClassVar[str] = topics.INVENTORY_EVENTS.name
    order_id: Identifier

    @property
    def message_key(self) -> str:
        return self.order_id


class StockReserved(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.inventory.stock_reserved.v1"
    fulfillment_id: Identifier
    reservation_id: Identifier
    location_id: Identifier
    lines: tuple[StockLine, ...]
    hold_until: datetime | None = None


class Shortage(Contract):
    sku: Sku
    requested: int
    available: int


class RejectionReason(StrEnum):
    INSUFFICIENT_STOCK = "insufficient_stock"
    UNKNOWN_LOCATION = "unknown_location"
    UNKNOWN_SKU = "unknown_sku"
    RESERVATION_CLOSED = "reservation_closed"
    INVALID_HOLD = "invalid_hold"


class StockReservationRejected(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.inventory.stock_reservation_rejected.v1"
    fulfillment_id: Identifier
    reservation_id: Identifier
    location_id: Identifier
    reason: RejectionReason
    detail: str
    shortages: tuple[Shortage, ...] = ()


class StockReleased(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.inventory.stock_released.v1"
    reservation_id: Identifier
    location_id: Identifier | None
    lines: tuple[StockLine, ...]
    reason: str


class StockCommitted(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.inventory.stock_committed.v1"
    reservation_id: Identifier
    location_id: Identifier
    lines: tuple[StockLine, ...]


class StockCommitRejected(_OrderEvent):
    """CommitStock named a reservation that is not held (unknown, released or expired)."""

    TYPE: ClassVar[str] = "omniroute.inventory.stock_commit_rejected.v1"
    reservation_id: Identifier
    status: ReservationStatus | None
    detail: str


class StockRestocked(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.inventory.stock_restocked.v1"
    return_id: Identifier
    location_id: Identifier
    lines: tuple[StockLine, ...]


class ReservationExpired(_OrderEvent):
    TYPE: ClassVar[str] = "omniroute.inventory.reservation_expired.v1"
    fulfillment_id: Identifier
    reservation_id: Identifier
    location_id: Identifier
    lines: tuple[StockLine, ...]


# inventory.availability.v1, key: sku@location_id


class AvailabilityChanged(Event):
    """A stock level changed. `version` grows by one per change of that level: keep the newest."""

    TYPE: ClassVar[str] = "omniroute.inventory.availability_changed.v1"
    TOPIC: ClassVar[str] = topics.INVENTORY_AVAILABILITY.name

    sku: Sku
    location_id: Identifier
    location_type: LocationType
    on_hand: int
    reserved: int
    safety_stock: int
    available: int
    version: int
    changed_at: datetime

    @property
    def message_key(self) -> str:
        return f"{self.sku}@{self.location_id}"


class LocationChanged(Event):
    """A location was created or changed: the directory other services route with."""

    TYPE: ClassVar[str] = "omniroute.inventory.location_changed.v1"
    TOPIC: ClassVar[str] = topics.INVENTORY_AVAILABILITY.name

    location_id: Identifier
    name: str
    type: LocationType
    lat: float
    lon: float
    capabilities: tuple[Capability, ...]
    priority: int
    ship_capacity: int
    partner_id: Identifier | None
    changed_at: datetime

    @property
    def message_key(self) -> str:
        return f"@{self.location_id}"


# HTTP API (internal; the gateway fronts it)


class LocationIn(Contract):
    """Create or update a location (the id is chosen by the client)."""

    location_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    type: LocationType
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    capabilities: tuple[Capability, ...] = ()
    priority: int = Field(default=100, ge=0, le=10_000, description="Lower routes first.")
    ship_capacity: int = Field(default=0, ge=0, description="Parcels this location ships a day.")
    partner_id: Identifier | None = Field(
        default=None, description="The dropship partner operating this location."
    )

    @model_validator(mode="after")
    def _partner_only_for_dropship(self) -> LocationIn:
        if (self.type is LocationType.DROPSHIP) != (self.partner_id is not None):
            raise ValueError("partner_id is required for dropship locations and only for them")
        return self


class Location(LocationIn):
    created_at: datetime
    updated_at: datetime


class StockLevelIn(Contract):
    """Set an absolute stock level (admin set-up or a full count)."""

    location_id: Identifier
    sku: Sku
    on_hand: int = Field(ge=0, le=10_000_000)
    safety_stock: int | None = Field(default=None, ge=0, le=10_000_000)


class StockLevel(Contract):
    location_id: Identifier
    sku: Sku
    on_hand: int
    reserved: int
    safety_stock: int
    available: int
    version: int
    updated_at: datetime


class StockAdjustmentIn(Contract):
    """A relative change at a location: a receipt adds, a POS sale or damage removes, a count
    correction goes either way."""

    sku: Sku
    delta: int = Field(ge=-10_000_000, le=10_000_000)
    reason: AdjustmentReason
    note: str | None = Field(default=None, max_length=500)


class StockFeedItem(Contract):
    sku: Sku
    on_hand: int = Field(ge=0, le=10_000_000)


class StockFeedIn(Contract):
    """A partner's absolute stock feed. An older `sequence` than the last applied is ignored."""

    items: tuple[StockFeedItem, ...] = Field(max_length=10_000)
    sequence: int = Field(ge=0)

    @model_validator(mode="after")
    def _unique(self) -> StockFeedIn:
        skus = [item.sku for item in self.items]
        if len(skus) != len(set(skus)):
            raise ValueError("each sku may appear only once in a feed")
        return self


class StockFeedResult(Contract):
    applied: bool
    sequence: int
    last_sequence: int | None
    levels: tuple[StockLevel, ...] = ()
    shortfalls: tuple[Shortage, ...] = Field(
        default=(),
        description="Skus the partner reported below what is already reserved there: on_hand is "
        "kept at the reserved quantity so no reservation is lost.",
    )


class LocationAvailability(Contract):
    location_id: Identifier
    name: str
    type: LocationType
    available: int
    on_hand: int
    reserved: int
    distance_km: float | None


class SkuAvailability(Contract):
    sku: Sku
    total_available: int
    locations: tuple[LocationAvailability, ...]


class AvailabilityResponse(Contract):
    items: tuple[SkuAvailability, ...]


class Reservation(Contract):
    reservation_id: Identifier
    order_id: Identifier
    fulfillment_id: Identifier | None
    location_id: Identifier | None
    status: ReservationStatus
    lines: tuple[StockLine, ...]
    hold_until: datetime | None
    created_at: datetime
    updated_at: datetime


class Reconciliation(Contract):
    """Whether the movement ledger adds up to every stock level."""

    levels_checked: int
    mismatches: tuple[str, ...]
