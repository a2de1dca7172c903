"""Inventory's Kafka consumers: thin, all work is in the handlers."""

from __future__ import annotations

from collections.abc import Callable

from faststream.kafka import KafkaMessage, KafkaRouter

from services.contracts import topics
from services.contracts.inventory import (
    CommitStock,
    PromiseStock,
    ReleaseStock,
    ReserveStock,
    RestockReturn,
)
from services.infrastructure.broker import deliveries_of, subscriber_options
from services.infrastructure.database import UnitOfWork
from services.infrastructure.inbox import Dispatcher
from services.inventory import handlers
from services.inventory.settings import InventorySettings


def build_router(settings: InventorySettings, uow_factory: Callable[[], UnitOfWork]) -> KafkaRouter:
    dispatcher = Dispatcher[UnitOfWork](
        "inventory.commands",
        {
            ReserveStock: handlers.reserve_stock,
            ReleaseStock: handlers.release_stock,
            CommitStock: handlers.commit_stock,
            RestockReturn: handlers.restock_return,
            PromiseStock: handlers.promise_stock,
        },
        uow_factory,
        max_attempts=settings.consumer_max_attempts,
    )
    router = KafkaRouter()

    @router.subscriber(
        topics.INVENTORY_COMMANDS.name,
        title="inventory.commands.v1",
        description="ReserveStock, ReleaseStock, CommitStock, RestockReturn and PromiseStock, "
        "keyed by order_id.",
        **subscriber_options(settings, settings.consumer_group),
    )
    async def on_inventory_command(message: KafkaMessage) -> None:
        await dispatcher.dispatch_batch(deliveries_of(message))

    return router
