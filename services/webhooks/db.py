"""Webhooks' tables and queries."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    Row,
    String,
    Text,
    and_,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.infrastructure.tables import table, timestamp, with_infrastructure


class WebhooksTable(SQLModel, registry=registry()):
    """Base of webhooks' tables: a metadata of its own, like every service's."""


class WebhookRow(WebhooksTable, table=True):
    __tablename__ = "webhooks"

    webhook_id: str = Field(primary_key=True, max_length=64)
    owner: str = Field(max_length=80, index=True)
    role: str = Field(max_length=16)
    channel: str | None = Field(default=None, max_length=64)
    partner_id: str | None = Field(default=None, max_length=64)
    url: str = Field(sa_column=Column(Text, nullable=False))
    event_types: list[str] = Field(sa_column=Column(ARRAY(String(64)), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Kept as issued, not hashed: every delivery is signed with it.
    secret: str = Field(max_length=100)
    status: str = Field(default="active", max_length=16)
    status_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Set at the first failed delivery after a success, cleared by the next success.
    failing_since: datetime | None = timestamp(nullable=True)
    created_at: datetime | None = timestamp()


class DeliveryRow(WebhooksTable, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (
        # The sender only looks for pending deliveries that are due.
        Index(
            "ix_deliveries_due",
            "webhook_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_deliveries_log", "webhook_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    delivery_id: str = Field(unique=True, max_length=64)
    webhook_id: str = Field(
        sa_column=Column(
            String(64), ForeignKey("webhooks.webhook_id", ondelete="CASCADE"), nullable=False
        )
    )
    event_id: str = Field(max_length=128)
    event_type: str = Field(max_length=64)
    # The exact body signed and sent, so every attempt carries the same bytes.
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    # Also the lease of an attempt in flight: a sender that dies mid-send leaves it due again.
    next_attempt_at: datetime | None = timestamp(nullable=True)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    replay: bool = False  # one attempt asked for by `retry`, sent even to a disabled webhook
    event_at: datetime | None = timestamp(nullable=True)
    first_sent_at: datetime | None = timestamp(nullable=True)
    delivered_at: datetime | None = timestamp(nullable=True)
    created_at: datetime | None = timestamp()


class OrderChannelRow(WebhooksTable, table=True):
    """The channel of each order, from OrderPlaced: who may hear of the order's events."""

    __tablename__ = "order_channels"

    order_id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=16)


class FulfillmentPartnerRow(WebhooksTable, table=True):
    """The partner of each fulfillment, from FulfillmentAssigned."""

    __tablename__ = "fulfillment_partners"

    fulfillment_id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(max_length=64)
    partner_id: str | None = Field(default=None, max_length=64)


METADATA = with_infrastructure(WebhooksTable.metadata)

webhooks = table(WebhookRow)
deliveries = table(DeliveryRow)
order_channels = table(OrderChannelRow)
fulfillment_partners = table(FulfillmentPartnerRow)


# Subscriptions


async def insert_webhook(conn: AsyncConnection, values: dict[str, Any]) -> Row[Any]:
    row = (await conn.execute(insert(webhooks).values(values).returning(webhooks))).one()
    return row


async def webhook_rows(conn: AsyncConnection, owner: str | None) -> Sequence[Row[Any]]:
    query = select(webhooks).order_by(webhooks.c.created_at, webhooks.c.webhook_id)
    if owner is not None:
        query = query.where(webhooks.c.owner == owner)
    return (await conn.execute(query)).all()


async def webhook_row(
    conn: AsyncConnection, webhook_id: str, owner: str | None, *, lock: bool = False
) -> Row[Any] | None:
    query = select(webhooks).where(webhooks.c.webhook_id == webhook_id)
    if owner is not None:
        query = query.where(webhooks.c.owner == owner)
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def delete_webhook(conn: AsyncConnection, webhook_id: str) -> None:
    await conn.execute(delete(webhooks).where(webhooks.c.webhook_id == webhook_id))


# What events are about


async def remember_order(conn: AsyncConnection, order_id: str, channel: str) -> None:
    await conn.execute(
        insert(order_channels).values(order_id=order_id, channel=channel).on_conflict_do_nothing()
    )


