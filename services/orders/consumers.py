"""Orders' Kafka consumers: inventory's answers drive the saga; its availability and
locations feed the projections routing works from."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from faststream.kafka import KafkaMessage, KafkaRouter

from services.contracts import topics
from services.contracts.inventory import (
    AvailabilityChanged,
    LocationChanged,
    ReservationExpired,
    StockCommitRejected,
    StockCommitted,
    StockPromised,
    StockPromiseRejected,
    StockReleased,
    StockReservationRejected,
    StockReserved,
    StockRestocked,
)
from services.infrastructure.broker import deliveries_of, subscriber_options
from services.infrastructure.inbox import Dispatcher
from services.orders import handlers
from services.orders.repository import OrdersUnitOfWork
from services.orders.settings import OrdersSettings


def build_router(
    settings: OrdersSettings, uow_factory: Callable[[], OrdersUnitOfWork], policy: handlers.Policy
) -> KafkaRouter:
    saga = Dispatcher[OrdersUnitOfWork](
        "orders.inventory-events",
        {
            StockReserved: handlers.on_stock_reserved,
            StockReservationRejected: partial(handlers.on_reservation_rejected, policy=policy),
            ReservationExpired: handlers.on_reservation_expired,
            StockCommitRejected: handlers.on_commit_rejected,
            StockPromised: handlers.on_stock_promised,
            StockPromiseRejected: partial(handlers.on_promise_rejected, policy=policy),
        },
        uow_factory,
        # Outcomes the saga already anticipated when it sent the command.
        ignored=[StockReleased, StockCommitted, StockRestocked],
        max_attempts=settings.consumer_max_attempts,
    )
    projection = Dispatcher[OrdersUnitOfWork](
        "orders.availability",
        {
            AvailabilityChanged: handlers.project_availability,
            LocationChanged: handlers.project_location,
        },
        uow_factory,
        deduplicate=False,  # newest version wins: a repeat changes nothing
        max_attempts=settings.consumer_max_attempts,
    )
    router = KafkaRouter()

    @router.subscriber(
        topics.INVENTORY_EVENTS.name,
        title="inventory.events.v1 (orders saga)",
        description="StockReserved, StockReservationRejected, StockPromised, "
        "StockPromiseRejected, ReservationExpired and more.",
        **subscriber_options(settings, settings.consumer_group),
    )
    async def on_inventory_event(message: KafkaMessage) -> None:
        await saga.dispatch_batch(deliveries_of(message))

    @router.subscriber(
        topics.INVENTORY_AVAILABILITY.name,
        title="inventory.availability.v1 (orders projection)",
        description="AvailabilityChanged and LocationChanged, projected for routing.",
        **subscriber_options(settings, settings.projection_group),
    )
    async def on_availability(message: KafkaMessage) -> None:
        await projection.dispatch_batch(deliveries_of(message))

    return router
