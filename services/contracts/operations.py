"""The command center's contract (DESIGN.md §8.3): what the gateway answers at
`/v1/admin/operations/*`, and what each service answers for its own data at `/operations/*`
so the gateway can put those answers together (no service reads another's tables)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from services.contracts.base import Contract, Identifier
from services.contracts.orders import FulfillmentStatus, OrderStatus
from services.contracts.pricing import Channel

# The gateway's answers


class OrdersInMinute(Contract):
    """Orders created in one minute on one channel, by the status they have now."""

    minute: datetime = Field(description="The start of the minute, UTC.")
    channel: Channel
    status: OrderStatus = Field(description="The orders' current status.")
    orders: int = Field(ge=0)


class ChannelOrders(Contract):
    channel: Channel
    orders: int = Field(ge=0)


class ChannelConversion(Contract):
    """Orders created in the window over quotes given in it (an order may come from a quote
    given before the window, so a rate can exceed 1)."""

    channel: Channel
    quotes: int = Field(ge=0)
    orders: int = Field(ge=0)
    rate: float | None = Field(description="`orders / quotes`; null without quotes.")


class OperationsSummary(Contract):
    generated_at: datetime
    window_minutes: int
    orders_per_minute: tuple[OrdersInMinute, ...]
    orders_by_channel: tuple[ChannelOrders, ...]
    conversion: tuple[ChannelConversion, ...]
    unavailable: tuple[str, ...] = Field(
        default=(),
        description="Services that did not answer: the figures they own are left out (orders: "
        "every figure; pricing: `conversion`).",
    )


class ExceptionKind(StrEnum):
    """What needs a person's attention, most urgent first."""

    SERVICE_UNAVAILABLE = "service_unavailable"
    DEAD_LETTERS = "dead_letters"
    OUTBOX_BACKLOG = "outbox_backlog"
    CONSUMER_LAG = "consumer_lag"
    PENDING_TOO_LONG = "pending_too_long"
    PARTNER_NOT_ACCEPTED = "partner_not_accepted"
    PICKUP_OVERDUE = "pickup_overdue"


class ExceptionItem(Contract):
    kind: ExceptionKind
    subject: str | None = Field(
        default=None,
        description="What it is about: an order id (`pending_too_long`), a fulfillment id "
        "(`pickup_overdue`, `partner_not_accepted`), a consumer group (`consumer_lag`).",
    )
    service: str | None = Field(default=None, description="The service that reports it.")
    detail: str
    since: datetime | None = Field(
        default=None, description="Since when: the oldest occurrence, or when it became due."
    )
    count: int | None = Field(
        default=None, ge=0, description="How many (dead letters, unpublished rows, lag)."
    )


class OperationsExceptions(Contract):
    generated_at: datetime
    items: tuple[ExceptionItem, ...]


class StoreOperations(Contract):
    store_id: Identifier
    name: str
    fulfillments: int = Field(ge=0, description="Created at this store in the window.")
    by_status: dict[FulfillmentStatus, int] = Field(
        description="Those fulfillments by their current status."
    )
    rejects: int = Field(ge=0, description="Fulfillments at this store rejected in the window.")
    median_minutes_to_ready: float | None = Field(
        description="From creation to ready for pickup, of those made ready in the window."
    )


class StoresOperations(Contract):
    generated_at: datetime
    window_minutes: int
    items: tuple[StoreOperations, ...]


# What each service answers for itself (internal)


class ConsumerLag(Contract):
    group: str
    topic: str
    lag: int = Field(ge=0)


class MessagingStatus(Contract):
    """A service's outbox and dead letters, and the lag of the consumers of the replica that
    answered (each replica knows only the partitions it holds)."""

    service: str
    dead_letters: int = Field(ge=0)
    oldest_dead_letter_at: datetime | None
    outbox_backlog: int = Field(ge=0, description="Outbox rows not published yet.")
    oldest_unpublished_at: datetime | None
    consumer_lag: tuple[ConsumerLag, ...] = ()


class OrderCounts(Contract):
    window_minutes: int
    orders_per_minute: tuple[OrdersInMinute, ...]


class ChannelQuotes(Contract):
    channel: Channel
    quotes: int = Field(ge=0)


class QuoteCounts(Contract):
    window_minutes: int
    quotes_by_channel: tuple[ChannelQuotes, ...]


class LocationWork(Contract):
    """A location's fulfillments as orders counts them; the gateway names the stores."""

    location_id: Identifier
    fulfillments: int = Field(ge=0)
    by_status: dict[FulfillmentStatus, int]
    rejects: int = Field(ge=0)
    median_minutes_to_ready: float | None


class LocationsWork(Contract):
    window_minutes: int
    items: tuple[LocationWork, ...]
