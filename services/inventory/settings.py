"""Inventory's settings (environment variables with the `OMNIROUTE_` prefix)."""

from __future__ import annotations

from services.infrastructure.settings import ServiceSettings


class InventorySettings(ServiceSettings):
    service_name: str = "inventory"
    port: int = 8001
    consumer_group: str = "inventory"
    reservation_sweep_interval_seconds: float = 1.0
    reservation_sweep_batch: int = 200
