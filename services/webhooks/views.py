"""Reads of webhooks and their delivery log, in the contract's shapes. Views never change
anything and never import handlers."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.contracts.webhooks import (
    DeliveryPage,
    DeliveryStatus,
    Webhook,
    WebhookDelivery,
    WebhookEventType,
    WebhookList,
    WebhookStatus,
)
from services.infrastructure.errors import NotFound
from services.webhooks import db


def webhook_view(row: Any) -> Webhook:
    return Webhook(
        webhook_id=row.webhook_id,
        url=row.url,
        event_types=tuple(WebhookEventType(t) for t in row.event_types),
        description=row.description,
        owner=row.owner,
        status=WebhookStatus(row.status),
        status_reason=row.status_reason,
        created_at=row.created_at,
    )


def delivery_view(row: Any) -> WebhookDelivery:
    return WebhookDelivery(
        delivery_id=row.delivery_id,
        webhook_id=row.webhook_id,
        event_id=row.event_id,
        event_type=WebhookEventType(row.event_type),
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        payload=json.loads(row.body),
    )


async def webhooks_of(conn: AsyncConnection, owner: str | None) -> WebhookList:
    return WebhookList(items=tuple(webhook_view(row) for row in await db.webhook_rows(conn, owner)))


async def find_webhook(conn: AsyncConnection, webhook_id: str, owner: str | None) -> Any:
    """The webhook's row; another owner's is as unknown as one that does not exist."""
    row = await db.webhook_row(conn, webhook_id, owner)
    if row is None:
        raise NotFound(f"no webhook {webhook_id!r} among this key's webhooks")
    return row


async def webhook(conn: AsyncConnection, webhook_id: str, owner: str | None) -> Webhook:
    return webhook_view(await find_webhook(conn, webhook_id, owner))


async def deliveries(
    conn: AsyncConnection,
    webhook_id: str,
    owner: str | None,
    *,
    status: DeliveryStatus | None,
    cursor: str | None,
    limit: int,
) -> DeliveryPage:
    """The webhook's deliveries, newest first."""
    await find_webhook(conn, webhook_id, owner)
    rows = await db.delivery_rows(
        conn, webhook_id, status.value if status else None, int(cursor) if cursor else None, limit
    )
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    return DeliveryPage(items=tuple(delivery_view(row) for row in rows), next_cursor=next_cursor)
