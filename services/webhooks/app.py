"""Composition of the webhooks service: `uvicorn services.webhooks.app:app`.

A service of its own, not part of the gateway: it consumes Kafka (the gateway is HTTP only), and
its failures and scaling are its own. A partner's endpoint that is slow or down ties up sockets
and retries for a day; none of that may touch the latency of the API every channel sells
through, and the sender scales with the number of endpoints, not with API traffic.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI

from services.contracts import topics
from services.infrastructure.service import PeriodicJob, Runtime, create_service_app
from services.webhooks import api, consumers, handlers
from services.webhooks.sender import AddressGuard, Sender
from services.webhooks.settings import WebhooksSettings


def create_app(settings: WebhooksSettings | None = None) -> FastAPI:
    settings = settings or WebhooksSettings()
    runtime = Runtime.build(settings)
    guard = AddressGuard(allow_private=settings.webhook_allow_private_addresses)

    def unit_of_work() -> handlers.WebhooksUnitOfWork:
        return handlers.WebhooksUnitOfWork(
            runtime.engine,
            source="/omniroute/webhooks",
            on_deliveries=lambda: sender.wake(),
        )

    sender = Sender(
        unit_of_work,
        guard,
        handlers.RetryPolicy(
            schedule=settings.webhook_retry_schedule_seconds,
            retry_for=timedelta(hours=settings.webhook_retry_hours),
            disable_after=timedelta(hours=settings.webhook_disable_after_hours),
        ),
        timeout=settings.webhook_timeout_seconds,
        concurrency=settings.webhook_concurrency,
        per_endpoint=settings.webhook_concurrency_per_endpoint,
        poll_interval=settings.webhook_poll_interval_seconds,
        lease_seconds=settings.webhook_lease_seconds,
    )

    @contextlib.asynccontextmanager
    async def sending(_: FastAPI) -> AsyncIterator[None]:
        sender.start()
        try:
            yield
        finally:
            await sender.stop()

    async def forget_old_deliveries() -> int:
        async with unit_of_work() as uow:
            return await handlers.forget_old_deliveries(uow, settings.webhook_log_retention_days)

    app = create_service_app(
        runtime,
        title="Omniroute webhooks",
        description="Signed webhooks for partners and integrators (the Standard Webhooks "
        "scheme): subscriptions per API key binding, deliveries made from the order events on "
        "orders.events.v1 (so only committed changes are sent), retried with growing pauses for "
        "a day, a delivery log, and replay. Internal API: the gateway fronts it.",
        routers=[api.router],
        kafka_routers=[consumers.build_router(settings, unit_of_work)],
        topics=topics.ALL_TOPICS,
        resources=[sending],
        jobs=[PeriodicJob("delivery-log-retention", 3600.0, forget_old_deliveries)],
    )
    app.state.settings = settings
    app.state.unit_of_work = unit_of_work
    app.state.address_guard = guard
    return app


def __getattr__(name: str) -> FastAPI:
    # Built on first access (by uvicorn), so importing this module needs no database or broker.
    if name == "app":
        return create_app()
    raise AttributeError(name)
