"""Inventory's contract: the commands it obeys, the events it publishes, and its HTTP schemas."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from services.contracts import topics
from services.contracts.base import Command, Contract, Event, Identifier, Instant, Sku, Text


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


class StockCorrection(StrEnum):
    NOT_IN_STOCK = "not_in_stock"
    DAMAGED = "damaged"


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


class ReserveStock(_Lines, Command):
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


class ReleaseStock(Command):
    """Give a held reservation's units back (cancel, re-route, uncollected pickup)."""

    TYPE: ClassVar[str] = "omniroute.inventory.release_stock.v1"
    TOPIC: ClassVar[str] = topics.INVENTORY_COMMANDS.name

    order_id: Identifier
    reservation_id: Identifier
    reason: str = Field(default="released", max_length=200)
    lines: tuple[StockLine, ...] | None = Field(
        default=None,
        max_length=200,
        description="Give back only these units (a partial cancel); the rest stays held. "
        "Without lines, the whole reservation (or promise).",
    )
    correction: StockCorrection | None = Field(
        default=None,
        description="A location turned the units down because they are not there: correct its "
        "stock too. `not_in_stock`: on_hand of those skus drops to what other reservations "
        "hold (nothing beyond them is available); `damaged`: the units are written off. Both "
        "are recorded in the movement ledger, so reconciliation still holds.",
    )


class PromiseStock(_Lines, Command):
    """Promise units of incoming stock at one location to a backordered fulfillment, first come
    first served and never beyond what is incoming there. When the stock is received, promises
    are reserved in the order they were made (a `StockReserved` with `reservation_id` =
    `promise_id`); a `ReleaseStock` for the promise gives the promised units back."""

    TYPE: ClassVar[str] = "omniroute.inventory.promise_stock.v1"
    TOPIC: ClassVar[str] = topics.INVENTORY_COMMANDS.name

    order_id: Identifier
    fulfillment_id: Identifier
    promise_id: Identifier
    location_id: Identifier


class CommitStock(Command):
    """The reserved units left the building (handed over or shipped): take them off on_hand."""

    TYPE: ClassVar[str] = "omniroute.inventory.commit_stock.v1"
    TOPIC: ClassVar[str] = topics.INVENTORY_COMMANDS.name

    order_id: Identifier
    reservation_id: Identifier


class RestockReturn(_Lines, Command):
    """Returned resellable units go back on the shelf of the location that took them back."""

    TYPE: ClassVar[str] = "omniroute.inventory.restock_return.v1"
    TOPIC: ClassVar[str] = topics.INVENTORY_COMMANDS.name

    order_id: Identifier
    return_id: Identifier
    location_id: Identifier


INVENTORY_COMMANDS: tuple[type[Command], ...] = (
    ReserveStock,
    ReleaseStock,
    CommitStock,
    RestockReturn,
    PromiseStock,
)


# Events (inventory.events.v1, key: order_id)


class _OrderEvent(Event):
    TOPIC: ClassVar[str] = topics.INVENTORY_EVENTS.name
    order_id: Identifier


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


class StockPromised(_OrderEvent):
    """Units of incoming stock are promised to a backordered fulfillment."""

    TYPE: ClassVar[str] = "omniroute.inventory.stock_promised.v1"
    fulfillment_id: Identifier
    promise_id: Identifier
    location_id: Identifier
    lines: tuple[StockLine, ...]
    promised_at: datetime = Field(
        description="When the last supply the promise draws on is expected."
    )


class StockPromiseRejected(_OrderEvent):
    """Not enough incoming stock at that location could still be promised."""

    TYPE: ClassVar[str] = "omniroute.inventory.stock_promise_rejected.v1"
    fulfillment_id: Identifier
    promise_id: Identifier
    location_id: Identifier
    detail: str
    shortages: tuple[Shortage, ...] = ()
    reason: RejectionReason = Field(
        default=RejectionReason.INSUFFICIENT_STOCK,
        description="`insufficient_stock`: not enough incoming there can still be promised; "
        "`unknown_location`; `reservation_closed`: this promise id was released (or used) "
        "before, so it can never hold stock.",
    )


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

    KEY: ClassVar[str] = "{sku}@{location_id}"


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

    KEY: ClassVar[str] = "@{location_id}"


# HTTP API (internal; the gateway fronts it)


