"""Pricing's settings (environment variables with the `OMNIROUTE_` prefix)."""

from __future__ import annotations

from services.infrastructure.settings import ServiceSettings


class PricingSettings(ServiceSettings):
    service_name: str = "pricing"
    port: int = 8002
    quote_ttl_seconds: int = 900
