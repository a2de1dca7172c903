"""Composition of the inventory service: `uvicorn services.inventory.app:app`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.contracts import topics
from services.infrastructure.service import PeriodicJob, Runtime, create_service_app
from services.inventory import api, consumers, handlers
from services.inventory.db.availability import open_read_pool
from services.inventory.settings import InventorySettings


def create_app(settings: InventorySettings | None = None) -> FastAPI:
    settings = settings or InventorySettings()
    runtime = Runtime.build(settings)

    async def sweep() -> int:
        async with runtime.unit_of_work() as uow:
            return await handlers.expire_reservations(uow, settings.reservation_sweep_batch)

    @contextlib.asynccontextmanager
    async def read_pool(app: FastAPI) -> AsyncIterator[None]:
        async with open_read_pool(runtime.engine.url, settings.read_pool_size) as pool:
            app.state.read_pool = pool
            yield

    return create_service_app(
        runtime,
        title="Omniroute inventory",
        description="Locations, stock levels, reservations, incoming stock with the promises "
        "made against it, and the movement ledger. Internal API: "
        "the gateway fronts it. Consumes inventory.commands.v1; publishes inventory.events.v1 and "
        "inventory.availability.v1.",
        routers=[api.router],
        kafka_routers=[consumers.build_router(settings, runtime.unit_of_work)],
        topics=topics.ALL_TOPICS,
        jobs=[
            PeriodicJob("reservation-expiry", settings.reservation_sweep_interval_seconds, sweep)
        ],
        resources=[read_pool],
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn services.inventory.app:app` builds the app on first access, not at import, so
    # tests and tools can import this module without a database or broker.
    if name == "app":
        return create_app()
    raise AttributeError(name)
