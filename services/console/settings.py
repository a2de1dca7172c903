"""The console's settings (environment variables with the `OMNIROUTE_` prefix)."""

from __future__ import annotations

from pydantic import Field

from services.infrastructure.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    service_name: str = "console"
    port: int = 8004
    gateway_url: str = Field(
        default="http://127.0.0.1:8000", description="The gateway whose /v1 API the console uses."
    )
    gateway_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    console_session_minutes: float = Field(
        default=480, gt=0, le=7 * 24 * 60, description="How long a sign-in lasts (a shift)."
    )
    console_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How often live pages look for new work and numbers, and a revoked key is "
        "noticed.",
    )
