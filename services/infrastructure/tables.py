"""The tables every service database has: outbox, inbox and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Table,
    inspect,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def timestamp(nullable: bool = False) -> Any:
    """A timezone-aware timestamp column; a required one defaults to now() in the database."""
    return Field(
        default=None,
        sa_column=Column(
            DateTime(timezone=True),
            nullable=nullable,
            server_default=None if nullable else text("now()"),
        ),
    )


def table(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel class, for statements run on a plain connection."""
    found = inspect(model).local_table
    assert isinstance(found, Table)
    return found


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        # The relay only ever looks for unpublished rows, oldest first.
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    event_id: str = Field(unique=True, max_length=128)
    topic: str = Field(max_length=200)
    message_key: str = Field(max_length=200)
    event_type: str = Field(max_length=200)
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    headers: dict[str, str] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )
    published_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class InboxMessage(SQLModel, table=True):
    __tablename__ = "inbox"

    consumer: str = Field(primary_key=True, max_length=100)
    event_id: str = Field(primary_key=True, max_length=128)
    event_type: str = Field(max_length=200)
    received_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )


class DeadLetter(SQLModel, table=True):
    __tablename__ = "dead_letters"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    consumer: str = Field(max_length=100)
    topic: str = Field(max_length=200)
    partition: int
    offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    message_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    value: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    headers: dict[str, str] = Field(sa_column=Column(JSONB, nullable=False))
    reason: str
    received_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )


def with_infrastructure(metadata: MetaData) -> MetaData:
    """A service's metadata plus the outbox, inbox and dead-letter tables: everything its
    migrations create."""
    for model in (OutboxMessage, InboxMessage, DeadLetter):
        table(model).to_metadata(metadata)
    return metadata
