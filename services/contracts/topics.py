"""Topic names and partition counts. Topics are created explicitly at start-up (never auto-created),
so every environment has the same partition counts, and a consumer group can scale up to them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    description: str
    config: dict[str, str] = field(default_factory=dict)


INVENTORY_COMMANDS = TopicSpec(
    "inventory.commands.v1",
    8,
    "Commands to inventory (ReserveStock, ReleaseStock, ...); key: order_id.",
)
INVENTORY_EVENTS = TopicSpec(
    "inventory.events.v1",
    8,
    "Outcomes of inventory commands and reservation expiries; key: order_id.",
)
INVENTORY_AVAILABILITY = TopicSpec(
    "inventory.availability.v1",
    8,
    "AvailabilityChanged per stock level, versioned; key: sku@location_id. LocationChanged per "
    "location; key: @location_id.",
    # Compacted: the newest message per key is kept for good, so a new consumer (a new orders
    # deployment) rebuilds its projection of every level and location from the topic alone.
    {"cleanup.policy": "compact"},
)
ORDERS_EVENTS = TopicSpec("orders.events.v1", 8, "Order lifecycle events; key: order_id.")
PRICING_EVENTS = TopicSpec(
    "pricing.events.v1", 4, "PriceChanged and PromotionChanged; key: sku or promotion id."
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    INVENTORY_COMMANDS,
    INVENTORY_EVENTS,
    INVENTORY_AVAILABILITY,
    ORDERS_EVENTS,
    PRICING_EVENTS,
)