async def remember_fulfillment(
    conn: AsyncConnection, fulfillment_id: str, order_id: str, partner_id: str | None
) -> None:
    statement = insert(fulfillment_partners).values(
        fulfillment_id=fulfillment_id, order_id=order_id, partner_id=partner_id
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[fulfillment_partners.c.fulfillment_id],
            set_={"partner_id": statement.excluded.partner_id},
        )
    )


async def channel_of(conn: AsyncConnection, order_id: str) -> str | None:
    query = select(order_channels.c.channel).where(order_channels.c.order_id == order_id)
    channel: str | None = (await conn.execute(query)).scalar()
    return channel


async def partner_of(conn: AsyncConnection, fulfillment_id: str) -> str | None:
    query = select(fulfillment_partners.c.partner_id).where(
        fulfillment_partners.c.fulfillment_id == fulfillment_id
    )
    partner_id: str | None = (await conn.execute(query)).scalar()
    return partner_id


async def subscribed(
    conn: AsyncConnection, event_type: str, event_at: datetime
) -> Sequence[Row[Any]]:
    """Active webhooks subscribed to `event_type` that existed when the event happened: a new
    webhook does not get the backlog of what happened before it."""
    query = select(webhooks).where(
        webhooks.c.status == "active",
        webhooks.c.event_types.any_() == event_type,
        webhooks.c.created_at <= event_at,
    )
    return (await conn.execute(query)).all()


# Deliveries


async def add_deliveries(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(deliveries).on_conflict_do_nothing(), list(rows))


async def claim_due(
    conn: AsyncConnection,
    *,
    limit: int,
    in_flight: Mapping[str, int],
    per_endpoint: int,
    lease_seconds: float,
) -> list[Claimed]:
    """Take up to `limit` due deliveries, and of each webhook only as many as bring it to
    `per_endpoint` with those already `in_flight` in this process, counting the attempt and
    leasing them: until the lease ends no other sender takes them, and if this one dies they
    are due again when it ends (at least once)."""
    sending = func.coalesce(
        cast(
            func.jsonb_extract_path_text(
                cast(literal(json.dumps(dict(in_flight))), JSONB), webhooks.c.webhook_id
            ),
            Integer,
        ),
        0,
    )
    room = func.greatest(per_endpoint - sending, 0)
    per_webhook = (
        select(deliveries.c.id, deliveries.c.next_attempt_at)
        .where(
            deliveries.c.webhook_id == webhooks.c.webhook_id,
            deliveries.c.status == "pending",
            deliveries.c.next_attempt_at <= func.now(),
            or_(webhooks.c.status == "active", deliveries.c.replay),
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(room)
        .lateral()
    )
    candidates = select(per_webhook.c.id).select_from(webhooks.join(per_webhook, true()))
    due = (
        select(deliveries.c.id)
        .where(deliveries.c.id.in_(candidates.scalar_subquery()))
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        update(deliveries)
        .where(deliveries.c.id.in_(due.scalar_subquery()))
        .values(
            attempts=deliveries.c.attempts + 1,
            next_attempt_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds),
            first_sent_at=func.coalesce(deliveries.c.first_sent_at, func.now()),
        )
        .returning(
            deliveries.c.id,
            deliveries.c.delivery_id,
            deliveries.c.webhook_id,
            deliveries.c.body,
            deliveries.c.attempts,
            deliveries.c.first_sent_at,
            deliveries.c.replay,
            deliveries.c.event_at,
        )
    )
    rows = (await conn.execute(claimed)).all()
    if not rows:
        return []
    secrets = {
        row.webhook_id: row
        for row in await conn.execute(
            select(webhooks.c.webhook_id, webhooks.c.url, webhooks.c.secret).where(
                webhooks.c.webhook_id.in_({row.webhook_id for row in rows})
            )
        )
    }
    return [
        Claimed(
            id=row.id,
            delivery_id=row.delivery_id,
            webhook_id=row.webhook_id,
            body=row.body,
            attempts=row.attempts,
            first_sent_at=row.first_sent_at,
            replay=row.replay,
            event_at=row.event_at,
            url=secrets[row.webhook_id].url,
            secret=secrets[row.webhook_id].secret,
        )
        for row in rows
    ]


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for an attempt, with its webhook's url and secret."""

    id: int
    delivery_id: str
    webhook_id: str
    body: str
    attempts: int
    first_sent_at: datetime
    replay: bool
    event_at: datetime
    url: str
    secret: str


