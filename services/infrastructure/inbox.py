"""The consuming side: decode the CloudEvent, route it by type to a handler, and apply it at most
once by recording its id in the inbox table in the same transaction as its effect.

A consumer takes a poll's messages in one transaction (DESIGN.md §7), still with one inbox row
per message: a transaction per message spent its statements on BEGIN, COMMIT and an outbox insert
of its own, and a commit's flush, on every message. The poll's inbox rows are claimed in one
statement before the first handler runs (a statement per message was the largest part of the
webhooks consumer's time), except when a batch is done again with a savepoint per message, where
each message claims its own so that undoing one undoes its claim too.

A message that can never be applied (malformed JSON, unknown type, invalid data, a handler that
says it is `Unprocessable` or keeps failing) is stored in `dead_letters` with the reason and
acknowledged, so it never blocks its partition and is never silently lost. A transient failure
(database, broker or another service away) is retried from the same offset until it succeeds.

Every message is timed, by consumer, event type and outcome
(`omniroute_consumer_processing_seconds`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from services.contracts.base import Message
from services.contracts.envelope import Envelope
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import ServiceUnavailable
from services.infrastructure.metrics import CONSUMER_PROCESSING, ConsumerOutcome

log = logging.getLogger(__name__)

# The event-type label of a message that names no type this consumer knows.
_UNKNOWN_TYPE = "unknown"
# Deadlock and serialisation failure: the database gave up on this try, the next one succeeds.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})

_TRACER = trace.get_tracer(__name__)


UoW = TypeVar("UoW", bound=UnitOfWork)
Handler = Callable[[Any, UoW], Awaitable[None]]
# A message's type (a metric label) and what to do with it: apply it (its envelope, event and
# handler), park it for the reason given, or ignore it (None).
_Parsed = tuple[str, tuple[Envelope, Message, Handler[UoW]] | str | None]


class Delivery:
    """The parts of a Kafka record the dispatcher needs (FastStream's message adapts to it)."""

    def __init__(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Mapping[str, str],
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = dict(headers)

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


class _RedoWithSavepoints(Exception):
    """A handler failed in a batch tried without savepoints, so its effects cannot be undone
    alone: the batch is done again with them, and this failure stands for that message's."""

    def __init__(self, position: tuple[str, int, int], failure: Exception) -> None:
        super().__init__(position, failure)
        self.position = position
        self.failure = failure


# The position of no message: a batch done again with savepoints for a failure of its own.
_NO_MESSAGE = ("", -1, -1)


class Unprocessable(Exception):
    """A handler's verdict that this message can never be applied (it names a location that does
    not exist, say): it is parked in `dead_letters` at once with this reason, instead of being
    tried `max_attempts` times while its partition waits."""


def is_transient(exc: BaseException) -> bool:
    """Errors that go away by themselves: retry the same message instead of parking it. An
    error raised while cleaning up after one of them (rolling back a savepoint on a connection
    that is gone) is one too."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(
            seen,
            OperationalError
            | InterfaceError
            | ConnectionError
            | TimeoutError
            | PoolTimeout  # no connection free in the pool in time
            | OSError
            | ServiceUnavailable,
        ):
            return True
        if isinstance(seen, DBAPIError) and (
            seen.connection_invalidated
            or getattr(seen.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Dispatcher(Generic[UoW]):
    """Routes each message of a topic to the handler of its event type, exactly once per id."""

    def __init__(
        self,
        consumer: str,
        routes: Mapping[type[Message], Handler[UoW]],
        uow_factory: Callable[[], UoW],
        *,
        ignored: Iterable[type[Message]] = (),
        deduplicate: bool = True,
        max_attempts: int = 5,
        retry_delay: float = 0.5,
        service: str | None = None,
    ) -> None:
        """`ignored`: types this consumer knowingly does not act on (others on the topic are
        unknown, and parked). `deduplicate=False` for handlers that are idempotent by themselves
        (a projection keeping the newest version), so they do not fill the inbox. `service`
        labels the metrics; by default the consumer name up to its first dot
        (`inventory.commands` -> `inventory`)."""
        self.consumer = consumer
        self._routes = {
            event_type.TYPE: (event_type, handler) for event_type, handler in routes.items()
        }
        self._ignored = {event_type.TYPE for event_type in ignored}
        self._deduplicate = deduplicate
        self._uow_factory = uow_factory
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._failures: dict[tuple[str, int, int], int] = {}
        # Per partition, the last offset a batch committed before it raised to be read again:
        # those messages are done, and passing over them when the batch comes again spares
        # parking a bad one twice. Only for the next batch: offsets start again on a new topic.
        self._done_upto: dict[tuple[str, int], int] = {}
        self._service = service or consumer.partition(".")[0]
        self._timers: dict[tuple[str, ConsumerOutcome], Any] = {}

    async def dispatch(self, delivery: Delivery) -> None:
        """Apply one message: a batch of one."""
        await self.dispatch_batch([delivery])

    async def dispatch_batch(self, deliveries: Sequence[Delivery]) -> None:
        """Apply a poll's messages in one transaction, so that a failing one is undone alone;
        raise only when some should be delivered again, after a pause. The consumer then reads
        the batch again from its start and passes over what this transaction committed (the
        inbox would find it applied in any case).

        A transient failure (the database or a service away) abandons the whole batch: what
        follows would most likely fail alike, on a connection that may be gone. A handler
        failure short of `max_attempts` keeps the others' effects but stops its partition
        there, so no later message of that partition overtakes it."""
        done_before, self._done_upto = self._done_upto, {}
        try:
            await self._apply_batch(deliveries, done_before, None)
        except _RedoWithSavepoints as redo:
            # A savepoint per message costs two statements of the few a message takes, and
            # handlers seldom fail: a batch is tried without them, and only one in which a
            # handler failed is rolled back and done again with them (without calling that
            # handler again: one failure, one attempt).
            await self._apply_batch(deliveries, done_before, redo)

    async def _apply_batch(
        self,
        deliveries: Sequence[Delivery],
        done_before: dict[tuple[str, int], int],
        redo: _RedoWithSavepoints | None,
    ) -> None:
        """The batch without savepoints (`redo` None) or with them, after `redo`."""
        handled: list[tuple[str, ConsumerOutcome, float]] = []
        retry: tuple[float, Exception] | None = None
        committed, commit_seconds = False, 0.0
        done_upto = dict(done_before)
        todo = [
            (delivery, self._parse(delivery))
            for delivery in deliveries
            if delivery.offset > done_before.get((delivery.topic, delivery.partition), -1)
        ]
        try:
            async with self._uow_factory() as batch:
                fresh = await self._claim_batch(batch, todo) if redo is None else None
                stopped: set[tuple[str, int]] = set()
                for delivery, parsed in todo:
                    partition = (delivery.topic, delivery.partition)
                    if partition in stopped:
                        continue
                    started = time.perf_counter()
                    event_type, outcome, again = await self._handle(
                        batch, delivery, parsed, redo, fresh
                    )
                    handled.append((event_type, outcome, time.perf_counter() - started))
                    if again is None:
                        done_upto[partition] = delivery.offset
                        continue
                    if is_transient(again[1]):
                        retry = again
                        break
                    stopped.add(partition)
                    if retry is None or again[0] > retry[0]:
                        retry = again
                if retry is None or not is_transient(retry[1]):
                    started = time.perf_counter()
                    await batch.commit()
                    commit_seconds = time.perf_counter() - started
                    committed = True
        except _RedoWithSavepoints:
            handled.clear()  # timed when done again
            raise
        except Exception as failure:
            # The batch itself failed (its connection, its commit, parking a message): it is
            # read again, after the same pause as a transient failure, not in a tight loop for
            # as long as the database is away.
            log.warning("batch of %d failed, will retry: %r", len(deliveries), failure)
            await asyncio.sleep(self._retry_delay)
            raise
        finally:
            if retry is not None or not committed:
                self._done_upto = done_upto if committed else done_before
            # Each message timed up to the decision, with the commit that made it durable and
            # without the pause before a redelivery; all of them retried unless committed.
            for event_type, outcome, seconds in handled:
                self._observe(
                    event_type,
                    outcome if committed else ConsumerOutcome.RETRIED,
                    seconds + commit_seconds,
                )
        if retry is not None:
            delay, exc = retry
            await asyncio.sleep(delay)
            raise exc

    async def _claim_batch(
        self, batch: UoW, todo: Sequence[tuple[Delivery, _Parsed[UoW]]]
    ) -> set[tuple[str, int, int]] | None:
        """The inbox rows of a batch's messages in one statement, when it is tried without
        savepoints (a failing handler rolls it all back, claims included): the positions of the
        messages to apply, the others being duplicates (of an earlier message or one earlier in
        this batch). None when each message claims its own (no deduplication)."""
        if not self._deduplicate:
            return None
        first: dict[str, tuple[str, int, int]] = {}
        types: dict[str, str] = {}
        for delivery, (_, parsed) in todo:
            if isinstance(parsed, tuple) and parsed[0].id not in first:
                first[parsed[0].id] = delivery.position
                types[parsed[0].id] = parsed[0].type
        try:
            claimed = await batch.claim_messages(self.consumer, list(types.items()))
        except Exception as exc:
            if is_transient(exc):
                raise
            # An id the database refuses (a NUL in it, say) fails the claim of every message:
            # the batch is done again with each claiming its own, and that one is parked alone.
            raise _RedoWithSavepoints(_NO_MESSAGE, exc) from exc
        return {first[event_id] for event_id in claimed}

    async def _handle(
        self,
        batch: UoW,
        delivery: Delivery,
        parsed: _Parsed[UoW],
        redo: _RedoWithSavepoints | None,
        fresh: set[tuple[str, int, int]] | None,
    ) -> tuple[str, ConsumerOutcome, tuple[float, Exception] | None]:
        """One message of a batch: its type, the outcome, and for a retry the pause before it
        and the error to raise. Processed in the trace its headers carry, as the consumer span
        of a single message would be (a batch's own span starts a trace of its own)."""
        with _TRACER.start_as_current_span(
            f"{delivery.topic} process",
            context=propagate.extract(delivery.headers),
            kind=SpanKind.CONSUMER,
            attributes=_span_attributes(delivery),
        ):
            event_type, what = parsed
            if what is None:
                return event_type, ConsumerOutcome.IGNORED, None
            if isinstance(what, str):
                await self._dead_letter(batch, delivery, what)
                return event_type, ConsumerOutcome.DEAD_LETTERED, None
            claimed = None if fresh is None else delivery.position in fresh
            outcome, retry = await self._process(batch, redo, delivery, *what, claimed)
            return event_type, outcome, retry

    def _parse(self, delivery: Delivery) -> _Parsed[UoW]:
        """The message's type (as a metric label: only types this consumer knows, so a stray
        producer cannot grow the label set) and what to do: apply it, park it for the reason
        given, or ignore it (None)."""
        if not delivery.value:
            return _UNKNOWN_TYPE, "empty message"
        try:
            envelope = Envelope.model_validate_json(delivery.value)
        except ValidationError as exc:
            return _UNKNOWN_TYPE, f"not a CloudEvent: {_summarise(exc)}"
        if envelope.type in self._ignored:
            return envelope.type, None
        route = self._routes.get(envelope.type)
        if route is None:
            return (
                _UNKNOWN_TYPE,
                f"unknown event type {envelope.type!r} (this consumer handles {sorted(self._routes)})",
            )
        event_type, handler = route
        try:
            event = event_type.model_validate(envelope.data)
        except ValidationError as exc:
            return envelope.type, f"invalid {envelope.type} data: {_summarise(exc)}"
        return envelope.type, (envelope, event, handler)

    async def _process(
        self,
        batch: UoW,
        redo: _RedoWithSavepoints | None,
        delivery: Delivery,
        envelope: Envelope,
        event: Message,
        handler: Handler[UoW],
        claimed: bool | None,
    ) -> tuple[ConsumerOutcome, tuple[float, Exception] | None]:
        """The outcome, and for a retry the pause before it and the error to raise. `claimed`:
        whether the batch claimed this message's inbox row for it (None: claim it here)."""
        failure = redo.failure if redo and redo.position == delivery.position else None
        if failure is None:
            try:
                applied = await self._apply(
                    batch, redo is not None, envelope, event, handler, claimed
                )
            except Exception as exc:
                if redo is None and not is_transient(exc):
                    raise _RedoWithSavepoints(delivery.position, exc) from exc
                failure = exc
        if failure is not None:
            trace.get_current_span().record_exception(failure)
            delay = await self._on_failure(batch, delivery, envelope, failure)
            if delay is None:
                return ConsumerOutcome.DEAD_LETTERED, None
            return ConsumerOutcome.RETRIED, (delay, failure)
        self._failures.pop(delivery.position, None)
        if not applied:
            log.info(
                "duplicate %s %s ignored",
                envelope.type,
                envelope.id,
                extra={"event_id": envelope.id},
            )
            return ConsumerOutcome.DUPLICATE, None
        return ConsumerOutcome.APPLIED, None

    def _observe(self, event_type: str, outcome: ConsumerOutcome, seconds: float) -> None:
        timer = self._timers.get((event_type, outcome))
        if timer is None:
            timer = CONSUMER_PROCESSING.labels(self._service, self.consumer, event_type, outcome)
            self._timers[event_type, outcome] = timer
        timer.observe(seconds)

    async def _apply(
        self,
        batch: UoW,
        savepoint: bool,
        envelope: Envelope,
        event: Message,
        handler: Handler[UoW],
        claimed: bool | None,
    ) -> bool:
        if claimed is False:
            return False
        async with self._uow_factory().within(batch, savepoint=savepoint) as uow:
            uow.message = envelope
            if (
                claimed is None
                and self._deduplicate
                and not await uow.claim_message(self.consumer, envelope.id, envelope.type)
            ):
                return False
            await handler(event, uow)
            await uow.commit()
            return True

    async def _on_failure(
        self, batch: UoW, delivery: Delivery, envelope: Envelope, exc: Exception
    ) -> float | None:
        """The pause before the message is tried again, or None once it is dead-lettered."""
        if is_transient(exc):
            log.warning(
                "transient failure on %s %s, will retry: %r", envelope.type, envelope.id, exc
            )
            return self._retry_delay
        if isinstance(exc, Unprocessable):
            await self._dead_letter(batch, delivery, f"{envelope.type} cannot be applied: {exc}")
            return None
        attempts = self._failures.get(delivery.position, 0) + 1
        self._failures[delivery.position] = attempts
        if attempts < self._max_attempts:
            log.exception(
                "handler failed on %s %s (attempt %d of %d)",
                envelope.type,
                envelope.id,
                attempts,
                self._max_attempts,
            )
            return self._retry_delay * attempts
        self._failures.pop(delivery.position, None)
        reason = "".join(traceback.format_exception_only(exc)).strip()
        await self._dead_letter(
            batch, delivery, f"handler failed {attempts} times on {envelope.type}: {reason}"
        )
        return None

    async def _dead_letter(self, batch: UoW, delivery: Delivery, reason: str) -> None:
        log.error(
            "dead-lettered message at %s[%d]@%d: %s",
            delivery.topic,
            delivery.partition,
            delivery.offset,
            reason,
            extra={"consumer": self.consumer, "reason": reason},
        )
        # Parked in the batch's transaction: it is acknowledged with the batch, and parked
        # again (not twice) if the batch is rolled back and read again.
        await batch.park_dead_letter(self.consumer, delivery, reason)


def _span_attributes(delivery: Delivery) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.destination.name": delivery.topic,
        "messaging.kafka.destination.partition": delivery.partition,
        "messaging.kafka.message.offset": delivery.offset,
        "messaging.operation": "process",
    }
    if delivery.key is not None:
        attributes["messaging.kafka.message.key"] = delivery.key.decode(errors="replace")
    return attributes


def _summarise(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
