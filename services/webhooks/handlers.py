"""Webhooks' use cases: subscribe and unsubscribe, turn a committed order event into deliveries,
and record how each attempt at a delivery went."""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.contracts.base import Message
from services.contracts.orders import FulfillmentAssigned, FulfillmentCancelled, OrderPlaced
from services.contracts.webhooks import (
    Subscriber,
    SubscribeWebhook,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import NotFound
from services.webhooks import db, domain, views


class WebhooksUnitOfWork(UnitOfWork):
    """A unit of work that wakes the sender when it committed new deliveries, so the first
    attempt follows the commit at once instead of at the next poll."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        source: str,
        on_commit: Callable[[], None] | None = None,
        on_deliveries: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(engine, source=source, on_commit=on_commit)
        self._on_deliveries = on_deliveries
        self.deliveries_added = False

    async def commit(self) -> None:
        await super().commit()
        if not self.deliveries_added:
            return
        self.deliveries_added = False
        if isinstance(self.batch, WebhooksUnitOfWork):
            # Within a poll's transaction: nothing is durable yet; the batch's commit wakes it.
            self.batch.deliveries_added = True
        elif self._on_deliveries is not None:
            self._on_deliveries()


# Subscriptions


async def subscribe(request: SubscribeWebhook, uow: UnitOfWork) -> WebhookCreated:
    """A new webhook; its secret is in this answer only."""
    subscriber = request.subscriber
    row = await db.insert_webhook(
        uow.connection,
        {
            "webhook_id": "wh_" + secrets.token_hex(10),
            "owner": subscriber.owner,
            "role": subscriber.role,
            "channel": subscriber.channel,
            "partner_id": subscriber.partner_id,
            "url": str(request.url),
            "event_types": [event_type.value for event_type in request.event_types],
            "description": request.description,
            "secret": domain.new_secret(),
        },
    )
    await uow.commit()
    return WebhookCreated(**views.webhook_view(row).model_dump(), secret=row.secret)


async def unsubscribe(webhook_id: str, owner: str | None, uow: UnitOfWork) -> Webhook:
    """Delete a webhook and its delivery log; nothing more is sent to it."""
    row = await views.find_webhook(uow.connection, webhook_id, owner)
    await db.delete_webhook(uow.connection, webhook_id)
    await uow.commit()
    return views.webhook_view(row)


async def send_again(
    webhook_id: str, delivery_id: str, owner: str | None, uow: WebhooksUnitOfWork
) -> WebhookDelivery:
    """Send a delivery again now, with its `webhook-id`: a delivered or failed one once (even to
    a disabled webhook: someone asked for it), a pending one by bringing its retry forward."""
    await views.find_webhook(uow.connection, webhook_id, owner)
    found = await db.delivery_row(uow.connection, webhook_id, delivery_id)
    if found is None:
        raise NotFound(f"no delivery {delivery_id!r} of webhook {webhook_id!r}")
    row = await db.schedule_now(uow.connection, found.id, replay=found.status != "pending")
    uow.deliveries_added = True
    await uow.commit()
    return views.delivery_view(row)


async def forget_old_deliveries(uow: UnitOfWork, retention_days: float) -> int:
    """Keep the log to its retention, a batch per transaction so no lock is held for long."""
    forgotten = 0
    while True:
        gone = await db.forget_deliveries(uow.connection, retention_days, limit=1000)
        await uow.commit()
        forgotten += gone
        if gone < 1000:
            return forgotten


# From events to deliveries


async def remember_order(event: OrderPlaced, uow: UnitOfWork) -> None:
    """Note the order's channel: a shop's webhooks hear of its channel's orders only."""
    await db.remember_order(uow.connection, event.order_id, event.channel.value)


async def deliver(event: Message, uow: UnitOfWork) -> None:
    """Turn a committed order event into one delivery per webhook that may hear of it, in the
    transaction that records the event in the inbox: exactly once, and only for changes that
    committed (it came from orders' outbox)."""
    envelope = uow.message
    assert envelope is not None, "deliver runs in a consumer"
    conn = uow.connection
    order_id: str = event.order_id  # type: ignore[attr-defined]
    fulfillment_id: str | None = getattr(event, "fulfillment_id", None)
    if isinstance(event, FulfillmentAssigned | FulfillmentCancelled) and fulfillment_id:
        await db.remember_fulfillment(conn, fulfillment_id, order_id, event.partner_id)
    event_type = domain.WEBHOOK_EVENTS[type(event)]
    subscribed = await db.subscribed(conn, event_type.value, envelope.time)
    if not subscribed:
        return  # most events: whose they are is looked up only when someone may hear of them
    data: dict[str, Any] = event.model_dump(mode="json")
    partner_id = await db.partner_of(conn, fulfillment_id) if fulfillment_id else None
    if fulfillment_id:
        data.setdefault("partner_id", partner_id)
    scope = domain.Scope(
        channel=await db.channel_of(conn, order_id),
        partner_id=partner_id,
        about_fulfillment=fulfillment_id is not None,
    )
    hearing = [
        row
        for row in subscribed
        if domain.may_hear_of(
            Subscriber(role=row.role, channel=row.channel, partner_id=row.partner_id), scope
        )
    ]
    if not hearing:
        return
    body = json.dumps(
        {
            "id": envelope.id,
            "type": event_type.value,
            "created_at": envelope.time.isoformat(),
            "data": data,
        },
        separators=(",", ":"),
    )
    await db.add_deliveries(
        conn,
        [
            {
                "delivery_id": domain.delivery_id(row.webhook_id, envelope.id),
                "webhook_id": row.webhook_id,
                "event_id": envelope.id,
                "event_type": event_type.value,
                "body": body,
                "event_at": envelope.time,
                "next_attempt_at": datetime.now(UTC),
            }
            for row in hearing
        ],
    )
    if isinstance(uow, WebhooksUnitOfWork):
        uow.deliveries_added = True


# Attempts


@dataclass(frozen=True)
class RetryPolicy:
    schedule: tuple[float, ...]
    retry_for: timedelta
    disable_after: timedelta


@dataclass(frozen=True)
class Attempt:
    """How one attempt went: the endpoint's status, or what kept it from answering."""

    status_code: int | None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def record_attempt(
    claimed: db.Claimed,
    attempt: Attempt,
    uow: UnitOfWork,
    policy: RetryPolicy,
    rng: random.Random,
) -> None:
    """Delivered; or due again after a growing pause; or failed for good once retried for
    `retry_for`, disabling the webhook when every delivery to it has failed for a day."""
    # The webhook's row is locked before the delivery's, in the order a deletion of the webhook
    # takes them (it cascades to its deliveries): the other order deadlocks with it.
    conn = uow.connection
    if attempt.succeeded:
        assert attempt.status_code is not None
        await db.webhook_answered(conn, claimed.webhook_id)
        await db.mark_delivered(conn, claimed.id, attempt.status_code)
        await uow.commit()
        return
    now = datetime.now(UTC)
    error = domain.describe_failure(attempt.status_code, attempt.error)
    next_attempt_at = (
        None
        if claimed.replay
        else domain.next_attempt_after_failure(
            claimed.attempts,
            claimed.first_sent_at,
            now,
            schedule=policy.schedule,
            retry_for=policy.retry_for,
            rng=rng,
        )
    )
    failing_since = await db.webhook_failed(conn, claimed.webhook_id)
    await db.mark_failed_attempt(
        conn,
        claimed.id,
        status_code=attempt.status_code,
        error=error,
        next_attempt_at=next_attempt_at,
    )
    if domain.should_disable(failing_since, now, policy.disable_after):
        assert failing_since is not None
        await db.disable_webhook(
            conn,
            claimed.webhook_id,
            f"disabled at {now:%Y-%m-%d %H:%M} UTC: every delivery has failed since "
            f"{failing_since:%Y-%m-%d %H:%M} UTC (last: {error}); create a new webhook "
            "once the endpoint answers",
        )
    await uow.commit()
