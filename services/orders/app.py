"""Composition of the orders service: `uvicorn services.orders.app:app`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import cast

from fastapi import FastAPI

from services.contracts import topics
from services.infrastructure.quote_tokens import SigningKeys
from services.infrastructure.service import PeriodicJob, Runtime, create_service_app
from services.orders import api, consumers, handlers, routing
from services.orders.inventory_client import InventoryClient
from services.orders.repository import OrdersUnitOfWork
from services.orders.settings import OrdersSettings


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings()
    runtime = Runtime.build(settings, unit_of_work_class=OrdersUnitOfWork)
    unit_of_work = cast(Callable[[], OrdersUnitOfWork], runtime.unit_of_work)
    inventory = InventoryClient(settings.inventory_url, timeout=settings.inventory_timeout_seconds)
    policy = handlers.Policy(
        keys=SigningKeys.parse(settings.quote_signing_keys),
        rules=routing.RoutingRules(
            max_locations=settings.max_split_locations, pickup_fallback=settings.pickup_fallback
        ),
        max_attempts=settings.max_routing_attempts,
        pickup_window=timedelta(seconds=settings.pickup_window_seconds),
        stock=inventory,
        consolidation_window=timedelta(minutes=settings.consolidation_window_minutes),
        partner_accept_window=timedelta(minutes=settings.partner_accept_minutes),
    )

    @contextlib.asynccontextmanager
    async def inventory_client(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await inventory.aclose()

    async def sweep() -> int:
        async with unit_of_work() as uow:
            return await handlers.expire_overdue_pickups(uow)

    async def partner_sweep() -> int:
        return await handlers.withdraw_unaccepted_fulfillments(unit_of_work, policy)

    app = create_service_app(
        runtime,
        title="Omniroute orders",
        description="Order intake, explainable routing to warehouses, stores and dropship "
        "partners, and the fulfillment saga. Internal API: the gateway fronts it. Consumes "
        "inventory.events.v1 and inventory.availability.v1; publishes orders.events.v1 and "
        "commands on inventory.commands.v1. Asks inventory's API for current stock only when "
        "its projection cannot place an order, and for incoming stock to promise to a "
        "backorder.",
        routers=[api.router],
        kafka_routers=[consumers.build_router(settings, unit_of_work, policy)],
        topics=topics.ALL_TOPICS,
        resources=[inventory_client],
        jobs=[
            PeriodicJob("pickup-expiry", settings.expiry_sweep_interval_seconds, sweep),
            PeriodicJob(
                "partner-accept-timeout",
                settings.expiry_sweep_interval_seconds,
                partner_sweep,
            ),
        ],
    )
    app.state.policy = policy
    return app


def __getattr__(name: str) -> FastAPI:
    # Built on first access (by uvicorn), so importing this module needs no database or broker.
    if name == "app":
        return create_app()
    raise AttributeError(name)
