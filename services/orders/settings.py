"""Orders' settings (environment variables with the `OMNIROUTE_` prefix)."""

from __future__ import annotations

from typing import Literal

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
    backorder: bool = False
    backorder_retry_interval_seconds: float = 30.0
    backorder_max_wait_seconds: float = 7 * 86400