def _partner_only_for_dropship(schema: dict[str, Any]) -> None:
    """The schema says what `LocationIn._partner_only_for_dropship` enforces."""
    schema["if"] = {"properties": {"type": {"const": LocationType.DROPSHIP.value}}}
    schema["then"] = {
        "properties": {"partner_id": {"not": {"type": "null"}}},
        "required": ["partner_id"],
    }
    schema["else"] = {"properties": {"partner_id": {"type": "null"}}}


class LocationIn(Contract):
    """Create or update a location (the id is chosen by the client). A dropship location names
    its `partner_id`; no other location has one."""

    model_config = ConfigDict(json_schema_extra=_partner_only_for_dropship)

    location_id: Identifier
    name: Text = Field(min_length=1, max_length=200)
    type: LocationType
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    capabilities: tuple[Capability, ...] = ()
    priority: int = Field(default=100, ge=0, le=10_000, description="Lower routes first.")
    ship_capacity: int = Field(
        default=0, ge=0, le=1_000_000, description="Parcels this location ships a day."
    )
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


def _sign_by_reason(schema: dict[str, Any]) -> None:
    """The schema says what inventory's domain (`adjust`) enforces: a receipt adds, a POS sale
    or damage removes, a count correction goes either way; never by 0."""
    schema["oneOf"] = [
        {
            "properties": {
                "reason": {"const": AdjustmentReason.RECEIPT.value},
                "delta": {"minimum": 1},
            }
        },
        {
            "properties": {
                "reason": {
                    "enum": [AdjustmentReason.POS_SALE.value, AdjustmentReason.DAMAGE.value]
                },
                "delta": {"maximum": -1},
            }
        },
        {
            "properties": {
                "reason": {"const": AdjustmentReason.COUNT_CORRECTION.value},
                "delta": {"not": {"const": 0}},
            }
        },
    ]


class StockAdjustmentIn(Contract):
    """A relative change at a location: a receipt adds, a POS sale or damage removes, a count
    correction goes either way."""

    model_config = ConfigDict(json_schema_extra=_sign_by_reason)

    sku: Sku
    delta: int = Field(ge=-10_000_000, le=10_000_000)
    reason: AdjustmentReason
    note: Text | None = Field(default=None, max_length=500)


class StockFeedItem(Contract):
    sku: Sku
    on_hand: int = Field(ge=0, le=10_000_000)


class StockFeedIn(Contract):
    """A partner's absolute stock feed. An older `sequence` than the last applied is ignored."""

    items: tuple[StockFeedItem, ...] = Field(max_length=10_000)
    sequence: int = Field(
        ge=0, le=2**53 - 1, description="At most 2^53 - 1, which every JSON parser reads exactly."
    )

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


class IncomingAvailability(Contract):
    """Stock on its way to a location: what of it can still be promised, and when."""

    location_id: Identifier
    quantity: int = Field(description="Units of this supply that can still be promised.")
    expected_at: datetime


class SkuAvailability(Contract):
    sku: Sku
    name: str | None = Field(
        default=None, description="The product's name, when the catalog has one for this sku."
    )
    total_available: int
    locations: tuple[LocationAvailability, ...]
    incoming: tuple[IncomingAvailability, ...] = Field(
        default=(), description="Supplies on their way with units left to promise, soonest first."
    )
    next_available_at: datetime | None = Field(
        default=None,
        description="When the soonest supply with units left to promise is expected; null when "
        "nothing is incoming.",
    )


class AvailabilityResponse(Contract):
    items: tuple[SkuAvailability, ...]


class SupplyIn(Contract):
    """A purchase order or transfer on its way to a location (upsert by `supply_id`)."""

    supply_id: Identifier
    location_id: Identifier
    sku: Sku
    quantity: int = Field(gt=0, le=10_000_000, description="Units expected in all.")
    expected_at: Instant


class ReceiveIn(Contract):
    """Units of a supply arrived; without `quantity`, everything still incoming."""

    quantity: int | None = Field(default=None, gt=0, le=10_000_000)


class SupplyStatus(StrEnum):
    INCOMING = "incoming"
    RECEIVED = "received"


class Supply(Contract):
    supply_id: Identifier
    location_id: Identifier
    sku: Sku
    quantity: int
    received: int
    promised: int = Field(description="Units promised to backorders and not reserved yet.")
    promisable: int = Field(description="Units still incoming that no backorder was promised.")
    expected_at: datetime
    status: SupplyStatus
    created_at: datetime
    updated_at: datetime


