"""Orders' settings (environment variables with the `OMNIROUTE_` prefix)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.infrastructure.settings import ServiceSettings


class OrdersSettings(ServiceSettings):
    service_name: str = "orders"
    port: int = 8003
    consumer_group: str = "orders"
    projection_group: str = "orders-projection"
    max_routing_attempts: int = 4
    max_split_locations: int = 3
    pickup_fallback: Literal["transfer", "reject"] = "transfer"
    pickup_window_seconds: float = 72 * 3600
    expiry_sweep_interval_seconds: float = 1.0
    # A partner that has not accepted a dropship fulfillment this long after its stock was
    # reserved loses it: the fulfillment is withdrawn and its lines routed elsewhere. A float,
    # so a test can wait a second rather than a minute.
    partner_accept_minutes: float = Field(default=60, gt=0, le=7 * 24 * 60)
    # A delivery joins the unshipped parcel of the same buyer's earlier order to the same
    # address, placed within this many minutes (consolidation).
    consolidation_window_minutes: float = Field(default=240, ge=0, le=7 * 24 * 60)
    # Inventory is the authority on stock: when the projection cannot place an order, routing
    # asks inventory for the current levels before it rejects (handlers/planning.py).
    inventory_url: str = "http://127.0.0.1:8001"
    inventory_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
