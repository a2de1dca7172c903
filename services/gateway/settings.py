"""The gateway's settings (environment variables with the `OMNIROUTE_` prefix)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.contracts.gateway import RateLimit, Role
from services.infrastructure.settings import ServiceSettings

DEFAULT_RATE_LIMITS = {
    Role.SHOP: RateLimit(requests_per_second=200, burst=400),
    Role.STORE: RateLimit(requests_per_second=50, burst=100),
    Role.PARTNER: RateLimit(requests_per_second=20, burst=50),
    Role.ADMIN: RateLimit(requests_per_second=100, burst=1000),
}


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    port: int = 8000

    inventory_url: str = "http://127.0.0.1:8001"
    pricing_url: str = "http://127.0.0.1:8002"
    orders_url: str = "http://127.0.0.1:8003"
    webhooks_url: str = "http://127.0.0.1:8005"
    downstream_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest a call to a service behind the gateway may take, retries included; "
        "past it the client gets a 503 naming the service.",
    )
    downstream_connect_timeout_seconds: float = Field(default=1.0, gt=0)
    downstream_retries: int = Field(
        default=2,
        ge=0,
        le=5,
        description="Extra attempts at a call that is safe to repeat (reads, absolute sets, and "
        "creations carrying an idempotency key) after a timeout or a 502/503/504.",
    )

    operations_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Longest the command center (`/v1/admin/operations/*`) waits for a service; "
        "one that does not answer in time is named as unavailable and the rest is answered.",
    )
    operations_outbox_delay_seconds: float = Field(
        default=5.0,
        ge=0,
        description="An outbox row unpublished for longer than this is an `outbox_backlog` "
        "exception (the relay publishes within a poll interval when all is well).",
    )

    bootstrap_admin_key: SecretStr | None = Field(
        default=None,
        description="OMNIROUTE_BOOTSTRAP_ADMIN_KEY: an admin key with exactly this value is "
        "created at start, so scripts can drive a fresh stack.",
    )
    rate_limits: dict[Role, RateLimit] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
        description='Per role, as JSON: {"shop": {"requests_per_second": 200, "burst": 400}}. '
        "Roles left out keep their default.",
    )
    failed_authentication_limit: RateLimit = Field(
        default=RateLimit(requests_per_second=5, burst=20),
        description="Requests with an API key that is not valid, per client address, as JSON.",
    )
    idempotency_retention_hours: float = Field(
        default=24.0, ge=24.0, description="How long a response is kept for replay."
    )
    availability_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long an availability answer is reused for shop keys (a product page may "
        "show stock this old; orders never rely on it). 0 asks inventory every time.",
    )
    api_key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a verified key is trusted without asking the database again; a "
        "revoked key stops working within this time.",
    )

    def rate_limit_for(self, role: Role) -> RateLimit:
        return self.rate_limits.get(role) or DEFAULT_RATE_LIMITS[role]
