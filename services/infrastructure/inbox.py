"""The consuming side: decode the CloudEvent, route it by type to a handler, and apply it at most
once by recording its id in the inbox table in the same transaction as its effect.

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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from services.contracts.base import Message
from services.contracts.envelope import Envelope
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import ServiceUnavailable
from services.infrastructure.metrics import CONSUMER_PROCESSING, ConsumerOutcome

log = logging.getLogger(__name__)

# The event-type label of a message that names no type this consumer knows.
_UNKNOWN_TYPE = "unknown"


UoW = TypeVar("UoW", bound=UnitOfWork)
Handler = Callable[[Any, UoW], Awaitable[None]]


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


class Unprocessable(Exception):
    """A handler's verdict that this message can never be applied (it names a location that does
    not exist, say): it is parked in `dead_letters` at once with this reason, instead of being
    tried `max_attempts` times while its partition waits."""


def is_transient(exc: BaseException) -> bool:
    """Errors that go away by themselves: retry the same message instead of parking it."""
    if isinstance(
        exc,
        OperationalError
        | InterfaceError
        | ConnectionError
        | TimeoutError
        | OSError
        | ServiceUnavailable,
    ):
        return True
    return bool(isinstance(exc, DBAPIError) and exc.connection_invalidated)


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
        self._service = service or consumer.partition(".")[0]
        self._timers: dict[tuple[str, ConsumerOutcome], Any] = {}

    async def dispatch(self, delivery: Delivery) -> None:
        """Apply one message; raise only when it should be delivered again (a transient failure,
        or a handler failure short of `max_attempts`), after a pause."""
        started = time.perf_counter()
        event_type, outcome = _UNKNOWN_TYPE, ConsumerOutcome.RETRIED
        retry: tuple[float, Exception] | None = None
        try:
            event_type, parsed = self._parse(delivery)
            if parsed is None:
                outcome = ConsumerOutcome.IGNORED
            elif isinstance(parsed, str):
                await self._dead_letter(delivery, parsed)
                outcome = ConsumerOutcome.DEAD_LETTERED
            else:
                outcome, retry = await self._process(delivery, *parsed)
        finally:
            # Timed up to the decision, without the pause before a redelivery.
            self._observe(event_type, outcome, time.perf_counter() - started)
        if retry is not None:
            delay, exc = retry
            await asyncio.sleep(delay)
            raise exc

    def _parse(
        self, delivery: Delivery
    ) -> tuple[str, tuple[Envelope, Message, Handler[UoW]] | str | None]:
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
        self, delivery: Delivery, envelope: Envelope, event: Message, handler: Handler[UoW]
    ) -> tuple[ConsumerOutcome, tuple[float, Exception] | None]:
        """The outcome, and for a retry the pause before it and the error to raise."""
        try:
            applied = await self._apply(envelope, event, handler)
        except Exception as exc:
            delay = await self._on_failure(delivery, envelope, exc)
            if delay is None:
                return ConsumerOutcome.DEAD_LETTERED, None
            return ConsumerOutcome.RETRIED, (delay, exc)
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

    async def _apply(self, envelope: Envelope, event: Message, handler: Handler[UoW]) -> bool:
        async with self._uow_factory() as uow:
            uow.message = envelope
            if self._deduplicate and not await uow.claim_message(
                self.consumer, envelope.id, envelope.type
            ):
                return False
            await handler(event, uow)
            await uow.commit()
            return True

    async def _on_failure(
        self, delivery: Delivery, envelope: Envelope, exc: Exception
    ) -> float | None:
        """The pause before the message is tried again, or None once it is dead-lettered."""
        if is_transient(exc):
            log.warning(
                "transient failure on %s %s, will retry: %r", envelope.type, envelope.id, exc
            )
            return self._retry_delay
        if isinstance(exc, Unprocessable):
            await self._dead_letter(delivery, f"{envelope.type} cannot be applied: {exc}")
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
            delivery, f"handler failed {attempts} times on {envelope.type}: {reason}"
        )
        return None

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        log.error(
            "dead-lettered message at %s[%d]@%d: %s",
            delivery.topic,
            delivery.partition,
            delivery.offset,
            reason,
            extra={"consumer": self.consumer, "reason": reason},
        )
        async with self._uow_factory() as uow:
            await uow.park_dead_letter(self.consumer, delivery, reason)
            await uow.commit()


def _summarise(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