_LAT = r"-?(?:90(?:\.0+)?|[1-8]?[0-9](?:\.[0-9]+)?)"
_LON = r"-?(?:180(?:\.0+)?|(?:1[0-7][0-9]|[1-9]?[0-9])(?:\.[0-9]+)?)"
NEAR_PATTERN = f"^{_LAT},{_LON}$"
"""`LAT,LON` in decimal degrees, on the globe: every value it matches is a point."""
MAX_RADIUS_KM = 20_000


def _on_the_globe(text: str) -> str:
    if not re.fullmatch(f"{_LAT},{_LON}", text):
        raise ValueError(
            f"near must be LAT,LON in decimal degrees on the globe, such as 52.37,4.89; got {text!r}"
        )
    return text


# The pattern is what the schema says; the validator checks the same, with a readable answer.
Point = Annotated[
    str, AfterValidator(_on_the_globe), WithJsonSchema({"type": "string", "pattern": NEAR_PATTERN})
]


class NearQuery(BaseModel):
    """Where a shopper is, as query parameters: `near` and `radius_km`. Read from the whole
    query string, so not a Contract (the request's other parameters are not extra fields)."""

    model_config = ConfigDict(
        json_schema_extra={"dependentRequired": {"radius_km": ["near"]}}, frozen=True
    )

    near: Point | None = Field(default=None, description="LAT,LON", examples=["52.37,4.89"])
    radius_km: float | None = Field(default=None, gt=0, le=MAX_RADIUS_KM, examples=[50])

    @model_validator(mode="after")
    def _radius_needs_near(self) -> NearQuery:
        if self.radius_km is not None and self.near is None:
            raise ValueError("radius_km needs near=LAT,LON")
        return self

    @classmethod
    def openapi_parameter(cls) -> dict[str, Any]:
        """The pair as one OpenAPI query parameter, an object in form style, exploded (on the
        wire still `near=..&radius_km=..`): the one way OpenAPI can say that `radius_km`
        needs `near`."""
        schema = cls.model_json_schema()
        properties = {}
        for name, field in schema["properties"].items():
            # A query parameter is left out rather than sent as null.
            given = next(b for b in field.get("anyOf", [field]) if b.get("type") != "null")
            notes = {key: field[key] for key in ("description", "examples") if key in field}
            properties[name] = {**given, **notes}
        return {
            "name": "nearby",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": True,
            "description": "`near=LAT,LON` lists locations nearest first, with their distance; "
            "`radius_km`, which needs `near`, keeps those within it.",
            "schema": {
                "type": "object",
                "properties": properties,
                "dependentRequired": schema["dependentRequired"],
            },
        }


class PromiseStatus(StrEnum):
    PROMISED = "promised"
    RESERVED = "reserved"
    RELEASED = "released"


class PromiseDraw(Contract):
    """The units of one line a promise draws on one supply, and how many of them arrived (held
    for the promise until all of it is there)."""

    supply_id: Identifier
    sku: Sku
    quantity: int
    arrived: int


class StockPromise(Contract):
    """Incoming stock promised to a backordered fulfillment. `reserved` once every unit it draws
    on arrived (at once, with no draws, when the units were on the shelf already when it was
    asked for): then it is the held reservation `promise_id`."""

    promise_id: Identifier
    order_id: Identifier
    fulfillment_id: Identifier
    location_id: Identifier
    status: PromiseStatus
    lines: tuple[StockLine, ...]
    draws: tuple[PromiseDraw, ...]
    promised_at: datetime
    created_at: datetime
    updated_at: datetime


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


# The catalog: inventory is the sku master, and names each product


class ProductIn(Contract):
    """Name a product (create or update it by its sku)."""

    sku: Sku
    name: Text = Field(min_length=1, max_length=200)


class Product(ProductIn):
    updated_at: datetime


class ProductPage(Contract):
    """Products whose sku starts with the search text, or whose name has a word that does
    (case-insensitively), by sku."""

    items: tuple[Product, ...]


ProductSearch = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00]*$"),
    Field(
        description="The start of a sku, or of a word in a product's name; any case. Taken "
        "literally: `%`, `_` and `*` match only themselves.",
        examples=["tee"],
    ),
]
ProductPageSize = Annotated[int, Field(ge=1, le=50, description="At most this many products.")]
