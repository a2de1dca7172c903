"""Webhooks' contract (DESIGN.md §8.2): subscriptions, the deliveries made for them, and the
body every delivery carries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AnyHttpUrl, Field, UrlConstraints, field_validator

from services.contracts.base import Contract, Identifier, Text


class WebhookEventType(StrEnum):
    """What a subscriber can hear of. The first ten are DESIGN.md §8.2's; the rest extend it."""

    ORDER_CONFIRMED = "order.confirmed"
    ORDER_BACKORDERED = "order.backordered"
    ORDER_REJECTED = "order.rejected"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_COMPLETED = "order.completed"
    FULFILLMENT_ASSIGNED = "fulfillment.assigned"
    FULFILLMENT_READY_FOR_PICKUP = "fulfillment.ready_for_pickup"
    FULFILLMENT_SHIPPED = "fulfillment.shipped"
    FULFILLMENT_CANCELLED = "fulfillment.cancelled"
    REFUND_ISSUED = "refund.issued"
    ORDER_EXPIRED = "order.expired"
    FULFILLMENT_ACCEPTED = "fulfillment.accepted"
    FULFILLMENT_REJECTED = "fulfillment.rejected"
    FULFILLMENT_PICKED_UP = "fulfillment.picked_up"


class WebhookStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    """`pending`: to be sent, or sent and failed and to be tried again at `next_attempt_at`;
    `delivered`: the endpoint answered 2xx; `failed`: retries ran out (or the webhook was
    disabled) and only `retry` sends it again."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


WebhookUrl = Annotated[
    AnyHttpUrl,
    UrlConstraints(max_length=2000, allowed_schemes=["http", "https"]),
    Field(
        description="Where deliveries are POSTed: http or https, no user or password in it. "
        "Its host must not resolve to a link-local or metadata address, nor to a private or "
        "loopback one unless the operator allows those.",
        examples=["https://partner.example.com/omniroute/webhooks"],
    ),
]


class WebhookIn(Contract):
    """A subscription: the events to send to `url`. Each delivery is signed with the secret
    returned once, when the webhook is created; to rotate it, create a new webhook and delete
    the old one."""

    url: WebhookUrl
    event_types: tuple[WebhookEventType, ...] = Field(
        min_length=1, max_length=20, json_schema_extra={"uniqueItems": True}
    )
    description: Text | None = Field(default=None, max_length=500)

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if url.username or url.password:
            raise ValueError(
                "a webhook URL may not carry a user or password; the signature "
                "authenticates each delivery"
            )
        return url

    @field_validator("event_types")
    @classmethod
    def _unique(cls, event_types: tuple[WebhookEventType, ...]) -> tuple[WebhookEventType, ...]:
        if len(event_types) != len(set(event_types)):
            raise ValueError("each event type may appear only once")
        return event_types


class Subscriber(Contract):
    """Who a webhook belongs to, and so what it may hear of: a partner its own fulfillments, a
    shop its channel's orders, an admin everything. Set by the gateway from the API key."""

    role: str = Field(pattern=r"^(shop|partner|admin)$")
    channel: Identifier | None = None
    partner_id: Identifier | None = None

    @property
    def owner(self) -> str:
        """The owner as one word (`admin`, `shop:web`, `partner:acme`): webhooks of one owner
        are managed by any key with that binding."""
        binding = self.channel or self.partner_id
        return f"{self.role}:{binding}" if binding else self.role


class SubscribeWebhook(WebhookIn):
    """Internal: the gateway's `WebhookIn` with the caller's binding."""

    subscriber: Subscriber


class Webhook(Contract):
    webhook_id: Identifier
    url: str
    event_types: tuple[WebhookEventType, ...]
    description: str | None = None
    owner: str = Field(description="`admin`, `shop:<channel>` or `partner:<partner_id>`.")
    status: WebhookStatus
    status_reason: str | None = Field(
        default=None, description="Why it was disabled: since when every delivery failed."
    )
    created_at: datetime


class WebhookCreated(Webhook):
    secret: str | None = Field(
        description="`whsec_` + base64 of 32 random bytes: shown only now (null in a replay "
        "of this request). Verify each delivery's `webhook-signature` with it (the Standard "
        "Webhooks scheme).",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookList(Contract):
    items: tuple[Webhook, ...]


class WebhookDelivery(Contract):
    delivery_id: Identifier = Field(
        description="The `webhook-id` header of every attempt at this delivery."
    )
    webhook_id: Identifier
    event_id: str = Field(
        description="The `id` in the body: the event's, the same for every "
        "webhook that hears of it."
    )
    event_type: WebhookEventType
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None = Field(
        default=None, description="The endpoint's HTTP status at the last attempt, if it answered."
    )
    last_error: str | None = Field(
        default=None,
        description="What went wrong at the last attempt (a status, a timeout, a refused address).",
    )
    next_attempt_at: datetime | None = Field(
        default=None, description="When a pending delivery is tried again."
    )
    created_at: datetime
    delivered_at: datetime | None = None
    payload: dict[str, Any] = Field(description="The body as it is sent.")


DeliveryCursor = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,19}$",
        description="A place in the delivery log, the `next_cursor` of a page.",
    ),
]


class DeliveryPage(Contract):
    items: tuple[WebhookDelivery, ...]
    next_cursor: DeliveryCursor | None = None


class WebhookPayload(Contract):
    """The body of every delivery."""

    id: str = Field(description="The event's id: the same for every webhook that hears of it.")
    type: WebhookEventType
    created_at: datetime = Field(description="When the change committed.")
    data: dict[str, Any] = Field(
        description="The event's fields: always `order_id`; `fulfillment_id`, `location_id` and "
        "`partner_id` on fulfillment events; `amount` on refunds."
    )