async def mark_delivered(conn: AsyncConnection, delivery: int, status_code: int) -> None:
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery)
        .values(
            status="delivered",
            last_status_code=status_code,
            last_error=None,
            next_attempt_at=None,
            delivered_at=func.now(),
            replay=False,
        )
    )


async def mark_failed_attempt(
    conn: AsyncConnection,
    delivery: int,
    *,
    status_code: int | None,
    error: str,
    next_attempt_at: datetime | None,
) -> None:
    """A failed attempt: due again at `next_attempt_at`, or `failed` when that is None."""
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery)
        .values(
            status="pending" if next_attempt_at is not None else "failed",
            last_status_code=status_code,
            last_error=error[:1000],
            next_attempt_at=next_attempt_at,
            replay=False,
        )
    )


async def webhook_answered(conn: AsyncConnection, webhook_id: str) -> None:
    await conn.execute(
        update(webhooks)
        .where(webhooks.c.webhook_id == webhook_id, webhooks.c.failing_since.is_not(None))
        .values(failing_since=None)
    )


async def webhook_failed(conn: AsyncConnection, webhook_id: str) -> datetime | None:
    """Note a failure; the time the webhook has been failing since (None if it is gone)."""
    since: datetime | None = (
        await conn.execute(
            update(webhooks)
            .where(webhooks.c.webhook_id == webhook_id)
            .values(failing_since=func.coalesce(webhooks.c.failing_since, func.now()))
            .returning(webhooks.c.failing_since)
        )
    ).scalar()
    return since


async def disable_webhook(conn: AsyncConnection, webhook_id: str, reason: str) -> None:
    await conn.execute(
        update(webhooks)
        .where(webhooks.c.webhook_id == webhook_id, webhooks.c.status == "active")
        .values(status="disabled", status_reason=reason)
    )
    # What was still waiting will not be sent by itself now: say so in the log.
    await conn.execute(
        update(deliveries)
        .where(
            deliveries.c.webhook_id == webhook_id,
            deliveries.c.status == "pending",
            deliveries.c.replay.is_(False),
        )
        .values(status="failed", next_attempt_at=None, last_error=reason[:1000])
    )


async def delivery_rows(
    conn: AsyncConnection, webhook_id: str, status: str | None, after: int | None, limit: int
) -> Sequence[Row[Any]]:
    """A page of the log, newest first."""
    query = (
        select(deliveries)
        .where(deliveries.c.webhook_id == webhook_id)
        .order_by(deliveries.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(deliveries.c.status == status)
    if after is not None:
        query = query.where(deliveries.c.id < after)
    return (await conn.execute(query)).all()


async def delivery_row(conn: AsyncConnection, webhook_id: str, delivery_id: str) -> Row[Any] | None:
    query = select(deliveries).where(
        and_(deliveries.c.webhook_id == webhook_id, deliveries.c.delivery_id == delivery_id)
    )
    return (await conn.execute(query)).first()


async def schedule_now(conn: AsyncConnection, delivery: int, *, replay: bool) -> Row[Any]:
    """Send it now. A `replay` (of a delivered or failed one) is a single attempt, made even
    to a disabled webhook; a pending one just keeps its retries, starting now."""
    return (
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery)
            .values(status="pending", next_attempt_at=func.now(), replay=replay)
            .returning(deliveries)
        )
    ).one()


async def forget_deliveries(conn: AsyncConnection, older_than_days: float, limit: int) -> int:
    """Delete up to `limit` delivered or failed deliveries made more than `older_than_days` ago;
    how many went."""
    old = (
        select(deliveries.c.id)
        .where(
            deliveries.c.status != "pending",
            deliveries.c.created_at
            < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_days * 86400),
        )
        .limit(limit)
    )
    result = await conn.execute(
        delete(deliveries).where(deliveries.c.id.in_(old.scalar_subquery()))
    )
    return result.rowcount or 0
