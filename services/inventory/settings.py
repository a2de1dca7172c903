"""Inventory's settings (environment variables with the `OMNIROUTE_` prefix)."""

from __future__ import annotations

from pydantic import Field

from services.infrastructure.settings import ServiceSettings


class InventorySettings(ServiceSettings):
    service_name: str = "inventory"
    port: int = 8001
    consumer_group: str = "inventory"
    reservation_sweep_interval_seconds: float = 1.0
    reservation_sweep_batch: int = 200
    read_pool_size: int = Field(
        default=4,
        ge=1,
        description="Connections kept open for availability reads (outside the unit of work's "
        "pool). A read holds one for a single statement; more than the database's cores buys "
        "nothing.",
    )
