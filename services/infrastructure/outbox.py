"""The transactional outbox: events are rows written in the same transaction as the change that
caused them; the relay publishes them to Kafka and marks them sent.

Delivery is at least once: a relay that dies after publishing but before marking publishes the
same rows again on restart, with the same event ids, and consumers' inboxes drop the repeats.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.infrastructure.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """What the relay needs of a broker: FastStream's `KafkaBroker.publish` fits."""

    async def publish(
        self,
        message: Any,
        topic: str = "",
        *,
        key: bytes | Any | None = None,
        headers: dict[str, str] | None = None,
        no_confirm: bool = False,
    ) -> Any: ...


_SELECT_BATCH = text(
    # FOR UPDATE (not SKIP LOCKED): a second relay replica waits for the first instead of
    # publishing later rows of the same key ahead of earlier ones.
    "SELECT id, topic, message_key, payload::text AS payload, headers,"
    " extract(epoch FROM clock_timestamp() - created_at)::float8 AS age_seconds FROM outbox"
    " WHERE published_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE"
)
# Only when a batch comes back full (then its size no longer tells the backlog), at most once a
# second, and capped: a huge backlog costs a bounded walk of the partial index, and the gauge
# reads the cap.
_COUNT_WAITING = text(
    "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT :cap) AS waiting"
)
_BACKLOG_COUNT_CAP = 100_000
_BACKLOG_COUNT_INTERVAL = 1.0
_MARK_PUBLISHED = text("UPDATE outbox SET published_at = now() WHERE id = ANY(:ids)")
_PURGE = text(
    "DELETE FROM outbox WHERE published_at IS NOT NULL"
    " AND published_at < now() - make_interval(secs => :seconds)"
)


class OutboxRelay:
    """Publishes outbox rows in commit order, in batches: many sends in flight, one update."""

    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher,
        *,
        service: str,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        retention_hours: float = 24.0,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._service = service
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retention_seconds = retention_hours * 3600
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0
        self._last_count = 0.0

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows, so they go out without waiting a poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"{self._service}-outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        backoff = self._poll_interval
        while True:
            try:
                published = await self.publish_batch()
                backoff = self._poll_interval
                await self._purge_if_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Broker or database away: nothing is lost (rows stay unpublished); try again.
                log.exception("outbox relay pass failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published < self._batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)

    async def publish_batch(self) -> int:
        """Publish up to one batch of unpublished rows; return how many went out."""
        async with self._engine.begin() as conn:
            rows = (await conn.execute(_SELECT_BATCH, {"limit": self._batch_size})).all()
            await self._observe_backlog(conn, rows)
            if not rows:
                return 0
            pending = [await self._send(row) for row in rows]
            await asyncio.gather(*pending)
            await conn.execute(_MARK_PUBLISHED, {"ids": [row.id for row in rows]})
        for topic, count in collections.Counter(row.topic for row in rows).items():
            OUTBOX_PUBLISHED.labels(self._service, topic).inc(count)
        return len(rows)

    async def _observe_backlog(self, conn: AsyncConnection, rows: Sequence[Any]) -> None:
        OUTBOX_OLDEST_AGE.labels(self._service).set(max(rows[0].age_seconds, 0) if rows else 0)
        if len(rows) < self._batch_size:
            OUTBOX_BACKLOG.labels(self._service).set(len(rows))
            return
        now = time.monotonic()
        if now - self._last_count >= _BACKLOG_COUNT_INTERVAL:
            self._last_count = now
            waiting = await conn.execute(_COUNT_WAITING, {"cap": _BACKLOG_COUNT_CAP})
            OUTBOX_BACKLOG.labels(self._service).set(waiting.scalar_one())

    async def _send(self, row: Any) -> Any:
        headers: dict[str, str] = dict(row.headers or {})
        # Publish inside the trace that wrote the row, so the publish span (and the consumer's)
        # join the original request's trace.
        token = otel_context.attach(propagate.extract(headers))
        try:
            return await self._publisher.publish(
                row.payload.encode(),
                row.topic,
                key=row.message_key.encode(),
                headers={**headers, "content-type": "application/cloudevents+json"},
                no_confirm=True,
            )
        finally:
            otel_context.detach(token)

    async def _purge_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < 60:
            return
        self._last_purge = now
        async with self._engine.begin() as conn:
            await conn.execute(_PURGE, {"seconds": self._retention_seconds})
