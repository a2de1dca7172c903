"""Webhooks' Kafka consumer: thin, all work is in the handlers."""

from __future__ import annotations

from collections.abc import Callable

from faststream.kafka import KafkaMessage, KafkaRouter

from services.contracts import topics
from services.contracts.orders import OrderPlaced
from services.infrastructure.broker import deliveries_of, subscriber_options
from services.infrastructure.database import UnitOfWork
from services.infrastructure.inbox import Dispatcher
from services.webhooks import domain, handlers
from services.webhooks.settings import WebhooksSettings


def build_router(settings: WebhooksSettings, uow_factory: Callable[[], UnitOfWork]) -> KafkaRouter:
    dispatcher = Dispatcher[UnitOfWork](
        "webhooks.orders",
        {
            OrderPlaced: handlers.remember_order,
            **dict.fromkeys(domain.WEBHOOK_EVENTS, handlers.deliver),
        },
        uow_factory,
        ignored=domain.SILENT_EVENTS,
        max_attempts=settings.consumer_max_attempts,
    )
    router = KafkaRouter()

    @router.subscriber(
        topics.ORDERS_EVENTS.name,
        title="orders.events.v1",
        description="Order and fulfillment events, each turned into deliveries for the webhooks "
        "that may hear of it.",
        **subscriber_options(settings, settings.consumer_group),
    )
    async def on_order_event(message: KafkaMessage) -> None:
        await dispatcher.dispatch_batch(deliveries_of(message))

    return router
