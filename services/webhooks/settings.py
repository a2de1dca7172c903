"""Webhooks' settings (environment variables with the `OMNIROUTE_` prefix)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from services.infrastructure.settings import ServiceSettings


class WebhooksSettings(ServiceSettings):
    service_name: str = "webhooks"
    port: int = 8005
    consumer_group: str = "webhooks"

    webhook_allow_private_addresses: bool = Field(
        default=False,
        description="OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES: let webhooks reach private and "
        "loopback addresses (local development; `make run` sets it). Link-local and cloud "
        "metadata addresses are refused whatever this says.",
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=30, description="How long an endpoint has to answer a delivery."
    )
    webhook_retry_schedule_seconds: tuple[float, ...] = Field(
        default=(5, 60, 300, 1800, 7200, 18000, 36000),
        min_length=1,
        description="Pauses before each retry of a failed delivery (the last one repeats), each "
        "with +-20% jitter, as JSON.",
    )
    webhook_retry_hours: float = Field(
        default=24.0,
        gt=0,
        description="A delivery is retried until this long after it was first sent; then it is "
        "`failed`, kept in the log, and sent again only on request.",
    )
    webhook_disable_after_hours: float = Field(
        default=24.0,
        gt=0,
        description="A webhook whose every delivery has failed for this long is disabled.",
    )
    webhook_concurrency: int = Field(
        default=64, ge=1, description="Deliveries in flight at once in this process."
    )
    webhook_concurrency_per_endpoint: int = Field(
        default=4,
        ge=1,
        description="Deliveries in flight at once to one webhook, so a slow or dead endpoint "
        "never takes the slots the others need.",
    )
    webhook_poll_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often due retries are looked for."
    )
    webhook_log_retention_days: float = Field(
        default=14.0,
        gt=0,
        description="How long delivered and failed deliveries stay in the log (and can be sent "
        "again); pending ones stay until they are delivered or fail.",
    )
    webhook_lease_seconds: float = Field(
        default=30.0,
        description="How long a delivery being sent is this process's: if the process dies "
        "mid-send, another one sends it again after this long. Longer than the timeout.",
    )

    @model_validator(mode="after")
    def _lease_outlives_an_attempt(self) -> Self:
        if self.webhook_lease_seconds < self.webhook_timeout_seconds + 1:
            raise ValueError(
                "webhook_lease_seconds must be at least webhook_timeout_seconds + 1, or a "
                "delivery still being sent could be taken and sent again by another process"
            )
        return self
