"""The gateway's tables and queries: API keys (hashed) and idempotency records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, LargeBinary, String, delete, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.infrastructure.tables import table, timestamp


class GatewayTable(SQLModel, registry=registry()):
    """Base of the gateway's tables, with a metadata of its own."""


class ApiKeyRow(GatewayTable, table=True):
    __tablename__ = "api_keys"

    key_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20)
    channel: str | None = Field(default=None, max_length=20)
    store_id: str | None = Field(default=None, max_length=64)
    partner_id: str | None = Field(default=None, max_length=64)
    rate_limit: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    # Looked up on every request by the hash of the presented key; the key itself is never kept.
    key_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime | None = timestamp()
    revoked_at: datetime | None = timestamp(nullable=True)


class IdempotencyRecord(GatewayTable, table=True):
    """The first response to a request carrying an Idempotency-Key, kept for replay."""

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_records_created_at", "created_at"),)

    key_id: str = Field(primary_key=True, max_length=64)
    # A key is scoped to the operation it was sent with (method and path), as a client's keys
    # are: the same key on another operation is another request, not a replay or a conflict.
    operation: str = Field(primary_key=True, max_length=600)
    idempotency_key: str = Field(primary_key=True, max_length=200)
    fingerprint: str = Field(max_length=64)
    # Until the first attempt finishes, a duplicate waits; past `locked_until` the attempt is
    # presumed dead (its gateway crashed) and a duplicate takes over.
    locked_until: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    response_status: int | None = None
    response_body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    content_type: str | None = Field(default=None, max_length=100)
    created_at: datetime | None = timestamp()
    completed_at: datetime | None = timestamp(nullable=True)


METADATA = GatewayTable.metadata
API_KEYS = table(ApiKeyRow)
IDEMPOTENCY = table(IdempotencyRecord)


# API keys


async def insert_api_key(conn: AsyncConnection, values: dict[str, Any]) -> Any:
    return (await conn.execute(insert(API_KEYS).values(values).returning(API_KEYS))).one()


async def ensure_api_key(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert a key unless one with the same hash exists; True if it was inserted."""
    statement = (
        insert(API_KEYS).values(values).on_conflict_do_nothing().returning(API_KEYS.c.key_id)
    )
    return (await conn.execute(statement)).first() is not None


async def api_key_by_hash(conn: AsyncConnection, key_hash: str) -> Any | None:
    statement = select(API_KEYS).where(
        API_KEYS.c.key_hash == key_hash, API_KEYS.c.revoked_at.is_(None)
    )
    return (await conn.execute(statement)).first()


async def api_key_by_id(conn: AsyncConnection, key_id: str) -> Any | None:
    return (await conn.execute(select(API_KEYS).where(API_KEYS.c.key_id == key_id))).first()


async def api_key_page(
    conn: AsyncConnection, after: str | None, limit: int, include_revoked: bool
) -> Sequence[Any]:
    statement = select(API_KEYS).order_by(API_KEYS.c.key_id).limit(limit)
    if after is not None:
        statement = statement.where(API_KEYS.c.key_id > after)
    if not include_revoked:
        statement = statement.where(API_KEYS.c.revoked_at.is_(None))
    return (await conn.execute(statement)).all()


async def revoke_api_key(conn: AsyncConnection, key_id: str) -> Any | None:
    statement = (
        update(API_KEYS)
        .where(API_KEYS.c.key_id == key_id)
        .values(revoked_at=text("coalesce(revoked_at, now())"))
        .returning(API_KEYS)
    )
    return (await conn.execute(statement)).first()


# Idempotency records


async def claim_idempotency_key(
    conn: AsyncConnection,
    key_id: str,
    operation: str,
    idempotency_key: str,
    fingerprint: str,
    lease_seconds: float,
) -> bool:
    """Start the first attempt; False if the key is already taken (the caller looks at why)."""
    parameters = {
        "key_id": key_id,
        "operation": operation,
        "key": idempotency_key,
        "fingerprint": fingerprint,
        "lease": float(lease_seconds),
    }
    return (await conn.execute(_CLAIM, parameters)).first() is not None


# Plain SQL on the path of every changing request: building these as expressions cost a tenth of
# the gateway's CPU per order in profiles.
_CLAIM = text(
    "INSERT INTO idempotency_records (key_id, operation, idempotency_key, fingerprint,"
    " locked_until) VALUES (:key_id, :operation, :key, :fingerprint,"
    " now() + make_interval(secs => :lease)) ON CONFLICT DO NOTHING RETURNING key_id"
)
_COMPLETE = text(
    "UPDATE idempotency_records SET response_status = :status, response_body = :body,"
    " content_type = :content_type, completed_at = now()"
    " WHERE key_id = :key_id AND operation = :operation AND idempotency_key = :key"
)


def _record(key_id: str, operation: str, idempotency_key: str) -> Any:
    return (
        (IDEMPOTENCY.c.key_id == key_id)
        & (IDEMPOTENCY.c.operation == operation)
        & (IDEMPOTENCY.c.idempotency_key == idempotency_key)
    )


async def idempotency_record(
    conn: AsyncConnection, key_id: str, operation: str, idempotency_key: str
) -> Any:
    statement = select(IDEMPOTENCY).where(_record(key_id, operation, idempotency_key))
    return (await conn.execute(statement)).first()


async def take_over_abandoned(
    conn: AsyncConnection, key_id: str, operation: str, idempotency_key: str, lease_seconds: float
) -> bool:
    """Claim an attempt whose lease ran out without a response."""
    statement = (
        update(IDEMPOTENCY)
        .where(
            _record(key_id, operation, idempotency_key),
            IDEMPOTENCY.c.response_status.is_(None),
            IDEMPOTENCY.c.locked_until < text("now()"),
        )
        .values(locked_until=text(f"now() + interval '{float(lease_seconds)} seconds'"))
        .returning(IDEMPOTENCY.c.key_id)
    )
    return (await conn.execute(statement)).first() is not None


async def complete_idempotency_key(
    conn: AsyncConnection,
    key_id: str,
    operation: str,
    idempotency_key: str,
    status: int,
    body: bytes,
    content_type: str,
) -> None:
    parameters = {
        "key_id": key_id,
        "operation": operation,
        "key": idempotency_key,
        "status": status,
        "body": body,
        "content_type": content_type,
    }
    await conn.execute(_COMPLETE, parameters)


async def release_idempotency_key(
    conn: AsyncConnection, key_id: str, operation: str, idempotency_key: str
) -> None:
    """Forget an attempt that produced no response worth replaying (the client may retry)."""
    await conn.execute(
        delete(IDEMPOTENCY).where(
            _record(key_id, operation, idempotency_key),
            IDEMPOTENCY.c.response_status.is_(None),
        )
    )


async def purge_idempotency_records(conn: AsyncConnection, older_than_hours: float) -> int:
    statement = delete(IDEMPOTENCY).where(
        IDEMPOTENCY.c.created_at < text(f"now() - interval '{float(older_than_hours)} hours'")
    )
    result = await conn.execute(statement)
    return int(result.rowcount or 0)
